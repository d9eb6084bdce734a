"""The embedded default device: this computer's CPU, running .tflite models with LiteRT.

Measurement hygiene: the process is pinned to fixed cores, every model gets warm-up runs, then
invocations are timed one by one until the median is known to within ``rel_ci`` (or time runs out).
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import numpy as np

from latprof.errors import LatprofError
from latprof.measurement import Provenance, Timing

DELEGATES = ("xnnpack", "none")
METHOD = "litert-interleaved-bursts/v1"
CHUNK = 256
BURST_NS = 2_000_000


@dataclass(frozen=True)
class MeasureSettings:
    """How a model is run and timed; everything here that changes latency goes into provenance."""

    threads: int = 1
    delegate: str = "xnnpack"
    dtype: str = "float32"
    warmup_runs: int = 10
    rounds: int = 20
    quantile: float = 0.1

    def __post_init__(self) -> None:
        if self.threads < 1 or self.delegate not in DELEGATES:
            raise LatprofError(f"threads must be >= 1 and delegate one of {', '.join(DELEGATES)}")


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def _runtime_sha256() -> str:
    """Hash of the LiteRT interpreter library: a LUT is only valid for the binary it timed."""
    import ai_edge_litert

    library = Path(ai_edge_litert.__file__).parent / "_pywrap_litert_interpreter_wrapper.so"
    return hashlib.sha256(library.read_bytes()).hexdigest() if library.is_file() else "unknown"


class HostDevice:
    """Runs models in this process with LiteRT's interpreter."""

    name = "host"

    def __init__(self, settings: MeasureSettings = MeasureSettings()):
        self.settings = settings
        available = sorted(os.sched_getaffinity(0))
        if settings.threads > len(available):
            raise LatprofError(f"{settings.threads} threads asked for, this host offers {len(available)} cores")
        # Pin to the last cores: the first core takes most interrupts and housekeeping.
        self.cores = available[-settings.threads:]

    def provenance(self) -> Provenance:
        s = self.settings
        return Provenance(
            device="host", hardware=f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} cpus)",
            runtime=f"ai-edge-litert {version('ai-edge-litert')}", binary_sha256=_runtime_sha256(),
            threads=s.threads, delegate=s.delegate, dtype=s.dtype, method=METHOD,
            details={"hostname": socket.gethostname(), "affinity": self.cores,
                     "converter": f"tensorflow {version('tensorflow')}", "python": platform.python_version(),
                     "warmup_runs": s.warmup_runs, "rounds": s.rounds, "quantile": s.quantile})

    def _interpreter(self, model: Path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if self.settings.delegate == "xnnpack" else \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        from latprof.tflite_file import read_model_bytes

        read_model_bytes(model)
        try:
            interpreter = Interpreter(model_path=str(model), num_threads=self.settings.threads,
                                      experimental_op_resolver_type=resolver)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise LatprofError(f"{model}: LiteRT cannot load it ({str(exc).strip().splitlines()[0]})") from None
        rng = np.random.default_rng(0)
        for detail in interpreter.get_input_details():
            dtype = np.dtype(detail["dtype"])
            data = rng.integers(-100, 100, detail["shape"]) if dtype.kind in "iu" else \
                rng.standard_normal(detail["shape"])
            interpreter.set_tensor(detail["index"], data.astype(dtype))
        return interpreter

    def measure(self, model: str | Path) -> Timing:
        return self.measure_many([model])[0]

    def measure_many(self, models: list[str | Path], progress=lambda done: None) -> list[Timing]:
        """Time models interleaved: round after round, each model runs one short burst.

        This machine's speed drifts by tens of percent over seconds (neighbours on shared cores):
        timing one model after another would compare models measured at different speeds.
        Interleaving spreads every model's bursts over the same span, and a low quantile of its
        burst medians estimates its latency when the core is not contended.
        """
        previous = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cores)
        try:
            timings: list[Timing] = []
            for start in range(0, len(models), CHUNK):
                chunk = models[start:start + CHUNK]
                timings += self._interleaved([self._interpreter(Path(m)) for m in chunk])
                progress(len(timings))
            return timings
        finally:
            os.sched_setaffinity(0, previous)

    def _interleaved(self, interpreters: list) -> list[Timing]:
        s = self.settings
        clock = time.perf_counter_ns
        bursts = []
        for interpreter in interpreters:  # warm up and size each model's burst to about BURST_NS
            for _ in range(s.warmup_runs):
                interpreter.invoke()
            t0 = clock()
            interpreter.invoke()
            bursts.append(max(3, int(BURST_NS / max(1, clock() - t0))))
        medians: list[list[float]] = [[] for _ in interpreters]
        samples: list[list[float]] = [[] for _ in interpreters]
        order = list(range(len(interpreters)))
        rng = np.random.default_rng(0)
        for _ in range(s.rounds):
            rng.shuffle(order)
            for index in order:
                invoke, burst = interpreters[index].invoke, []
                invoke()  # first call after another model: caches hold the other model's data
                for _ in range(bursts[index]):
                    t0 = clock()
                    invoke()
                    burst.append((clock() - t0) / 1000.0)
                medians[index].append(float(np.median(burst)))
                samples[index] += burst
        return [Timing.from_bursts(m, x, s.quantile) for m, x in zip(medians, samples)]
