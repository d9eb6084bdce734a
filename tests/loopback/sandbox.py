"""The loopback phone's filesystem: a folder that looks like an Android phone to the commands the
daemon chroots into it, and helpers that change the phone's state (heat, clocks, battery) at run time.

Device paths, as a command on the phone sees them:

    /system/bin/sh                 -> /bin/sh (the host's dash: device scripts must be POSIX sh)
    /system/bin/getprop            `getprop NAME [DEFAULT]`, bare `getprop` lists `[name]: [value]`
    /system/bin/dumpsys            `dumpsys thermalservice`, `dumpsys battery` and the GLES line of
                                   `dumpsys SurfaceFlinger` (property debug.loopback.gles; none when empty),
                                   in Android's formats
    /system/build.prop             the system properties getprop reads (name=value lines)
    /system/etc/loopback/thermal_status   the thermal service's status, 0 (none) ... 6 (shutdown)
    /sys/devices/system/cpu/...    one cpuN per host CPU (so taskset masks are valid here), big.LITTLE
                                   clocks: the highest-numbered half fastest
    /sys/class/thermal/thermal_zone0/{type,temp}, /sys/class/power_supply/{battery,usb,ac}/...
    /data/local/tmp

The host's /usr, /etc, /dev, /proc and the Python installation are bound in by the daemon per
command; on the host side those folders are empty mount points, so removing a sandbox is safe.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from latprof.devices.host import cpu_model

LITTLE_MAX_KHZ, BIG_MAX_KHZ, MIN_KHZ = 1804800, 2419200, 300000
HOST_ABIS = {"x86_64": ("x86_64", "x86_64,x86"), "aarch64": ("arm64-v8a", "arm64-v8a")}
THERMAL_STATUS = "system/etc/loopback/thermal_status"
THERMAL_ZONE = "sys/class/thermal/thermal_zone0"
POWER_SUPPLY = "sys/class/power_supply"

GETPROP = r"""#!/system/bin/sh
# getprop [NAME [DEFAULT]]: the loopback phone's system properties, from /system/build.prop.
if [ $# -eq 0 ]; then
    while IFS= read -r line; do
        case $line in ''|'#'*) ;; *) printf '[%s]: [%s]\n' "${line%%=*}" "${line#*=}" ;; esac
    done < /system/build.prop
    exit 0
fi
while IFS= read -r line; do
    case $line in "$1="*) printf '%s\n' "${line#*=}"; exit 0 ;; esac
done < /system/build.prop
printf '%s\n' "${2:-}"
"""

DUMPSYS = r"""#!/system/bin/sh
# dumpsys [thermalservice|battery|SurfaceFlinger]: the loopback phone's state (see sandbox.py), in
# Android's formats (of SurfaceFlinger's long dump, only the GPU line "GLES: vendor, renderer, version").
status=$(cat /system/etc/loopback/thermal_status)
supply=/sys/class/power_supply

celsius() {  # millidegrees -> 45.5
    printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100))
}

temperatures() {
    for zone in /sys/class/thermal/thermal_zone*; do
        printf '\tTemperature{mValue=%s, mType=0, mName=%s, mStatus=%s}\n' \
            "$(celsius "$(cat "$zone/temp")")" "$(cat "$zone/type")" "$status"
    done
    printf '\tTemperature{mValue=%s, mType=2, mName=battery, mStatus=%s}\n' \
        "$(celsius $(($(cat $supply/battery/temp) * 100)))" "$status"
}

listeners() {
    printf '%s:\n\tcallbacks: 1\n\tkilled: false\n\tbroadcasts count: -1\n' "$1"
}

thermalservice() {
    echo "IsStatusOverride: false"
    listeners ThermalEventListeners
    listeners ThermalStatusListeners
    echo "Thermal Status: $status"
    echo "Cached temperatures:"
    temperatures
    echo "HAL Ready: true"
    printf 'HAL connection:\n\tThermalHAL 2.0 connected: yes\n'
    echo "Current temperatures from HAL:"
    temperatures
    echo "Current cooling devices from HAL:"
    echo "Temperature static thresholds from HAL:"
}

