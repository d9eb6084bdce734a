"""Talking to phones through the adb server, with explicit timeouts and one-line errors.

adbutils does the wire work; this module adds what a measurement run needs around it: the
server is started on the port the user's environment names (ANDROID_ADB_SERVER_PORT, as the adb
command does), every call has a timeout (adbutils' default is ten minutes), exit codes come
from shell protocol v2, and a phone that drops off the bus is waited for instead of failing the
run at once.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from latprof.errors import LatprofError

T = TypeVar("T")
DEFAULT_PORT = 5037
CALL_TIMEOUT = 60.0
RETRIES = 3  # reconnections tried for one call before the run stops


def quote(value: str) -> str:
    """Quote one value for a device shell command line (mksh and toybox sh follow POSIX rules)."""
    return shlex.quote(str(value))


def client():
    """An adbutils client of the adb server on this machine, starting the server when none answers."""
    import adbutils

    port = int(os.environ.get("ANDROID_ADB_SERVER_PORT", DEFAULT_PORT))
    adb = adbutils.AdbClient(host=os.environ.get("ANDROID_ADB_SERVER_HOST", "127.0.0.1"), port=port,
                             socket_timeout=CALL_TIMEOUT)
    try:
        adb.server_version()
    except (adbutils.AdbError, OSError):
        _start_server(port)
        adb.server_version()
    return adb


def _start_server(port: int) -> None:
    import adbutils

    try:
        executable = adbutils.adb_path()
    except adbutils.AdbError:
        raise LatprofError("no adb server is running and no adb binary was found: install Android's "
                           "platform-tools (or set ADBUTILS_ADB_PATH)") from None
    done = subprocess.run([executable, "-P", str(port), "start-server"], check=False, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise LatprofError(f"could not start the adb server on port {port}: {(done.stderr or done.stdout).strip()}")


@dataclass(frozen=True)
class ShellResult:
    code: int
    stdout: str
    stderr: str


class Phone:
    """One phone by serial: shell commands with exit codes, file transfer, and reconnection."""

    def __init__(self, serial: str, reconnect_timeout: float = 120.0):
        self.serial = serial
        self.reconnect_timeout = reconnect_timeout
        self.adb = client()
        self._device = self.adb.device(serial)

    def state(self) -> str:
        """The adb server's view of the phone: device, offline, unauthorized, ... or 'absent'."""
        for info in self.adb.list():
            if info.serial == self.serial:
                return info.state
        return "absent"

    def require_online(self) -> None:
        state = self.state()
        if state != "device":
            hint = {"unauthorized": "accept the USB debugging prompt on the phone",
                    "absent": "plug it in (USB) or 'adb connect' it; 'latprof devices' lists what adb sees"}
            raise LatprofError(f"phone {self.serial} is {state}: {hint.get(state, 'reconnect it')}")

    def shell(self, command: str, timeout: float = CALL_TIMEOUT) -> ShellResult:
        """Run a shell command line on the phone (shell protocol v2: separate stderr, real exit code)."""
        result = self._call(lambda: self._device.shell2(command, timeout=timeout, v2=True), f"'{command[:60]}'")
        return ShellResult(result.returncode, result.stdout, result.stderr)

    def check(self, command: str, what: str, timeout: float = CALL_TIMEOUT) -> str:
        """stdout of a command that must succeed; ``what`` names it in the error."""
        result = self.shell(command, timeout)
        if result.code != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise LatprofError(f"phone {self.serial}: {what} failed (exit {result.code}"
                               f"{': ' + detail[-1] if detail else ''})")
        return result.stdout

    def push(self, data: bytes, path: str, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` on the phone (parent folders are created by adbd)."""
        try:
            self._call(lambda: self._device.sync.push(data, path, mode=mode), f"pushing {path}")
        except LatprofError as exc:
            free = self.shell(f"df -k {quote(path.rsplit('/', 1)[0])} | tail -n 1").stdout.split()
            room = f" ({int(free[3]) // 1024} MB free there)" if len(free) > 3 and free[3].isdigit() else ""
            raise LatprofError(f"{exc}{room}: is its storage full? free space on the phone and re-run the same "
                               "command") from None

    def read(self, path: str) -> bytes:
        return self._call(lambda: self._device.sync.read_bytes(path), f"reading {path}")

    def listdir(self, path: str) -> set[str]:
        """Names in a folder on the phone; empty when the folder does not exist."""
        return {entry.path for entry in self._call(lambda: self._device.sync.list(path), f"listing {path}")} - {".", ".."}

    def _call(self, action: Callable[[], T], what: str) -> T:
        """Run ``action``; when the phone drops off, wait for it to come back and try again.

        An error while the phone stays online is a real failure of ``what`` and is reported as such.
        """
        import adbutils

        for attempt in range(RETRIES + 1):
            try:
                return action()
            except (adbutils.AdbError, OSError, EOFError) as exc:  # EOFError: the socket closed mid-reply
                if self._looks_online() or attempt == RETRIES:
                    raise LatprofError(f"phone {self.serial}: {what} failed ({str(exc).strip() or type(exc).__name__})") \
                        from None
                self.wait_until_back(exc)
        raise AssertionError("unreachable")

    def _looks_online(self) -> bool:
        try:
            return self.state() == "device"
        except Exception:  # noqa: BLE001 - the server itself may be gone; that is "not online" too
            return False

    def wait_until_back(self, cause: Exception | None = None) -> None:
        """Wait up to ``reconnect_timeout`` for the phone to be online again (re-connecting a
        phone on Wi-Fi), then give up with a message that says how to resume."""
        deadline = time.monotonic() + self.reconnect_timeout
        while time.monotonic() < deadline:
            try:
                if ":" in self.serial:  # adb over TCP: ask the server to dial it again
                    self.adb.connect(self.serial, timeout=5)
                if self.state() == "device":
                    return
            except Exception as exc:  # noqa: BLE001 - keep waiting; the last cause is reported below
                cause = exc
            time.sleep(1.0)
        reason = f" ({str(cause).strip() or type(cause).__name__})" if cause else ""
        raise LatprofError(f"phone {self.serial} went away{reason} and did not come back within "
                           f"{self.reconnect_timeout:.0f} s: reconnect it and re-run the same command; "
                           "finished measurements are kept and the phone keeps measuring meanwhile")
