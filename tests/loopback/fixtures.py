"""pytest fixtures for loopback phones: a private adb server, and phones served by daemon.py.

    def test_temperature(phone):                      # one started phone
        phone.set_thermal(status=3, temperature_c=48.5)
        assert "Thermal Status: 3" in phone.device().shell("dumpsys thermalservice")

    phone = phone_factory(model="Pixel 8", env={"BENCHMARK_MODEL_FORMAT": "new"}).start()

The adb server is private (its own port, HOME and log folder; no emulator, USB or mDNS scanning)
and ``adb_server`` exports its port as ANDROID_ADB_SERVER_PORT for the test process and for the
``latprof`` processes tests start. Code under test must build its client when it needs one,
``adbutils.AdbClient()`` (which reads ANDROID_ADB_SERVER_PORT then), never use ``adbutils.adb``:
that module-level client was built at import time, before this fixture ran, and talks to 5037.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

import adbutils
import pytest

from loopback.sandbox import (
    device_path,
    limit_data_storage,
    make_sandbox,
    release_data_storage,
    set_battery,
    set_cpu_freq,
    set_thermal,
)

ADB_ENV = {"ADB_EMU": "0", "ADB_MDNS": "0", "ADB_USB": "0"}  # only devices we connect, nothing scanned
TIMEOUT = 20.0  # seconds; every wait has one (adbutils' own default is 600 s)
DAEMON = Path(__file__).with_name("daemon.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class AdbServer:
    """A private adb server: its port, the adb binary, and the environment adb commands need."""

    port: int
    adb: str
    env: Mapping[str, str]

    def run(self, *args: str, input: str | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """``adb -P PORT ARGS`` with ``input`` (default: none) on stdin; unchecked: callers look at
        returncode and output."""
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        return subprocess.run([self.adb, "-P", str(self.port), *args], env=dict(self.env), capture_output=True,
                              text=True, timeout=timeout, **stdin)

    def client(self) -> adbutils.AdbClient:
        return adbutils.AdbClient(host="127.0.0.1", port=self.port, socket_timeout=TIMEOUT)

    def state(self, serial: str) -> str | None:
        """``device``, ``offline``, ...; None when the server does not list ``serial``."""
        return {info.serial: info.state for info in self.client().list()}.get(serial)


def start_adb_server(home: Path) -> AdbServer:
    """Start a server on a free port; its key (HOME/.android) and log (TMPDIR) stay in ``home``."""
    port = free_port()
    env = {**os.environ, **ADB_ENV, "HOME": str(home), "TMPDIR": str(home), "ANDROID_ADB_SERVER_PORT": str(port)}
    server = AdbServer(port, adbutils.adb_path(), env)
    started = server.run("start-server")
    if started.returncode != 0:
        raise RuntimeError(f"adb start-server failed: {started.stderr.strip()}")
    return server


def sandbox_processes(root: Path) -> list[int]:
    """Processes whose root folder is the sandbox: commands of the phone still running."""
    root_text = str(root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        with suppress(OSError):
            if entry.name.isdigit() and os.readlink(entry / "root") == root_text:
                pids.append(int(entry.name))
    return pids


def kill_sandbox_processes(root: Path, timeout: float = 5.0) -> None:
    """SIGKILL the phone's leftover jobs (setsid/nohup ones outlive the daemon, as on a phone)."""
    deadline = time.monotonic() + timeout
    while pids := sandbox_processes(root):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} running in {root} survive SIGKILL")
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


