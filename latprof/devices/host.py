"""The embedded default device: this computer's CPU, running .tflite models with LiteRT.

Measurement hygiene: the process is pinned to fixed cores, every model gets warm-up runs, models
are timed interleaved over rounds (so machine-speed drift hits all alike), each until its estimate
is stable or a cap is reached, and a low quantile over rounds is kept, with the rounds it took and
its uncertainty; fixed inputs are written before every sample.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import version
from pathlib import Path

import numpy as np

from latprof.errors import LatprofError
from latprof.host_methods import DEFAULT_EVICTION, IN_NETWORK, METHODS, NETWORK_SAMPLES, PREFIX
from latprof.measurement import NetworkProfile, Provenance, Timing, known_within, quantile_uncertainty_us
from latprof.native import quiet_native_output

DELEGATES = ("xnnpack", "none")
CHUNK = 256  # interpreters held at once; also the models whose rounds interleave
# A round times a burst of at least this many samples (and MeasureSettings.op_burst_us of an op,
# or this much of a whole model).
OP_BURST = 5
MODEL_BURST, MODEL_BURST_US = 3, 2000.0
PROFILED_RUNS = 3  # v10: profiled runs of a network a round; an op's round value is their mean


@dataclass(frozen=True)
class MeasureSettings:
    """How a model is run and timed; everything here that changes latency goes into provenance."""

    threads: int = 1
    delegate: str = "xnnpack"
    dtype: str = "float32"
    warmup_runs: int = 10
    rounds: int = 10
    min_seconds: float = 2.0
    quantile: float = 0.25
    # After ``rounds`` (and ``min_seconds``), a model goes on until its estimate is known within
    # ``stable_pct`` (or measurement.STABLE_FLOOR_US, for ops of a few microseconds), up to ``max_rounds``.
    max_rounds: int = 20
    stable_pct: float = 2.0
    # The state an op is timed in: "network" (v9, the default: single invokes with the weights in
    # memory, as a network of 5 ms and more streams them, see Loaded.network_samples), or bursts
    # with "l2" (v6, the default until day 9), no cache ("none", v7) or every cache ("llc", v8)
    # evicted before each sample; the others are kept to measure what the choice does
    # (bench/op_timing_context.py; docs/host-measurement.md has what they gave).
    sample_eviction: str = DEFAULT_EVICTION
    # v6-v8: an op's burst lasts at least this long.  After a cache eviction an op of 1-3 us takes
    # some 8 samples to reach its steady time (the first runs 2.5x slower): a median of 5 samples
    # fell inside that transient, about 30% slow and jittery (bench/burst_length.py).  0: 5 samples.
    op_burst_us: float = 200.0

    def __post_init__(self) -> None:
        if self.threads < 1 or self.delegate not in DELEGATES:
            raise LatprofError(f"threads must be >= 1 and delegate one of {', '.join(DELEGATES)}")
        if not 1 <= self.rounds <= self.max_rounds:
            raise LatprofError(f"rounds must be between 1 and max_rounds ({self.max_rounds}), not {self.rounds}")
        if self.sample_eviction not in METHODS:
            raise LatprofError(f"sample_eviction must be one of {', '.join(METHODS)}")
        if self.op_burst_us < 0:
            raise LatprofError(f"op_burst_us must be >= 0, not {self.op_burst_us}")

    @property
    def method(self) -> str:
        """How ops and models are timed, as provenance: data of two methods must not mix."""
        version, ops = METHODS[self.sample_eviction]
        if self.sample_eviction not in ("network", IN_NETWORK):
            ops += f", at least {OP_BURST} samples and {self.op_burst_us:g} us a round"
        return f"{PREFIX}{version} (ops: {ops}; models: steady bursts)"

    def stable(self, round_values: list[float]) -> bool:
        """Whether a model's estimate is known well enough to stop timing it."""
        return bool(known_within(quantile_uncertainty_us(round_values, self.quantile),
                                 float(np.quantile(round_values, self.quantile)), self.stable_pct))

    @property
    def sample_eviction_bytes(self) -> int:
        """The buffer read before each op sample: twice L2, twice the last level, or none (v9 reads
        both)."""
        return {"none": 0, "l2": eviction_bytes(level=2), "llc": eviction_bytes(), IN_NETWORK: 0,
                "network": eviction_bytes() + eviction_bytes(level=2)}[self.sample_eviction]


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


