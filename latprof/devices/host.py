"""The embedded default device: this computer's CPU, running .tflite models with LiteRT.

Measurement hygiene: the process is pinned to fixed cores, every model gets warm-up runs, models
are timed interleaved over rounds (so machine-speed drift hits all alike), each until its estimate
is stable or a cap is reached; each round value is divided by the machine's pace at that moment,
read off the models timed just before and after it (``latprof.measurement.neighbour_pace``), and
a low quantile over rounds is kept, with the rounds it took and its uncertainty; fixed inputs are
written before every sample.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import numpy as np

from latprof.devices.base import Device, DeviceConfig, Progress, _no_progress
from latprof.errors import LatprofError
from latprof.measurement import NetworkProfile, Provenance, Timing, known_within, paces_by_model, quantile_uncertainty_us
from latprof.native import quiet_native_output
from latprof.ops import OpSpec
from latprof.timing import IN_NETWORK, ISOLATED, method_tag

CHUNK = 256  # interpreters held at once; also the models whose rounds interleave
# A round times a burst of at least this many invokes, and this much of the model.
BURST, BURST_US = 3, 2000.0
PROFILED_RUNS = 3  # in-network: profiled runs of a network a round; an op's round value is their mean
IN_NETWORK_HOW = ("XNNPACK's per-operator times inside whole networks, read through LiteRT's profiler; each "
                  "network then timed whole as models are measured")
ISOLATED_HOW = "single-op models timed in steady bursts, interleaved over rounds"


@dataclass(frozen=True)
class HostSettings:
    """How long and how carefully the host times a model; all of it goes into provenance."""

    warmup_runs: int = 10
    rounds: int = 10
    min_seconds: float = 2.0
    quantile: float = 0.25
    # After ``rounds`` (and ``min_seconds``), a model goes on until its estimate is known within
    # ``stable_pct`` (or measurement.STABLE_FLOOR_US, for ops of a few microseconds), up to ``max_rounds``.
    max_rounds: int = 20
    stable_pct: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.rounds <= self.max_rounds:
            raise LatprofError(f"rounds must be between 1 and max_rounds ({self.max_rounds}), not {self.rounds}")

    def stable(self, round_values: list[float]) -> bool:
        """Whether a model's estimate is known well enough to stop timing it."""
        return bool(known_within(quantile_uncertainty_us(round_values, self.quantile),
                                 float(np.quantile(round_values, self.quantile)), self.stable_pct))


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
def _profiler_sha256() -> str:
    from latprof.litert_profiler import library_sha256

    return library_sha256()


@cache
def _runtime_sha256() -> str:
    """Hash of the LiteRT interpreter library: a LUT is only valid for the binary it timed."""
    import ai_edge_litert

    library = Path(ai_edge_litert.__file__).parent / "_pywrap_litert_interpreter_wrapper.so"
    return hashlib.sha256(library.read_bytes()).hexdigest() if library.is_file() else "unknown"


