"""Devices that run .tflite models and time them; chosen by name on the command line."""

from __future__ import annotations

from latprof.devices.host import HostDevice, MeasureSettings
from latprof.errors import LatprofError


def get_device(name: str, settings: MeasureSettings = MeasureSettings()) -> HostDevice:
    if name == "host":
        return HostDevice(settings)
    raise LatprofError(f"unknown device {name!r}: this version measures on 'host' (this computer's CPU)")