powered() {
    [ "$(cat "$supply/$1/online")" = 1 ] && echo true || echo false
}

battery() {
    case $(cat $supply/battery/status) in
        Charging) code=2 ;; Discharging) code=3 ;; "Not charging") code=4 ;; Full) code=5 ;; *) code=1 ;;
    esac
    echo "Current Battery Service state:"
    echo "  AC powered: $(powered ac)"
    echo "  USB powered: $(powered usb)"
    echo "  Wireless powered: false"
    echo "  Max charging current: 0"
    echo "  Max charging voltage: 0"
    echo "  Charge counter: 0"
    echo "  status: $code"
    echo "  health: 2"
    echo "  present: true"
    echo "  level: $(cat $supply/battery/capacity)"
    echo "  scale: 100"
    echo "  voltage: $(($(cat $supply/battery/voltage_now) / 1000))"
    echo "  temperature: $(cat $supply/battery/temp)"
    echo "  technology: Li-ion"
}

surfaceflinger() {
    echo "Build configuration: [sf PRESENT_TIME_OFFSET=0 FORCE_HWC_FOR_RBG_TO_YUV=1]"
    gles=$(getprop debug.loopback.gles)
    [ -z "$gles" ] || echo "GLES: $gles"
}

case ${1:-} in
    thermalservice) thermalservice ;;
    battery) battery ;;
    SurfaceFlinger) surfaceflinger ;;
    '') thermalservice; battery ;;
    *) echo "Can't find service: $1" >&2; exit 1 ;;
esac
"""


def phone_properties(model: str = "Pixel 7", overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The system properties of a loopback phone; ``overrides`` replaces or adds any of them."""
    device = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_") or "loopback"
    machine = platform.machine()
    abi, abilist = HOST_ABIS.get(machine, (machine, machine))
    properties = {
        "ro.board.platform": "loopback",
        "ro.build.fingerprint": f"loopback/{device}/{device}:14/LOOPBACK/1:userdebug/test-keys",
        "ro.build.version.release": "14",
        "ro.build.version.sdk": "34",
        "debug.loopback.gles": "Loopback, Loopback GPU (host CPU), OpenGL ES 3.2",
        "ro.hardware": device,
        "ro.hardware.egl": "loopback",
        "ro.product.brand": "loopback",
        "ro.product.cpu.abi": abi,
        "ro.product.cpu.abilist": abilist,
        "ro.product.device": device,
        "ro.product.manufacturer": "Loopback",
        "ro.product.model": model,
        "ro.product.name": device,
        "ro.serialno": f"LOOPBACK-{device.upper()}",
        "ro.soc.manufacturer": "Loopback",
        "ro.soc.model": cpu_model(),  # the SoC a loopback phone really runs on
    }
    return {**properties, **(overrides or {})}


def device_path(root: Path, path: str) -> Path:
    """The host path of a device path inside the sandbox (no symlinks resolved)."""
    return root / path.lstrip("/")