class LoopbackPhone:
    """A phone for tests: a sandbox folder, the adbd serving it (daemon.py) and its adb connection.

    ``start()`` starts adbd and plugs the phone in; ``kill()`` crashes adbd (jobs on the phone live
    on); ``restart()`` brings adbd back on the same port and waits until the server has reconnected
    by itself (it retries on its own, within a few seconds); ``disconnect()`` unplugs it and ``connect()`` plugs it in
    again; ``close()`` removes every trace. ``quota_bytes``: pushes that would take /data beyond it
    fail with "No space left on device" (the daemon counts; works without root). ``storage_bytes``:
    /data is a tmpfs of that size (root only), so the kernel refuses pushes and commands alike.
    """

    def __init__(self, server: AdbServer, workdir: Path, model: str = "Pixel 7", *,
                 props: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
                 quota_bytes: int | None = None, storage_bytes: int | None = None) -> None:
        self.server = server
        self.workdir = workdir
        self.log_path = workdir / "daemon.log"
        self.sandbox = make_sandbox(workdir / "phone", model, props)
        if storage_bytes is not None:
            limit_data_storage(self.sandbox, storage_bytes)
        self.port: int | None = None
        self._env = {**os.environ, **(env or {})}
        self._quota_bytes = quota_bytes
        self._daemon: subprocess.Popen | None = None

    @property
    def serial(self) -> str:
        if self.port is None:
            raise RuntimeError("the phone has no port before start()")
        return f"127.0.0.1:{self.port}"

    def device(self) -> adbutils.AdbDevice:
        return self.server.client().device(self.serial)

    def device_path(self, path: str) -> Path:
        """The host path of a device path, e.g. to look at what a command wrote."""
        return device_path(self.sandbox, path)

    def start(self, timeout: float = TIMEOUT) -> LoopbackPhone:
        self._spawn_daemon(timeout)
        self.connect(timeout)
        return self

    def connect(self, timeout: float = TIMEOUT) -> None:
        answer = self.server.client().connect(self.serial, timeout=timeout)
        if not answer.startswith(("connected to", "already connected to")):
            raise RuntimeError(f"adb connect {self.serial}: {answer}")
        self.wait_for_state("device", timeout)

    def disconnect(self) -> None:
        self.server.client().disconnect(self.serial)

    def kill(self) -> None:
        """SIGKILL adbd only: what it started is the phone's, not the cable's, and keeps running."""
        if self._daemon is not None:
            self._daemon.kill()
            self._daemon.wait()
            self._daemon = None

    def restart(self, timeout: float = TIMEOUT) -> None:
        self.kill()
        self._spawn_daemon(timeout)
        self.wait_for_state("device", timeout)

    def wait_for_state(self, state: str | None, timeout: float = TIMEOUT) -> None:
        """Wait until the server lists the phone in ``state`` (None: not listed at all)."""
        deadline = time.monotonic() + timeout
        while (current := self.server.state(self.serial)) != state:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.serial} is {current}, not {state}, after {timeout} s; see {self.log_path}")
            time.sleep(0.05)

    def set_thermal(self, status: int | None = None, temperature_c: float | None = None) -> None:
        set_thermal(self.sandbox, status, temperature_c)

    def set_cpu_freq(self, khz: int | None = None, cpus: Iterable[int] | None = None) -> None:
        set_cpu_freq(self.sandbox, khz, cpus)

    def set_battery(self, level: int | None = None, charging: bool | None = None,
                    temperature_c: float | None = None) -> None:
        set_battery(self.sandbox, level, charging, temperature_c)

    def close(self) -> None:
        """Unplug (best effort: the server may be gone), stop adbd and the phone's jobs, unmount,
        and remove the sandbox; the daemon's log stays next to it."""
        if self.port is not None:
            with suppress(adbutils.AdbError, OSError):
                self.disconnect()
        self.kill()
        kill_sandbox_processes(self.sandbox)
        release_data_storage(self.sandbox)
        shutil.rmtree(self.sandbox, ignore_errors=True)

    def _spawn_daemon(self, timeout: float) -> None:
        """Start adbd (on the phone's port once it has one) and wait for its ready file."""
        ready = self.workdir / "daemon.port"
        ready.unlink(missing_ok=True)
        command = [sys.executable, str(DAEMON), "--sandbox", str(self.sandbox), "--ready-file", str(ready),
                   "--port", str(self.port or 0)]
        if self._quota_bytes is not None:
            command += ["--quota-bytes", str(self._quota_bytes)]
        with self.log_path.open("a") as log:
            self._daemon = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._env,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self._daemon.poll() is not None:
                raise RuntimeError(f"the loopback daemon exited with {self._daemon.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the loopback daemon did not listen within {timeout} s; see {self.log_path}")
            time.sleep(0.01)
        self.port = int(ready.read_text())


@pytest.fixture(scope="session")
def adb_server(tmp_path_factory) -> Iterator[AdbServer]:
    """A private adb server for the session, exported to this process and its children."""
    server = start_adb_server(tmp_path_factory.mktemp("adb-home"))
    exported = {**ADB_ENV, "ANDROID_ADB_SERVER_PORT": str(server.port)}
    saved = {name: os.environ.get(name) for name in exported}
    os.environ.update(exported)
    try:
        yield server
    finally:
        server.run("kill-server")
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def phone_factory(adb_server, tmp_path) -> Iterator[Callable[..., LoopbackPhone]]:
    """Make phones (not started): ``phone_factory(model=..., props=..., env=..., quota_bytes=...,
    storage_bytes=...)``; all are closed after the test."""
    phones: list[LoopbackPhone] = []

    def make(model: str = "Pixel 7", **options) -> LoopbackPhone:
        workdir = tmp_path / f"phone{len(phones)}"
        workdir.mkdir()
        phones.append(LoopbackPhone(adb_server, workdir, model, **options))
        return phones[-1]

    with ExitStack() as closing:  # every phone is closed, even when closing another one fails
        yield make
        for phone in phones:
            closing.callback(phone.close)


@pytest.fixture
def phone(phone_factory) -> LoopbackPhone:
    """One started phone: a Pixel 7 with the default properties."""
    return phone_factory().start()
