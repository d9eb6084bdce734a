"""Devices that run .tflite models and time them; chosen by name on the command line.

Every device offers ``provenance()``, ``measure_ops(models)`` and ``measure_models(models)``:
``host`` is this computer's CPU (LiteRT in this process), anything else is an adb serial.  A phone
keeps its results, so a killed run resumes; ``fresh=True`` asks for timings taken now, which is
what a probe of the device's state needs (the host always times anew).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from latprof.devices.host import HostDevice, MeasureSettings
from latprof.errors import LatprofError


def get_device(names: str | Sequence[str], settings: MeasureSettings = MeasureSettings(),
               binary: str | Path | None = None, phone_settings=None, reconnect_timeout: float = 120.0):
    """``'host'``, one adb serial, or several serials of identical phones (a farm)."""
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    if names == ["host"]:
        return HostDevice(settings)
    if "host" in names:
        raise LatprofError("measure on the host or on phones, not both in one run")
    if binary is None:
        raise LatprofError("measuring on a phone needs --benchmark-binary PATH (LiteRT's benchmark_model for "
                           "the phone's ABI)")
    from latprof.devices.android import AndroidDevice, PhoneSettings
    from latprof.devices.farm import PhoneFarm

    phones = [AndroidDevice(serial, binary, settings.threads, settings.delegate, settings.dtype,
                            phone_settings or PhoneSettings(), reconnect_timeout) for serial in names]
    return phones[0] if len(phones) == 1 else PhoneFarm(phones)
