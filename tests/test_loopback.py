"""The loopback phone, used as latprof will use a phone: adbutils and the adb CLI talking to a real adb
server, which talks to the loopback daemon over TCP."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import adbutils
import pytest
from adbutils import AdbError

TIMEOUT = 10.0
MIB = 1024 * 1024


def shell(phone, command: str) -> str:
    return phone.device().shell(command, timeout=TIMEOUT)


def shell2(phone, command: str) -> adbutils.ShellReturn:
    return phone.device().shell2(command, timeout=TIMEOUT, v2=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for_text(path: Path, timeout: float = TIMEOUT) -> str:
    """What a job on the phone wrote, once it has written it."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} was not written within {timeout} s"
        time.sleep(0.05)
    return path.read_text()


def test_shell_v1_merges_stderr_into_stdout(phone):
    assert shell(phone, "echo out; echo err >&2").splitlines() == ["out", "err"]


def test_shell_v2_reports_exit_code_and_separate_stderr(phone):
    result = shell2(phone, "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_adb_cli_shell_exec_out_and_stdin(phone, adb_server):
    result = adb_server.run("-s", phone.serial, "shell", "echo cli; echo oops >&2; exit 5")
    assert (result.returncode, result.stdout, result.stderr) == (5, "cli\n", "oops\n")
    assert adb_server.run("-s", phone.serial, "exec-out", "echo raw").stdout == "raw\n"
    piped = adb_server.run("-s", phone.serial, "shell", "tr a-z A-Z", input="from the host\n")
    assert (piped.returncode, piped.stdout) == (0, "FROM THE HOST\n")


def test_push_and_pull_3_mib_round_trip_with_mode(phone, tmp_path):
    payload = os.urandom(3 * MIB)
    source, back = tmp_path / "model.bin", tmp_path / "back.bin"
    source.write_bytes(payload)
    sync = phone.device().sync
    sync.push(source, "/data/local/tmp/new/dir/model.bin", mode=0o755)  # parent folders created
    info = sync.stat("/data/local/tmp/new/dir/model.bin")
    # adbd copies the owner's permission bits to group and other: 0755 arrives as 0777.
    assert (info.size, stat.S_ISREG(info.mode), stat.S_IMODE(info.mode)) == (len(payload), True, 0o777)
    sync.pull("/data/local/tmp/new/dir/model.bin", back)
    assert sha256(back.read_bytes()) == sha256(payload)
    assert sha256(phone.device_path("/data/local/tmp/new/dir/model.bin").read_bytes()) == sha256(payload)


def test_adb_cli_push_and_pull(phone, adb_server, tmp_path):
    payload = os.urandom(3 * MIB)
    source, back = tmp_path / "cli.bin", tmp_path / "cli-back.bin"
    source.write_bytes(payload)
    source.chmod(0o644)
    pushed = adb_server.run("-s", phone.serial, "push", str(source), "/data/local/tmp/cli/cli.bin")
    assert pushed.returncode == 0, pushed.stderr
    assert stat.S_IMODE(phone.device_path("/data/local/tmp/cli/cli.bin").stat().st_mode) == 0o666
    pulled = adb_server.run("-s", phone.serial, "pull", "/data/local/tmp/cli/cli.bin", str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert sha256(back.read_bytes()) == sha256(payload)


def test_stat_and_list(phone):
    sync = phone.device().sync
    sync.push(b"listed", "/data/local/tmp/listed.txt")
    assert {".", "..", "listed.txt"} <= {entry.path for entry in sync.list("/data/local/tmp")}
    assert sync.stat("/data/local/tmp/listed.txt").size == len(b"listed")
    assert sync.stat("/data/local/tmp/missing").mode == 0  # how adbd says "nothing there"
    assert stat.S_ISLNK(sync.stat("/system/bin/sh").mode)  # STAT is lstat


def test_properties_banner_and_dumpsys(phone_factory):
    phone = phone_factory(model="Galaxy S24", props={"ro.build.version.sdk": "35"}).start()
    assert shell(phone, "getprop ro.product.model") == "Galaxy S24"
    assert shell(phone, "getprop ro.build.version.sdk") == "35"
    assert shell(phone, "getprop no.such.property") == ""
    assert "[ro.product.model]: [Galaxy S24]" in shell(phone, "getprop").splitlines()
    listed = {info.serial: info.tags for info in phone.server.client().list(extended=True)}
    assert listed[phone.serial]["model"] == "Galaxy_S24"  # from the connection banner

    phone.set_thermal(status=3, temperature_c=48.5)
    thermal = shell(phone, "dumpsys thermalservice")
    assert "Thermal Status: 3" in thermal.splitlines()
    assert "Temperature{mValue=48.5, mType=0, mName=cpu, mStatus=3}" in thermal
    assert shell(phone, "cat /sys/class/thermal/thermal_zone0/temp") == "48500"
    phone.set_battery(level=42, charging=False)
    battery = shell(phone, "dumpsys battery").splitlines()
    assert {"  level: 42", "  USB powered: false", "  status: 3"} <= set(battery)
    # The GPU, as SurfaceFlinger names it (from the first line that starts "GLES: ").
    assert "GLES: Loopback, Loopback GPU (host CPU), OpenGL ES 3.2" in shell(phone, "dumpsys SurfaceFlinger").splitlines()
    assert shell(phone, "getprop ro.hardware.egl") == "loopback"


def test_cpus_mirror_the_host_with_big_cores_last(phone):
    count = os.cpu_count()
    assert shell(phone, "cat /sys/devices/system/cpu/possible") == ("0" if count == 1 else f"0-{count - 1}")
    top = [int(shell(phone, f"cat /sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq")) for cpu in range(count)]
    assert top == sorted(top) and top[-1] == 2419200 and (count == 1 or top[0] == 1804800)
    big_mask = sum(1 << cpu for cpu, khz in enumerate(top) if khz == max(top))
    assert shell2(phone, f"taskset {big_mask:x} true").returncode == 0  # a mask derived from sysfs is valid here
    phone.set_cpu_freq(998400, cpus=[count - 1])
    assert shell(phone, f"cat /sys/devices/system/cpu/cpu{count - 1}/cpufreq/scaling_cur_freq") == "998400"


def test_commands_run_chrooted_in_the_phone(phone_factory, tmp_path):
    host_only = tmp_path / "host-only.txt"
    host_only.write_text("not on the phone")
    phone = phone_factory(env={"BENCHMARK_MODEL_FORMAT": "v2"}).start()
    assert shell(phone, "echo $BENCHMARK_MODEL_FORMAT $TMPDIR $HOME $PATH") == "v2 /data/local/tmp / /system/bin:/usr/bin:/bin"
    assert shell(phone, "readlink /proc/self/root") == "/"
    assert shell2(phone, "test -x /system/bin/sh && test -d /data/local/tmp").returncode == 0
    assert shell2(phone, f"test -e {host_only} || test -e /root/.bashrc || test -e /tmp").returncode == 1
    script = f"#!{sys.executable}\nimport os, tempfile\nprint(os.getcwd(), tempfile.gettempdir())\n"
    phone.device().sync.push(script.encode(), "/data/local/tmp/probe.py", mode=0o755)
    assert shell2(phone, "/data/local/tmp/probe.py").stdout == "/ /data/local/tmp\n"


def test_sync_paths_cannot_leave_the_sandbox(phone):
    outside = phone.sandbox.parent / "outside.txt"
    outside.write_text("host secret")
    sync = phone.device().sync
    phone.device_path("/data/local/tmp/escape").symlink_to("../../../../outside.txt")
    for path in ("/../outside.txt", "/data/../../outside.txt", "/data/local/tmp/escape", "/data/local/tmp/escape/"):
        with pytest.raises(AdbError):
            sync.read_text(path)
    assert sync.stat("/../outside.txt").mode == 0  # nothing there, as far as the phone knows
    assert stat.S_ISLNK(sync.stat("/data/local/tmp/escape").mode)  # the link itself is on the phone
    with pytest.raises(AdbError):
        sync.push(b"evil", "/data/../../pushed.txt")
    assert not (phone.sandbox.parent / "pushed.txt").exists()
    # An absolute symlink points into the phone, as it does for commands in the chroot.
    phone.device_path("/data/local/tmp/props").symlink_to("/system/build.prop")
    assert "ro.product.model=Pixel 7" in sync.read_text("/data/local/tmp/props")


def test_detached_job_outlives_a_killed_adbd(phone):
    shell(phone, "setsid nohup sh -c 'sleep 1; echo done > /data/local/tmp/x' >/dev/null 2>&1 &")
    phone.kill()
    assert wait_for_text(phone.device_path("/data/local/tmp/x")) == "done\n"


def test_closing_the_stream_stops_the_command_but_not_nohup_jobs(phone):
    """A closed stream ends the command, by SIGHUP or, if it writes first, by SIGPIPE, as on a
    phone; a nohup job lives on."""
    stream = phone.device().shell(
        "nohup sh -c 'sleep 1; echo alive > /data/local/tmp/alive' >/dev/null 2>&1 & "
        "echo started > /data/local/tmp/started; "
        "while :; do echo tick; echo t >> /data/local/tmp/ticks; sleep 0.2; done", stream=True)
    wait_for_text(phone.device_path("/data/local/tmp/started"))
    stream.close()
    ticks, deadline = phone.device_path("/data/local/tmp/ticks"), time.monotonic() + TIMEOUT
    while True:
        before = ticks.stat().st_size
        time.sleep(1.0)
        if ticks.stat().st_size == before:
            break
        assert time.monotonic() < deadline, "the command still runs after its stream was closed"
    assert wait_for_text(phone.device_path("/data/local/tmp/alive")) == "alive\n"


def test_killed_adbd_goes_offline_and_comes_back_after_restart(phone):
    phone.kill()
    phone.wait_for_state("offline")
    phone.restart()
    assert phone.server.state(phone.serial) == "device"
    assert shell(phone, "echo back") == "back"


def test_quota_refuses_pushes_with_no_space_left(phone_factory, adb_server, tmp_path):
    phone = phone_factory(quota_bytes=MIB).start()
    sync = phone.device().sync
    sync.push(os.urandom(MIB // 2), "/data/local/tmp/fits.bin")
    with pytest.raises(AdbError):
        sync.push(os.urandom(MIB), "/data/local/tmp/too-big.bin")
    assert not phone.device_path("/data/local/tmp/too-big.bin").exists()
    source = tmp_path / "too-big.bin"
    source.write_bytes(os.urandom(MIB))
    pushed = adb_server.run("-s", phone.serial, "push", str(source), "/data/local/tmp/too-big.bin")
    assert pushed.returncode != 0 and "No space left on device" in pushed.stdout + pushed.stderr  # adb 29: stdout


def test_small_data_partition_fills_up_for_commands_and_pushes(phone_factory, adb_server, tmp_path):
    phone = phone_factory(storage_bytes=MIB).start()
    filled = shell2(phone, "dd if=/dev/zero of=/data/local/tmp/fill bs=64k count=32")
    assert filled.returncode != 0 and "No space left on device" in filled.stderr
    source = tmp_path / "small.bin"
    source.write_bytes(os.urandom(64 * 1024))
    pushed = adb_server.run("-s", phone.serial, "push", str(source), "/data/local/tmp/small.bin")
    assert pushed.returncode != 0 and "No space left on device" in pushed.stdout + pushed.stderr  # adb 29: stdout


def test_two_phones_at_once(phone_factory):
    phones = [phone_factory(model=model).start() for model in ("Pixel 7", "Pixel 8")]
    assert [shell(phone, "getprop ro.product.model") for phone in phones] == ["Pixel 7", "Pixel 8"]


def test_code_under_test_reaches_the_private_server(phone):
    assert adbutils.AdbClient().port == phone.server.port  # built after the fixture exported the port
    listed = subprocess.run(
        [sys.executable, "-c", "import adbutils; print(*(d.serial for d in adbutils.AdbClient().device_list()))"],
        capture_output=True, text=True, timeout=TIMEOUT, check=True)
    assert phone.serial in listed.stdout.split()
