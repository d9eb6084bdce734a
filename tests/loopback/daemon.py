"""The loopback phone's adbd: a device-side adb daemon over loopback TCP, standard library only.

A real adb server connects to it (``adb connect 127.0.0.1:PORT``) exactly as to a phone in TCP mode,
so the test-suite exercises adbutils, the adb server and the phone-side scripts for real. Commands
run on this host as ``/system/bin/sh -c CMD``, chrooted into a sandbox folder that looks like a phone
(see sandbox.py), in a private mount namespace into which the host's /usr, /etc, /dev, /proc and the
Python installation are bind-mounted. There is no /tmp: as on Android, TMPDIR is /data/local/tmp.

    python tests/loopback/daemon.py --sandbox DIR --ready-file FILE [--port 0] [--banner-model NAME]
                                    [--quota-bytes N]

Wire protocol (AOSP adb): CNXN without AUTH, OPEN/OKAY/WRTE/CLSE with stop-and-wait flow control per
stream; services ``shell:CMD`` and ``exec:CMD`` (stdout and stderr merged, no exit code),
``shell,v2,...:CMD`` (shell protocol: stdin/stdout/stderr/exit packets) and ``sync:`` v1 (STAT,
LIST, SEND, RECV, QUIT). Only the features implemented here are advertised, so adb 29 and 36 stay on
these simple paths. Logs go to stderr; the fixture points it at a file.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import queue
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

A_CNXN, A_OPEN, A_OKAY, A_WRTE, A_CLSE = 0x4E584E43, 0x4E45504F, 0x59414B4F, 0x45545257, 0x45534C43
A_VERSION = 0x01000001  # no payload checksums
MAX_PAYLOAD = 1 << 20
HEADER = struct.Struct("<6I")  # command, arg0, arg1, data length, data checksum, magic
FEATURES = ("shell_v2", "fixed_push_mkdir")  # SEND creates parent folders
EMULATOR_PORTS = range(5555, 5586)  # the server probes these and would list us twice
BANNER_KEYS = ("ro.product.name", "ro.product.model", "ro.product.device")
BANNER_UNSAFE = str.maketrans(":;=", "___")  # separators of the banner

# Shell protocol v2 packet ids.
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN = 0, 1, 2, 3, 4
SHELL_HEADER = struct.Struct("<BI")
SYNC_HEADER = struct.Struct("<4sI")
SYNC_DATA_MAX = 64 * 1024
SYNC_PATH_MAX = 1024

# What commands see, as from adbd: its own environment plus these (adbd sets HOME to the shell
# user's home, "/"). /usr/sbin is not on Android's PATH and not here either.
COMMAND_ENV = {"PATH": "/system/bin:/usr/bin:/bin", "HOME": "/", "TMPDIR": "/data/local/tmp",
               "SHELL": "/system/bin/sh", "USER": "shell", "LOGNAME": "shell"}
HOST_DIRS = ("/usr", "/etc", "/dev", "/proc")
MERGED_USR = ("/bin", "/lib", "/lib64", "/sbin")  # symlinks into /usr on Debian; bound when folders

# Runs in the new mount namespace: bind the host folders, then become /system/bin/sh in the chroot.
# Arguments: mount, chroot, sandbox, host folders..., --, command (empty: read commands on stdin).
ENTER_SCRIPT = """
mount=$1 chroot=$2 root=$3
shift 3
while [ "$1" != -- ]; do
    "$mount" --rbind "$1" "$root$1" || exit 125
    shift