class HostDevice:
    """Runs models in this process with LiteRT's interpreter."""

    def __init__(self, settings: MeasureSettings = MeasureSettings()):
        self.settings = settings
        available = sorted(os.sched_getaffinity(0))
        if settings.threads > len(available):
            raise LatprofError(f"{settings.threads} threads asked for, this host offers {len(available)} cores")
        # Pin to the last cores: the first core takes most interrupts and housekeeping.
        self.cores = available[-settings.threads:]

    @property
    def in_networks(self) -> bool:
        """Whether ops are timed inside whole networks (method v10): see :meth:`profile_networks`."""
        return self.settings.sample_eviction == IN_NETWORK

    def provenance(self) -> Provenance:
        s = self.settings
        details = {"profiler_sha256": _profiler_sha256()} if self.in_networks else {}
        return Provenance(
            device="host", hardware=f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} cpus)",
            runtime=f"ai-edge-litert {version('ai-edge-litert')}", binary_sha256=_runtime_sha256(),
            threads=s.threads, delegate=s.delegate, dtype=s.dtype, method=s.method,
            details={"hostname": socket.gethostname(), "affinity": self.cores,
                     "converter": f"tensorflow {version('tensorflow')}", "python": platform.python_version(),
                     "warmup_runs": s.warmup_runs, "rounds": s.rounds, "min_seconds": s.min_seconds,
                     "quantile": s.quantile, "max_rounds": s.max_rounds, "stable_pct": s.stable_pct,
                     "eviction_bytes": eviction_bytes(), "sample_eviction_bytes": s.sample_eviction_bytes, **details})

    def load(self, model: Path, twin: bool = False) -> Loaded:
        """An interpreter of ``model`` with its inputs, warmed up: what the timing loops run, and
        what a benchmark that times its own way (bench/paired_additivity.py) starts from.  With
        ``twin``, a second interpreter of the same file, with weights of its own, and the outputs'
        buffers to write: what method v9 needs (:meth:`Loaded.network_samples`)."""
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
        outputs = [(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
                   for detail in interpreter.get_output_details()] if twin else []
        loaded = Loaded(interpreter, inputs, self._interpreter(model, data) if twin else None, outputs)
        loaded.feed()
        for _ in range(self.settings.warmup_runs):
            interpreter.invoke()
            if loaded.twin is not None:
                loaded.twin.invoke()
        return loaded

    def _interpreter(self, model: Path, data: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if self.settings.delegate == "xnnpack" else \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with quiet_native_output():  # LiteRT announces its XNNPACK delegate on stderr
                interpreter = Interpreter(model_content=data, num_threads=self.settings.threads,
                                          experimental_op_resolver_type=resolver)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LatprofError(f"{model}: corrupt or truncated TFLite model, LiteRT cannot load it ({reason})") from None
        return interpreter

    def measure_ops(self, models: list[str | Path], progress=lambda done: None, fresh: bool = False) -> list[Timing]:
        """Time single-op microbenchmarks as their op runs inside a whole model.

        Inside a model an op runs once per inference after the other ops, which push its
        weights out of the core's own caches, while its input was just written; a network of
        5 ms and more streams its weights from memory from one inference to the next
        (bench/network_cache_state.py).  Timing one op back to back keeps all of it in L1/L2 and
        undershoots whole models by a third here.  So each round times single invokes, each
        after every cache is evicted (a buffer twice the last-level cache), the outputs written,
        L2 evicted, a twin interpreter of the same file run (code warm, weights not) and the
        inputs written; the round's value is the fastest (method v9, :meth:`Loaded.network_samples`).
        ``MeasureSettings.sample_eviction`` keeps the alternatives to measure the choice with:
        bursts after evicting every cache, with L2 (v6, the default until day 9), nothing (v7)
        or every cache (v8) evicted before each sample; docs/host-measurement.md has what they gave.
        """
        if self.in_networks:
            raise LatprofError("method v10 times ops inside whole networks, not as microbenchmarks: profile "
                               "networks (--sample N, --models), or time single ops with --op-method v9")
        return self._measure(models, evict=True, progress=progress)

    def profile_networks(self, models: list[Path], ops: list, progress=lambda done: None
                         ) -> tuple[list[NetworkProfile], dict[str, str]]:
        """Each op's time inside its network (method v10), and each network's latency end to end;
        and, for the networks that cannot be profiled so, why not.

        An op's time as a microbenchmark is not its time inside a network: there its weights and
        input sit wherever the ops before it left them, and no cache state a microbenchmark can set
        up from Python matches that for every op (docs/host-measurement.md, days 5-9).  So the
        networks themselves are run, compiled by LiteRT with its profiler on, and XNNPACK's own time
        for each operator is its op's (``latprof.attribution``).  In the same rounds, each network
        is timed whole with the interpreter, as :meth:`measure_models` times it, which gives what it
        takes beyond the sum of its ops (``NetworkProfile.residual_us``).
        ``ops[i]`` are the ops of ``models[i]`` in execution order."""
        from latprof.attribution import attribute
        from latprof.litert_profiler import ProfiledModel

        s = self.settings
        previous = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cores)
        profiles: list[NetworkProfile] = []
        failed: dict[str, str] = {}
        try:
            for start in range(0, len(models), CHUNK):
                chunk, chunk_ops, profiled = [], [], []
                for model, model_ops in zip(models[start:start + CHUNK], ops[start:start + CHUNK]):
                    try:  # a model the profiler cannot split into its ops is reported, not fatal
                        candidate = ProfiledModel(Path(model), s.threads)
                        profiled.append(candidate)
                        candidate.run()
                        attribute(model_ops, candidate.operator_times(1)[0], str(model))
                    except LatprofError as exc:
                        failed[str(model)] = str(exc)
                        continue
                    chunk.append(Path(model))
                    chunk_ops.append(model_ops)
                try:
                    loaded = [self.load(m) for m in chunk]
                    per_round = self._profiled_rounds(loaded, [p for p in profiled if p.path in chunk], chunk_ops,
                                                      attribute)
                finally:
                    for model in profiled:
                        model.close()
                for model, (whole, whole_samples, op_rounds) in zip(chunk, per_round):
                    op_timings = [Timing.from_rounds(values, values, s.quantile, positive=False) for values in op_rounds]
                    profiles.append(NetworkProfile(str(model), Timing.from_rounds(whole, whole_samples, s.quantile),
                                                   op_timings))
                progress(len(profiles) + len(failed))
            return profiles, failed
        finally:
            os.sched_setaffinity(0, previous)

    def _profiled_rounds(self, loaded: list[Loaded], profiled: list, ops: list, attribute) -> list[tuple]:
        """Rounds over the networks (as :meth:`_interleave` runs them); in each, a network is timed
        whole (a steady burst, as measure_models) and then profiled for PROFILED_RUNS runs, the
        first run after the burst left untimed.  A network goes on while its whole time or the
        sum of its ops is unsure.  Per network: the whole time's round values and samples, and
        per op its round values (the mean over the profiled runs)."""
        s = self.settings
        bursts = [self.burst(m, ops=False) for m in loaded]
        whole: list[list[float]] = [[] for _ in loaded]
        samples: list[list[float]] = [[] for _ in loaded]
        op_rounds = [[[] for _ in network_ops] for network_ops in ops]
        sums: list[list[float]] = [[] for _ in loaded]

        def time_one(index: int) -> None:
            burst = loaded[index].round_samples(bursts[index], None, None)
            whole[index].append(float(np.median(burst)))
            samples[index] += burst
            profiled[index].run()
            means = np.mean([attribute(ops[index], run, str(profiled[index].path))
                             for run in profiled[index].operator_times(PROFILED_RUNS)], axis=0)
            for values, mean in zip(op_rounds[index], means):
                values.append(float(mean))
            sums[index].append(float(means.sum()))

        self._interleave(len(loaded), time_one, lambda index: not (s.stable(whole[index]) and s.stable(sums[index])))
        return list(zip(whole, samples, op_rounds))

    def measure_models(self, models: list[str | Path], progress=lambda done: None, fresh: bool = False) -> list[Timing]:
        """Time whole models end to end in steady state (back-to-back inferences), as
        benchmark_model does.  (Every host timing is fresh: it keeps no results between calls.)"""
        return self._measure(models, evict=False, progress=progress)

    def _measure(self, models: list[str | Path], evict: bool, progress) -> list[Timing]:
        """Interleave models round after round, so that every model's samples span the same time.

        This machine's speed drifts by tens of percent over seconds (neighbours on shared cores):
        timing one model after another would compare models measured at different speeds.  A low
        quantile of each model's per-round values estimates its latency when the core is not
        contended.
        """
        previous = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.cores)
        try:
            timings: list[Timing] = []
            for start in range(0, len(models), CHUNK):
                # Every model of a chunk loads before any is timed: a bad file stops the run early.
                loaded = [self.load(Path(m), twin=evict and self.network_state) for m in models[start:start + CHUNK]]
                timings += self._rounds(loaded, evict)
                progress(len(timings))
            return timings
        finally:
            os.sched_setaffinity(0, previous)

    @property
    def network_state(self) -> bool:
        """Whether ops are timed in the state they run in inside a network (method v9)."""
        return self.settings.sample_eviction == "network"

    def sweeps(self, ops: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The buffers read to evict caches: before an op's round or v9 sample (twice the
        last-level cache), and before each v6-v8 sample or after v9's outputs are written
        (``settings.sample_eviction``); a whole model's rounds read none."""
        if not ops:
            return None, None
        size = eviction_bytes(level=2) if self.network_state else self.settings.sample_eviction_bytes
        return np.ones(eviction_bytes() // 4, np.float32), np.ones(size // 4, np.float32) if size else None

    def burst(self, model: Loaded, ops: bool) -> int:
        """Samples in a round: at least OP_BURST and ``op_burst_us`` of an op, or MODEL_BURST and
        MODEL_BURST_US of a whole model, sized by the model's fastest warm invoke."""
        least, target_us = (OP_BURST, self.settings.op_burst_us) if ops else (MODEL_BURST, MODEL_BURST_US)
        return max(least, int(1000 * target_us / max(1, model.fastest_ns())))

    def _interleave(self, count: int, time_one: Callable[[int], None], unsure: Callable[[int], bool]) -> None:
        """Round after round over ``count`` models, each in turn in random order (``time_one``).

        Contention comes in spells of seconds: keep going until ``rounds`` rounds span
        ``min_seconds``, then only with the models whose estimate is still ``unsure``, up to
        ``max_rounds``."""
        s = self.settings
        active = list(range(count))
        rng = np.random.default_rng(0)
        start, rounds = time.perf_counter(), 0
        while active:
            rounds += 1
            rng.shuffle(active)
            for index in active:
                time_one(index)
            if rounds >= s.rounds and time.perf_counter() - start >= s.min_seconds:
                active = [] if rounds >= s.max_rounds else [i for i in active if unsure(i)]

    def _rounds(self, loaded: list[Loaded], evict: bool) -> list[Timing]:
        s = self.settings
        sweep, sample_sweep = self.sweeps(evict)
        network = evict and self.network_state
        bursts = [0 if network else self.burst(m, evict) for m in loaded]
        per_round: list[list[float]] = [[] for _ in loaded]
        samples: list[list[float]] = [[] for _ in loaded]

        def time_one(index: int) -> None:
            if network:
                burst = loaded[index].network_samples(NETWORK_SAMPLES, sweep, sample_sweep)
                per_round[index].append(min(burst))
            else:
                burst = loaded[index].round_samples(bursts[index], sweep, sample_sweep)
                per_round[index].append(float(np.median(burst)))
            samples[index] += burst

        self._interleave(len(loaded), time_one, lambda index: not s.stable(per_round[index]))
        return [Timing.from_rounds(r, x, s.quantile) for r, x in zip(per_round, samples)]


@cache
def eviction_bytes(level: int | None = None) -> int:
    """Twice the size of the cache at ``level`` (the last level when None), read from sysfs;
    a typical 32 KiB L1, 512 KiB L2 and 32 MiB last level are assumed when it cannot be read."""
    try:
        sizes = {}
        for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
            if (index / "type").read_text().strip() != "Instruction":
                size = (index / "size").read_text().strip()
                sizes[int((index / "level").read_text())] = int(size[:-1]) * {"K": 1 << 10, "M": 1 << 20}[size[-1]]
        size = sizes[max(sizes) if level is None else level]
    except (OSError, ValueError, KeyError):
        size = {1: 32 << 10, 2: 512 << 10}.get(level, 32 << 20)
    return min(2 * size, 256 << 20)


@dataclass
class Loaded:
    """An interpreter ready to run, with the inputs it is fed before each sample; for method v9,
    a twin interpreter of the same file and the outputs' buffers (index, zeros)."""

    interpreter: object
    inputs: list
    twin: object | None = None
    outputs: list = field(default_factory=list)

    def feed(self) -> None:
        for index, data in self.inputs:
            self.interpreter.set_tensor(index, data)

    def network_samples(self, count: int, sweep: np.ndarray, l2_sweep: np.ndarray) -> list[float]:
        """``count`` invokes timed as the op runs inside a network (method v9), in microseconds:
        before each, every cache is evicted (``sweep``), the outputs are written and L2 evicted
        (``l2_sweep``), the twin runs (warming the code, not these weights) and the inputs are
        written."""
        clock, invoke = time.perf_counter_ns, self.interpreter.invoke
        samples = []
        for _ in range(count):
            sweep.sum()
            for index, zeros in self.outputs:
                self.interpreter.set_tensor(index, zeros)
            l2_sweep.sum()
            self.twin.invoke()
            self.feed()
            t0 = clock()
            invoke()
            samples.append((clock() - t0) / 1000.0)
        return samples

    def round_samples(self, burst: int, sweep: np.ndarray | None, sample_sweep: np.ndarray | None) -> list[float]:
        """One round of timing, in microseconds: read ``sweep`` (evicts caches), write the inputs,
        run once untimed (the first call after another model pays for its traces), then ``burst``
        timed invokes, each after reading ``sample_sweep`` and writing the inputs when given."""
        clock, invoke = time.perf_counter_ns, self.interpreter.invoke
        if sweep is not None:
            sweep.sum()
        self.feed()
        invoke()
        samples = []
        for _ in range(burst):
            if sample_sweep is not None:
                sample_sweep.sum()
                self.feed()
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
