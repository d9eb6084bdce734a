"""Devices that run .tflite models and time them; chosen by name on the command line.

Every device implements :class:`latprof.devices.base.Device`: ``host`` is this computer's CPU
(LiteRT in this process), anything else is an adb serial (a phone), and several serials of
identical phones are a farm.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from latprof.devices.base import Device, DeviceConfig
from latprof.devices.host import HostDevice, HostSettings
from latprof.errors import LatprofError

__all__ = ["Device", "DeviceConfig", "HostDevice", "HostSettings", "get_device"]


def get_device(names: str | Sequence[str], config: DeviceConfig = DeviceConfig(),
               host_settings: HostSettings = HostSettings(), binary: str | Path | None = None,
               phone_settings=None, reconnect_timeout: float = 120.0) -> Device:
    """``'host'``, one adb serial, or several serials of identical phones (a farm)."""
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    if names == ["host"]:
        return HostDevice(config, host_settings)
    if "host" in names:
        raise LatprofError("measure on the host or on phones, not both in one run")
    if binary is None:
        raise LatprofError("measuring on a phone needs --benchmark-binary PATH (LiteRT's benchmark_model for "
                           "the phone's ABI)")
    from latprof.devices.android import AndroidDevice, PhoneSettings
    from latprof.devices.farm import PhoneFarm

    phones = [AndroidDevice(serial, binary, config, phone_settings or PhoneSettings(), reconnect_timeout)
              for serial in names]
    return phones[0] if len(phones) == 1 else PhoneFarm(phones)