done
[ -n "$2" ] && exec "$chroot" "$root" /system/bin/sh -c "$2"
exec "$chroot" "$root" /system/bin/sh
"""

log = logging.getLogger("loopback-adbd")


class StreamClosed(Exception):
    """The stream was closed (by either side) while a service still wanted to write."""


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("host closed the connection")
        data += chunk
    return bytes(data)


class Stream:
    """One adb stream (a service the host OPENed), with stop-and-wait flow control both ways.

    Writes wait for the host's OKAY before the next WRTE; data the host writes is acknowledged only
    when a service reads it, so a slow consumer throttles the host as a real adbd does.
    """

    def __init__(self, connection: Connection, local_id: int, remote_id: int) -> None:
        self.connection, self.local_id, self.remote_id = connection, local_id, remote_id
        self.closed_by_host = False
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._state = threading.Condition()
        self._unacked = False
        self._closed = False
        self._write_lock = threading.Lock()

    @property
    def max_payload(self) -> int:
        return self.connection.max_payload

    def write(self, data: bytes) -> None:
        with self._write_lock:
            for start in range(0, len(data), self.max_payload):
                with self._state:
                    if self._closed:
                        raise StreamClosed
                    self._unacked = True
                self.connection.send(A_WRTE, self.local_id, self.remote_id, data[start:start + self.max_payload])
                with self._state:
                    self._state.wait_for(lambda: not self._unacked or self._closed)
                    if self._closed:
                        raise StreamClosed

    def read(self) -> bytes:
        """The next chunk the host wrote (acknowledged now), or b"" once the stream is closed."""
        data = self._inbox.get()
        if data is None:
            self._inbox.put(None)
            return b""
        with self._state:
            closed = self._closed
        if not closed:
            self.connection.send(A_OKAY, self.local_id, self.remote_id)
        return data

    def close(self) -> None:
        """Close from the device side (the service ended): CLSE, which the host does not answer."""
        if self._mark_closed():
            self.connection.forget(self)
            with suppress(OSError):  # the connection is gone: nobody to tell
                self.connection.send(A_CLSE, self.local_id, self.remote_id)

    def on_okay(self) -> None:
        with self._state:
            self._unacked = False
            self._state.notify_all()

    def on_data(self, data: bytes) -> None:
        if data:
            self._inbox.put(data)
        else:  # nothing to consume: b"" means closed to readers
            self.connection.send(A_OKAY, self.local_id, self.remote_id)

    def on_host_close(self) -> None:
        # Set before the readers wake up: the stdin pump decides on it whether to hang up.
        with self._state:
            self.closed_by_host = not self._closed
        self._mark_closed()

    def _mark_closed(self) -> bool:
        with self._state:
            if self._closed:
                return False
            self._closed = True
            self._state.notify_all()
        self._inbox.put(None)
        return True


class StreamReader:
    """A stream's data as a byte stream: sync and shell-v2 messages may straddle WRTE packets."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._offset = 0

    def read_exact(self, size: int) -> bytes:
        while len(self._buffer) - self._offset < size:
            chunk = self._stream.read()
            if not chunk:
                raise EOFError("stream closed")
            del self._buffer[:self._offset]  # at most one compaction per packet, not per message
            self._offset = 0
            self._buffer += chunk
        data = bytes(self._buffer[self._offset:self._offset + size])
        self._offset += size
        return data


class Connection:
    """One host connection (the adb server): the handshake, then packets dispatched to streams."""

    def __init__(self, sock: socket.socket, phone: Phone) -> None:
        self.sock, self.phone = sock, phone
        self.max_payload = MAX_PAYLOAD
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._next_id = 1

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        header = HEADER.pack(command, arg0, arg1, len(data), 0, command ^ 0xFFFFFFFF)
        with self._send_lock:
            self.sock.sendall(header + data)

    def forget(self, stream: Stream) -> None:
        self._streams.pop(stream.local_id, None)

    def serve(self) -> None:
        try:
            while True:
                command, arg0, arg1, length, _, _ = HEADER.unpack(recv_exact(self.sock, HEADER.size))
                self._dispatch(command, arg0, arg1, recv_exact(self.sock, length))
        except (EOFError, OSError) as error:
            log.info("connection ended: %s", error)
        finally:
            for stream in list(self._streams.values()):  # the cable is gone: hang up every command
                stream.on_host_close()
            self.sock.close()

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            self.max_payload = min(arg1, MAX_PAYLOAD)
            log.info("host connected: %s, max payload %d", data.rstrip(b"\0").decode(errors="replace"), arg1)
            self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, self.phone.banner)
        elif command == A_OPEN:
            self._open(arg0, data.rstrip(b"\0").decode(errors="surrogateescape"))
        elif (stream := self._streams.get(arg1)) is None:
            return  # late OKAY/WRTE/CLSE for a stream that is already closed
        elif command == A_OKAY:
            stream.on_okay()
        elif command == A_WRTE:
            stream.on_data(data)
        elif command == A_CLSE:
            self.forget(stream)
            stream.on_host_close()

    def _open(self, remote_id: int, service: str) -> None:
        handler = self.phone.service(service)
        if handler is None:
            log.info("refused service %r", service)
            self.send(A_CLSE, 0, remote_id)
            return
        stream = Stream(self, self._next_id, remote_id)
        self._next_id += 1
        self._streams[stream.local_id] = stream
        self.send(A_OKAY, stream.local_id, remote_id)
        threading.Thread(target=run_service, args=(handler, stream, service), daemon=True).start()