def write_state(path: Path, value: object) -> None:
    """Replace a state file atomically, so a command never reads it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(f"{value}\n")
    os.replace(temporary, path)


def make_sandbox(root: Path, model: str = "Pixel 7", props: Mapping[str, str] | None = None) -> Path:
    """Build the phone's filesystem under ``root`` (a new folder) and return ``root``."""
    root.mkdir(parents=True)
    bin_dir = root / "system" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "sh").symlink_to("/bin/sh")
    for name, script in (("getprop", GETPROP), ("dumpsys", DUMPSYS)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    properties = phone_properties(model, props)
    (root / "system" / "build.prop").write_text("".join(f"{key}={value}\n" for key, value in sorted(properties.items())))
    (root / "data" / "local" / "tmp").mkdir(parents=True)
    make_cpus(root, os.cpu_count() or 1)
    write_state(root / THERMAL_ZONE / "type", "cpu")
    set_thermal(root, status=0, temperature_c=35.0)
    for supply, kind in (("battery", "Battery"), ("usb", "USB"), ("ac", "Mains")):
        write_state(root / POWER_SUPPLY / supply / "type", kind)
    write_state(root / POWER_SUPPLY / "battery" / "voltage_now", 4_200_000)
    set_battery(root, level=87, charging=True, temperature_c=30.0)
    return root


def cpu_max_khz(cpu: int, count: int) -> int:
    """big.LITTLE: the lower half of the CPUs is little, the rest (at least one) big."""
    return LITTLE_MAX_KHZ if cpu < count // 2 else BIG_MAX_KHZ


def make_cpus(root: Path, count: int) -> None:
    cpus = root / "sys" / "devices" / "system" / "cpu"
    span = "0" if count == 1 else f"0-{count - 1}"
    for name in ("possible", "present", "online"):
        write_state(cpus / name, span)
    for cpu in range(count):
        freq = cpus / f"cpu{cpu}" / "cpufreq"
        top = cpu_max_khz(cpu, count)
        for name, value in (("cpuinfo_max_freq", top), ("cpuinfo_min_freq", MIN_KHZ), ("scaling_max_freq", top),
                            ("scaling_min_freq", MIN_KHZ), ("scaling_cur_freq", top),
                            ("scaling_governor", "schedutil")):
            write_state(freq / name, value)


def set_thermal(root: Path, status: int | None = None, temperature_c: float | None = None) -> None:
    """The thermal service's status (0 none, 1 light, 2 moderate, 3 severe, ... 6 shutdown) and the
    CPU zone's temperature, as `dumpsys thermalservice` and thermal_zone0/temp report them."""
    if status is not None:
        write_state(root / THERMAL_STATUS, status)
    if temperature_c is not None:
        write_state(root / THERMAL_ZONE / "temp", round(temperature_c * 1000))


def set_cpu_freq(root: Path, khz: int | None = None, cpus: Iterable[int] | None = None) -> None:
    """Throttle (or, with ``khz=None``, restore to their maximum) the current clock of ``cpus``
    (default: all), as a hot phone's scaling_cur_freq shows."""
    count = os.cpu_count() or 1
    for cpu in range(count) if cpus is None else cpus:
        value = cpu_max_khz(cpu, count) if khz is None else khz
        write_state(root / "sys" / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq", value)


def set_battery(root: Path, level: int | None = None, charging: bool | None = None,
                temperature_c: float | None = None) -> None:
    """Battery level (percent), charging over USB or not, and battery temperature."""
    supply = root / POWER_SUPPLY
    if level is not None:
        write_state(supply / "battery" / "capacity", level)
    if charging is not None:
        write_state(supply / "battery" / "status", "Charging" if charging else "Discharging")
        write_state(supply / "usb" / "online", int(charging))
        write_state(supply / "ac" / "online", 0)
    if temperature_c is not None:
        write_state(supply / "battery" / "temp", round(temperature_c * 10))


def limit_data_storage(root: Path, size_bytes: int) -> None:
    """Make /data a tmpfs of ``size_bytes`` (root only): then the kernel itself answers "No space
    left on device" to pushes and to commands writing on the phone. Undo with release_data_storage."""
    if os.geteuid() != 0:
        raise PermissionError("a size-limited /data needs root (mounts a tmpfs); use the daemon's quota instead")
    data = root / "data"
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0771", "loopback-data", str(data)],
                   check=True, capture_output=True, timeout=10)
    (data / "local" / "tmp").mkdir(parents=True)


def release_data_storage(root: Path) -> None:
    data = root / "data"
    if os.path.ismount(data):
        subprocess.run(["umount", "--lazy", str(data)], check=True, capture_output=True, timeout=10)