class HostDevice(Device):
    """Runs models in this process with LiteRT: whole models and single-op models with its
    interpreter, networks profiled op by op with its compiled-model API and profiler."""

    methods = frozenset({IN_NETWORK, ISOLATED})
    delegates = ("xnnpack", "none")

    def __init__(self, config: DeviceConfig = DeviceConfig(), settings: HostSettings = HostSettings()):
        if config.delegate in ("gpu", "nnapi"):
            raise LatprofError(f"the host runs LiteRT on its CPU and has no {config.delegate.upper()} delegate: measure "
                               f"--delegate {config.delegate} on a phone (--device SERIAL), or use --delegate xnnpack "
                               "or none here")
        self._check_config(config)
        if config.method == IN_NETWORK and config.delegate != "xnnpack":
            raise LatprofError("timing ops inside networks on the host reads XNNPACK's own per-operator times; use "
                               "--delegate xnnpack, or --method isolated for the builtin kernels")
        self.config, self.settings = config, settings
        available = sorted(os.sched_getaffinity(0))
        if config.threads > len(available):
            raise LatprofError(f"{config.threads} threads asked for, this host offers {len(available)} cores")
        # Pin to the last cores: the first core takes most interrupts and housekeeping.
        self.cores = available[-config.threads:]

    def provenance(self) -> Provenance:
        c, s = self.config, self.settings
        how = IN_NETWORK_HOW if c.method == IN_NETWORK else ISOLATED_HOW
        details = {"profiler_sha256": _profiler_sha256()} if c.method == IN_NETWORK else {}
        return Provenance(
            device="host", hardware=f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} cpus)",
            runtime=f"ai-edge-litert {version('ai-edge-litert')}", binary_sha256=_runtime_sha256(),
            threads=c.threads, delegate=c.delegate, dtype=c.dtype, method=method_tag(c.method, how),
            details={"hostname": socket.gethostname(), "affinity": self.cores,
                     "converter": f"tensorflow {version('tensorflow')}", "python": platform.python_version(),
                     **asdict(s), **details})

    def load(self, model: Path) -> Loaded:
        """An interpreter of ``model`` with its inputs, warmed up: what the timing loops run."""
        from latprof.tflite_file import read_model_bytes

        data = read_model_bytes(model)
        interpreter = self._interpreter(model, data)
        rng = np.random.default_rng(0)
        inputs = []
        for detail in interpreter.get_input_details():
            dtype = np.dtype(detail["dtype"])
            values = rng.integers(-100, 100, detail["shape"]) if dtype.kind in "iu" else \
                rng.standard_normal(detail["shape"])
            inputs.append((detail["index"], values.astype(dtype)))
        loaded = Loaded(interpreter, inputs)
        loaded.feed()
        for _ in range(self.settings.warmup_runs):
            interpreter.invoke()
        return loaded

    def _interpreter(self, model: Path, data: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if self.config.delegate == "xnnpack" else \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with quiet_native_output():  # LiteRT announces its XNNPACK delegate on stderr
                interpreter = Interpreter(model_content=data, num_threads=self.config.threads,
                                          experimental_op_resolver_type=resolver)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LatprofError(f"{model}: corrupt or truncated TFLite model, LiteRT cannot load it ({reason})") from None
        return interpreter

    def time_isolated(self, models: Sequence[str | Path], progress: Progress = _no_progress) -> list[Timing]:
        """Single-op models timed as whole models are: steady back-to-back invokes.  (The host keeps
        no results between calls: every timing is taken now.)"""
        return self._measure(models, progress)

    def measure_models(self, models: Sequence[str | Path], progress: Progress = _no_progress) -> list[Timing]:
        """Whole models end to end in steady state (back-to-back inferences), as benchmark_model
        times them."""
        return self._measure(models, progress)

    def profile_networks(self, models: Sequence[Path], ops: Sequence[Sequence[OpSpec]],
                         progress: Progress = _no_progress) -> tuple[list[NetworkProfile], dict[str, str]]:
        """Each op's time inside its network, and each network's latency end to end; and, for the
        networks that cannot be profiled so, why not.

        An op's time as a microbenchmark is not its time inside a network: there its weights and
        input sit wherever the ops before it left them, and no cache state a microbenchmark sets
        up matches that on every CPU (docs/timing.md).  So the networks themselves are run,
        compiled by LiteRT with its profiler on, and XNNPACK's own time for each operator is its
        op's (``latprof.attribution``).  Then, in the same chunk, the networks are timed whole
        exactly as :meth:`measure_models` (and so ``validate``) times them: a network's whole time
        is the figure a LUT must add up to, and timing it between profiled runs (which evict the
        interpreter's weights) measured each network a few percent off, differently for each.
        What a network takes beyond the sum of its ops is ``NetworkProfile.residual_us``."""
        from latprof.attribution import attribute
        from latprof.litert_profiler import ProfiledModel

        s = self.settings
        profiles: list[NetworkProfile] = []
        failed: dict[str, str] = {}
        with self._pinned():
            for start in range(0, len(models), CHUNK):
                chunk, profiled = [], []
                try:
                    for model, model_ops in zip(models[start:start + CHUNK], ops[start:start + CHUNK]):
                        try:  # a model the profiler cannot split into its ops is reported, not fatal
                            candidate = ProfiledModel(Path(model), self.config.threads)
                            profiled.append(candidate)
                            candidate.run()
                            attribute(model_ops, candidate.operator_times(1)[0], str(model))
                        except LatprofError as exc:
                            failed[str(model)] = str(exc)
                            continue
                        chunk.append((candidate, list(model_ops)))
                    op_rounds = self._profiled_rounds(chunk, attribute)
                finally:
                    for model in profiled:
                        model.close()
                wholes = self._timed([self.load(candidate.path) for candidate, _ in chunk])
                for (candidate, _), whole, rounds in zip(chunk, wholes, op_rounds):
                    op_timings = [Timing.from_rounds(values, values, s.quantile, positive=False) for values in rounds]
                    profiles.append(NetworkProfile(str(candidate.path), whole, op_timings))
                progress(len(profiles) + len(failed))
        return profiles, failed

    def _profiled_rounds(self, profiled: list[tuple], attribute) -> list[list[np.ndarray]]:
        """Rounds over the networks (as :meth:`_interleave` runs them); in each, a network is
        profiled for PROFILED_RUNS runs, the first run after the previous network's left untimed.
        A network goes on while the sum of its ops is unsure.  Per network, per op, its round
        values (the mean over the profiled runs), put on the call's usual speed by the pace of the
        rounds around it (the sums of the other networks' ops)."""
        s = self.settings
        op_rounds = [[[] for _ in network_ops] for _, network_ops in profiled]
        sums: list[list[float]] = [[] for _ in profiled]

        def time_one(index: int) -> None:
            model, network_ops = profiled[index]
            model.run()
            means = np.mean([attribute(network_ops, run, str(model.path))
                             for run in model.operator_times(PROFILED_RUNS)], axis=0)
            for values, mean in zip(op_rounds[index], means):
                values.append(float(mean))
            sums[index].append(float(means.sum()))

        order = self._interleave(len(profiled), time_one, lambda index: not s.stable(sums[index]))
        return [[np.divide(values, pace) for values in ops] for ops, pace in zip(op_rounds, paces_by_model(order, sums))]

    @contextmanager
    def _pinned(self):
        previous = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cores)
        try:
            yield
        finally:
            os.sched_setaffinity(0, previous)

    def _measure(self, models: Sequence[str | Path], progress: Progress) -> list[Timing]:
        """Interleave models round after round, so that every model's samples span the same time.

        This machine's speed drifts by percents over minutes and by more over seconds (neighbours
        on shared cores): timing one model after another would compare models measured at
        different speeds.  Each round value is put on the call's usual speed by the pace of the
        bursts around it, and a low quantile of them estimates the model's latency."""
        timings: list[Timing] = []
        with self._pinned():
            for start in range(0, len(models), CHUNK):
                # Every model of a chunk loads before any is timed: a bad file stops the run early.
                loaded = [self.load(Path(m)) for m in models[start:start + CHUNK]]
                timings += self._timed(loaded)
                progress(len(timings))
        return timings

    def _timed(self, loaded: list[Loaded]) -> list[Timing]:
        """The timings of loaded models, interleaved round after round (:meth:`_interleave`)."""
        s = self.settings
        bursts = [self.burst(m) for m in loaded]
        per_round: list[list[float]] = [[] for _ in loaded]
        samples: list[list[float]] = [[] for _ in loaded]

        def time_one(index: int) -> None:
            burst = loaded[index].round_samples(bursts[index])
            per_round[index].append(float(np.median(burst)))
            samples[index] += burst

        order = self._interleave(len(loaded), time_one, lambda index: not s.stable(per_round[index]))
        return [Timing.from_rounds(*_paced(r, x, pace), s.quantile)
                for r, x, pace in zip(per_round, samples, paces_by_model(order, per_round))]

    def burst(self, model: Loaded) -> int:
        """Invokes in a round: at least BURST and BURST_US of the model, sized by its fastest warm invoke."""
        return max(BURST, int(1000 * BURST_US / max(1, model.fastest_ns())))

    def _interleave(self, count: int, time_one: Callable[[int], None], unsure: Callable[[int], bool]) -> list[int]:
        """Round after round over ``count`` models, each in turn in random order (``time_one``);
        returns the models in the order they were timed.

        Contention comes in spells of seconds: keep going until ``rounds`` rounds span
        ``min_seconds``, then only with the models whose estimate is still ``unsure``, up to
        ``max_rounds``."""
        s = self.settings
        active = list(range(count))
        rng = np.random.default_rng(0)
        start, rounds, order = time.perf_counter(), 0, []
        while active:
            rounds += 1
            rng.shuffle(active)
            for index in active:
                time_one(index)
                order.append(index)
            if rounds >= s.rounds and time.perf_counter() - start >= s.min_seconds:
                active = [] if rounds >= s.max_rounds else [i for i in active if unsure(i)]
        return order


def _paced(round_values: list[float], samples: list[float], pace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A model's round values and samples (the same number each round) divided by its rounds' pace."""
    return np.divide(round_values, pace), np.divide(samples, np.repeat(pace, len(samples) // len(round_values)))


@dataclass
class Loaded:
    """An interpreter ready to run, with the inputs it is fed before each round."""

    interpreter: object
    inputs: list

    def feed(self) -> None:
        for index, data in self.inputs:
            self.interpreter.set_tensor(index, data)

    def round_samples(self, burst: int) -> list[float]:
        """One round of timing, in microseconds: write the inputs, run once untimed (the first call
        after another model pays for its traces), then ``burst`` timed invokes."""
        clock, invoke = time.perf_counter_ns, self.interpreter.invoke
        self.feed()
        invoke()
        samples = []
        for _ in range(burst):
            t0 = clock()
            invoke()
            samples.append((clock() - t0) / 1000.0)
        return samples

    def fastest_ns(self, invokes: int = 3) -> int:
        """The fastest of a few warm invokes: what sizes a burst, so one stall must not."""
        times = []
        for _ in range(invokes):
            t0 = time.perf_counter_ns()
            self.interpreter.invoke()
            times.append(time.perf_counter_ns() - t0)
        return min(times)