def run_service(handler: Callable[[Stream], None], stream: Stream, service: str) -> None:
    log.info("stream %d: %s", stream.local_id, service)
    try:
        handler(stream)
    except (StreamClosed, EOFError, OSError) as error:
        log.info("stream %d: closed before the service finished: %r", stream.local_id, error)
    finally:
        stream.close()


# ---------------------------------------------------------------------------------------- commands

@dataclass(frozen=True)
class ShellRequest:
    command: str
    protocol_v2: bool
    term: str | None


def parse_shell_service(service: str) -> ShellRequest | None:
    """``shell:CMD``, ``shell,v2,TERM=xterm,raw:CMD`` or ``exec:CMD``; None for other services."""
    head, colon, command = service.partition(":")
    name, *args = head.split(",")
    if not colon or name not in ("shell", "exec"):
        return None
    term = next((arg.removeprefix("TERM=") for arg in args if arg.startswith("TERM=")), None)
    return ShellRequest(command, name == "shell" and "v2" in args, term)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def exit_status(returncode: int) -> int:
    """The byte adbd reports: the exit status, or 128 + the signal that killed the command."""
    return 128 - returncode if returncode < 0 else returncode & 0xFF


def hang_up(process: subprocess.Popen) -> None:
    """SIGHUP the command's process group, as a closed terminal would; nohup and setsid jobs live on."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGHUP)


def run_command(phone: Phone, request: ShellRequest, stream: Stream) -> None:
    process = phone.spawn(request)
    threading.Thread(target=pump_stdin, args=(stream, process, request.protocol_v2), daemon=True).start()
    if request.protocol_v2:
        pumps = [threading.Thread(target=pump_output, args=(stream, pipe, packet_id), daemon=True)
                 for pipe, packet_id in ((process.stdout, SHELL_STDOUT), (process.stderr, SHELL_STDERR))]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
    else:
        pump_output(stream, process.stdout, None)
    process.wait()
    log.info("stream %d: exit %d", stream.local_id, process.returncode)
    if request.protocol_v2:
        stream.write(SHELL_HEADER.pack(SHELL_EXIT, 1) + bytes([exit_status(process.returncode)]))


def pump_output(stream: Stream, pipe, packet_id: int | None) -> None:
    """Copy a command's output to the host, raw or as shell-v2 packets of ``packet_id``.

    When the host has gone, the pipe is closed so that a command ignoring SIGHUP cannot block on it.
    """
    size = min(SYNC_DATA_MAX, stream.max_payload - SHELL_HEADER.size)
    try:
        while data := os.read(pipe.fileno(), size):
            stream.write(data if packet_id is None else SHELL_HEADER.pack(packet_id, len(data)) + data)
    except (StreamClosed, OSError):
        pass
    finally:
        pipe.close()


def shell_packets(stream: Stream) -> Iterator[tuple[int, bytes]]:
    """The host's shell-v2 packets; EOFError once the stream is closed."""
    reader = StreamReader(stream)
    while True:
        packet_id, length = SHELL_HEADER.unpack(reader.read_exact(SHELL_HEADER.size))
        yield packet_id, reader.read_exact(length)


def raw_stdin(stream: Stream) -> Iterator[tuple[int, bytes]]:
    """A raw (shell v1, exec) stream's data, as stdin packets, until the stream is closed."""
    while data := stream.read():
        yield SHELL_STDIN, data


