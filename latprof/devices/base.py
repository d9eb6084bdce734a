"""The device contract: what the host, a phone and a farm of phones each implement.

A device is built for one configuration (:class:`DeviceConfig`: timing method, threads, delegate,
dtype), which it reports in its provenance; every measurement it makes belongs to that
configuration.  What a device can do is declared (:attr:`Device.methods`), never probed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from latprof.errors import LatprofError
from latprof.measurement import NetworkProfile, Provenance, Timing
from latprof.ops import OpSpec
from latprof.timing import DEFAULT_METHOD, check_method

Progress = Callable[[int], None]
DTYPES = ("float32", "int8")


def _no_progress(done: int) -> None:
    """The default progress callback."""


@dataclass(frozen=True)
class DeviceConfig:
    """Everything besides the device itself that changes a latency: a LUT is valid for exactly one."""

    method: str = DEFAULT_METHOD
    threads: int = 1
    delegate: str = "xnnpack"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_method(self.method)
        if self.threads < 1:
            raise LatprofError(f"threads must be >= 1, not {self.threads}")
        if self.dtype not in DTYPES:
            raise LatprofError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")


class Device(ABC):
    """Runs .tflite models and times them, in one :class:`DeviceConfig`."""

    #: The timing methods this kind of device can measure with.
    methods: ClassVar[frozenset[str]]
    #: The delegates it can run models with.
    delegates: ClassVar[tuple[str, ...]]
    config: DeviceConfig

    def _check_config(self, config: DeviceConfig) -> None:
        """Refuse a configuration this device cannot measure, before anything runs."""
        if config.method not in self.methods:
            raise LatprofError(f"{type(self).__name__} cannot time ops {config.method}; it offers "
                               f"{', '.join(sorted(self.methods))}")
        if config.delegate not in self.delegates:
            raise LatprofError(f"delegate {config.delegate!r} is not available here; use one of {', '.join(self.delegates)}")

    @abstractmethod
    def provenance(self) -> Provenance:
        """Device, runtime, binary hash and the configuration: what makes two measurements comparable."""

    @abstractmethod
    def measure_models(self, models: Sequence[str | Path], progress: Progress = _no_progress) -> list[Timing]:
        """Time whole models end to end, now, interleaved so that drift hits all alike."""

    @abstractmethod
    def time_isolated(self, models: Sequence[str | Path], progress: Progress = _no_progress) -> list[Timing]:
        """Time single-op models (method ``isolated``).  A device that keeps results (a phone)
        reuses the ones it holds, so a killed run resumes."""

    @abstractmethod
    def profile_networks(self, models: Sequence[Path], ops: Sequence[Sequence[OpSpec]],
                         progress: Progress = _no_progress) -> tuple[list[NetworkProfile], dict[str, str]]:
        """Method ``in-network``: each op's time inside its network (``ops[i]`` are the ops of
        ``models[i]`` in execution order) and each network timed whole; and, by model, why a
        network could not be split into its ops."""