def pump_stdin(stream: Stream, process: subprocess.Popen, protocol_v2: bool) -> None:
    """Feed the host's data to the command's stdin; when the host closes the stream before the
    command has finished, hang up."""
    try:
        for packet_id, data in shell_packets(stream) if protocol_v2 else raw_stdin(stream):
            if packet_id == SHELL_CLOSE_STDIN:
                process.stdin.close()
            elif packet_id == SHELL_STDIN and not process.stdin.closed:
                try:
                    write_all(process.stdin.fileno(), data)
                except BrokenPipeError:
                    process.stdin.close()  # the command stopped reading; keep acknowledging the host
    except (EOFError, OSError):
        pass
    if stream.closed_by_host and process.poll() is None:
        hang_up(process)
    process.stdin.close()


# -------------------------------------------------------------------------------------------- sync

class SyncRefused(OSError):
    """A sync path that leaves the sandbox: the phone has nothing there for the host to see."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EACCES, f"{os.strerror(errno.EACCES)} (outside the loopback phone)", path)


def resolve(root: Path, device_path: str, follow_last: bool = True) -> Path:
    """The host path of ``device_path``, resolving symlinks as the chroot does (absolute targets
    start again at the sandbox root); a path whose ``..`` climbs above the root is refused."""
    pending = device_path.split("/")
    pending.reverse()
    parts: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise SyncRefused(device_path)
            parts.pop()
            continue
        candidate = root.joinpath(*parts, part)
        if (not pending and not follow_last) or not candidate.is_symlink():
            parts.append(part)
            continue
        links += 1
        if links > 40:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), device_path)
        target = os.readlink(candidate)
        if target.startswith("/"):
            parts = []
        pending.extend(reversed(target.split("/")))
    return root.joinpath(*parts)


def adbd_file_mode(mode: int) -> int:
    """The permissions adbd gives a pushed file under /data: the owner's bits copied to group and
    other (a pushed 0644 file is 0666 on a phone, a 0755 one 0777)."""
    mode &= 0o777
    mode |= (mode >> 3) & 0o070
    return mode | (mode >> 3) & 0o007


def parse_mode(text: str) -> int:
    """strtoul(text, 0) as adbd parses SEND's mode: decimal, 0x hexadecimal or 0 octal."""
    return int(text, 8) if text.startswith("0") and text[1:2].isdigit() else int(text, 0)


def dent(ident: bytes, st: os.stat_result | None, name: bytes = b"") -> bytes:
    """A STAT or DENT reply (DENT carries a name); all zeros when there is nothing there."""
    fields = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime)) if st else (0, 0, 0)
    if ident == b"STAT":
        return ident + struct.pack("<3I", *fields)
    return ident + struct.pack("<4I", *fields, len(name)) + name


def disk_usage(folder: Path) -> int:
    return sum(os.lstat(os.path.join(top, name)).st_size for top, _, names in os.walk(folder) for name in names)


class SyncSession:
    """The sync: service, v1: requests until QUIT; a FAIL ends the session, as in adbd."""

    def __init__(self, phone: Phone, stream: Stream) -> None:
        self.phone, self.stream = phone, stream
        self.reader = StreamReader(stream)
        self._out = bytearray()
        self._handlers = {b"STAT": self.stat, b"LIST": self.list, b"SEND": self.send, b"RECV": self.recv}

    def run(self) -> None:
        while self.handle_request():
            self.flush()

    def handle_request(self) -> bool:
        """Serve one request; False when the session ends (QUIT or a failure)."""
        ident, length = SYNC_HEADER.unpack(self.reader.read_exact(SYNC_HEADER.size))
        if ident == b"QUIT":
            return False
        if length > SYNC_PATH_MAX:
            return self.fail("path too long")
        path = self.reader.read_exact(length).decode(errors="surrogateescape")
        handler = self._handlers.get(ident)
        if handler is None:
            return self.fail(f"unknown command {int.from_bytes(ident, 'little'):08x}")
        return handler(path)

    # Replies are packed whole into WRTE packets, so no reply straddles two packets.
    def reply(self, message: bytes) -> None:
        if len(self._out) + len(message) > self.stream.max_payload:
            self.flush()
        self._out += message

    def flush(self) -> None:
        if self._out:
            self.stream.write(bytes(self._out))
            self._out.clear()

    def fail(self, message: str) -> bool:
        text = message.encode()
        self.reply(SYNC_HEADER.pack(b"FAIL", len(text)) + text)
        self.flush()
        return False

    def stat(self, path: str) -> bool:
        try:
            st = os.lstat(resolve(self.phone.root, path, follow_last=False))
        except OSError:
            st = None
        self.reply(dent(b"STAT", st))
        return True

    def list(self, path: str) -> bool:
        try:
            folder = resolve(self.phone.root, path)
            parent = folder if folder == self.phone.root else folder.parent  # "/.." is "/" on a phone too
            entries = [(".", folder), ("..", parent), *((name, folder / name) for name in os.listdir(folder))]
        except OSError:
            entries = []  # adbd answers an unreadable folder with an empty listing
        for name, entry in entries:
            try:
                self.reply(dent(b"DENT", os.lstat(entry), os.fsencode(name)))
            except OSError:
                continue  # vanished meanwhile: adbd skips it too
        self.reply(dent(b"DONE", None))
        return True

    def recv(self, path: str) -> bool:
        try:
            file = open(resolve(self.phone.root, path), "rb")
        except OSError as error:
            return self.fail(f"open failed: {error.strerror}")
        with file:
            while chunk := file.read(SYNC_DATA_MAX):
                self.reply(SYNC_HEADER.pack(b"DATA", len(chunk)) + chunk)
        self.reply(SYNC_HEADER.pack(b"DONE", 0))
        return True

    def send(self, spec: str) -> bool:
        path, comma, mode_text = spec.rpartition(",")
        if not comma:
            return self.fail("missing , in ID_SEND_V1")
        try:
            mode = parse_mode(mode_text)
        except ValueError:
            return self.fail("bad mode")
        if stat.S_ISLNK(mode):
            return self.fail_send("symlinks are not supported by the loopback phone")
        try:
            target = resolve(self.phone.root, path, follow_last=False)
            if target.is_symlink() or target.is_file():
                target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, adbd_file_mode(mode))
        except OSError as error:
            return self.fail_send(f"couldn't create file: {error.strerror}")
        try:
            os.fchmod(fd, adbd_file_mode(mode))
            mtime = self.receive_file(fd, self.space_left(target))
        except OSError as error:
            target.unlink(missing_ok=True)
            return self.fail_send(f"write failed: {error.strerror}")
        finally:
            os.close(fd)
        if mtime is None:
            target.unlink(missing_ok=True)
            return self.fail("invalid data message")
        os.utime(target, (mtime, mtime))
        self.reply(SYNC_HEADER.pack(b"OKAY", 0))
        return True

    def receive_file(self, fd: int, space_left: int | None) -> int | None:
        """Write DATA messages to fd until DONE; its mtime, or None on a message that is neither."""
        while True:
            ident, size = SYNC_HEADER.unpack(self.reader.read_exact(SYNC_HEADER.size))
            if ident == b"DONE":
                return size
            if ident != b"DATA" or size > SYNC_DATA_MAX:
                return None
            data = self.reader.read_exact(size)
            if space_left is not None:
                space_left -= size
                if space_left < 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            write_all(fd, data)

    def space_left(self, target: Path) -> int | None:
        """Bytes a push may still write under --quota-bytes (None: no quota for this path)."""
        data = self.phone.root / "data"
        if self.phone.quota_bytes is None or not target.is_relative_to(data):
            return None
        return self.phone.quota_bytes - disk_usage(data)

    def fail_send(self, message: str) -> bool:
        """FAIL a SEND, then swallow its DATA until DONE, as adbd does for older hosts."""
        self.fail(message)
        while True:
            ident, size = SYNC_HEADER.unpack(self.reader.read_exact(SYNC_HEADER.size))
            if ident != b"DATA" or size > SYNC_DATA_MAX:
                return False
            self.reader.read_exact(size)


# ------------------------------------------------------------------------------------------- phone

def host_mounts() -> list[str]:
    """The host folders bound into every command's root: /usr, /etc, /dev, /proc, merged-/usr
    folders that are real folders on this host, and the Python installation (so a pushed script
    whose shebang is sys.executable runs). Folders inside another bound folder are skipped."""
    merged = [path for path in MERGED_USR if os.path.isdir(path) and not os.path.islink(path)]
    wanted = sorted({os.path.realpath(path) for path in (*HOST_DIRS, *merged, sys.prefix, sys.base_prefix)})
    return [path for path in wanted if not any(path.startswith(other + "/") for other in wanted)]


def prepare_root(root: Path, mounts: list[str]) -> None:
    """Mount points for the host folders, and /bin, /lib, ... linked into /usr as on the host."""
    for path in mounts:
        (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path in MERGED_USR:
        link = root / path.lstrip("/")
        if os.path.islink(path) and not os.path.lexists(link):
            link.symlink_to(os.readlink(path))


def read_properties(root: Path) -> dict[str, str]:
    path = root / "system" / "build.prop"
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def make_banner(properties: dict[str, str], model: str | None) -> bytes:
    """``device::ro.product.name=...;ro.product.model=...;ro.product.device=...;features=...``."""
    values = {key: properties.get(key, "loopback") for key in BANNER_KEYS}
    if model:
        values["ro.product.model"] = model
    fields = ";".join(f"{key}={value.translate(BANNER_UNSAFE)}" for key, value in values.items())
    return f"device::{fields};features={','.join(FEATURES)}".encode()


def host_tool(name: str) -> str:
    found = shutil.which(name, path=f"{os.environ.get('PATH', os.defpath)}:/usr/sbin:/sbin")
    if found is None:
        sys.exit(f"{name} not found: the loopback phone needs util-linux (unshare, mount) and chroot")
    return found


class Phone:
    """What the daemon serves: the sandbox, the services, and how a command enters the phone."""

    def __init__(self, root: Path, banner_model: str | None, quota_bytes: int | None) -> None:
        self.root = root.resolve()
        self.quota_bytes = quota_bytes
        properties = read_properties(self.root)
        self.banner = make_banner(properties, banner_model)
        mounts = host_mounts()
        prepare_root(self.root, mounts)
        user_namespace = ["--user", "--map-root-user"] if os.geteuid() != 0 else []
        self._enter = [host_tool("unshare"), "--mount", *user_namespace, "/bin/sh", "-c", ENTER_SCRIPT,
                       "loopback-enter", host_tool("mount"), host_tool("chroot"), str(self.root), *mounts, "--"]
        self._env = {**os.environ, **COMMAND_ENV, "HOSTNAME": properties.get("ro.product.device", "loopback")}

    def service(self, name: str) -> Callable[[Stream], None] | None:
        if name == "sync:":
            return lambda stream: SyncSession(self, stream).run()
        request = parse_shell_service(name)
        if request is None:
            return None
        return lambda stream: run_command(self, request, stream)

    def spawn(self, request: ShellRequest) -> subprocess.Popen:
        """Start ``/system/bin/sh -c CMD`` in the phone, in a session (and process group) of its own,
        so that a hang-up reaches the whole command and SIGKILLing the daemon reaches none of it."""
        env = self._env if request.term is None else {**self._env, "TERM": request.term}
        stderr = subprocess.PIPE if request.protocol_v2 else subprocess.STDOUT
        return subprocess.Popen([*self._enter, request.command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr, env=env, start_new_session=True, bufsize=0)


def write_ready_file(path: Path, port: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{port}\n")
    os.replace(temporary, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandbox", type=Path, required=True, help="the phone's root folder")
    parser.add_argument("--ready-file", type=Path, required=True, help="receives the port once listening")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--banner-model", help="model in the connection banner (default: ro.product.model)")
    parser.add_argument("--quota-bytes", type=int, help="pushes beyond this many bytes under /data fail")
    return parser.parse_args(argv)


def serve(server: socket.socket, phone: Phone) -> None:
    while True:
        sock, address = server.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # stop-and-wait hates Nagle
        log.info("accepted %s", address)
        threading.Thread(target=Connection(sock, phone).serve, daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(threadName)s %(message)s")
    phone = Phone(args.sandbox, args.banner_model, args.quota_bytes)
    server = socket.create_server(("127.0.0.1", args.port), backlog=16)  # SO_REUSEADDR: restarts re-bind
    port = server.getsockname()[1]
    if port in EMULATOR_PORTS:
        sys.exit(f"port {port} is in the adb server's emulator range {EMULATOR_PORTS}: choose another")
    write_ready_file(args.ready_file, port)
    log.info("listening on 127.0.0.1:%d, sandbox %s, banner %s", port, phone.root, phone.banner.decode())
    serve(server, phone)


if __name__ == "__main__":
    main()
