"""Do per-op sums add up to whole networks?  The op-timing method against end-to-end measurement.

Inside a network an op's weights come from the shared last-level cache (the other ops pushed them
out of the core's L2) and its input was just written.  v6 (the default) times each op sample in that
state (L2 evicted, inputs written); v7 times warm bursts, v8 evicts every cache per sample, v4
is v6 with 5 samples a round (v6 times at least 200 us of the op), and v9 times single invokes with
the weights in memory, activations and code warm (a whole network's weights do not stay cached
between inferences: bench/network_cache_state.py).  Each pass measures the networks
end to end, then all their ops with each method (order alternating); the table compares each
method's sums with the whole networks of the same pass (medians over passes), so machine drift
between passes cancels.

``--neighbour`` runs every other pass beside a process that streams a buffer twice the last-level
cache on a core the measurement does not use, as another tenant of a shared host does: it shows
whether the op sums still add up when the shared cache is contended.

    python bench/op_timing_context.py [--networks 12] [--passes 4] [--neighbour] [--methods v6 v4 ...]
                                      [-o runs/bench-op-context]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from latprof.convert import ModelCache, default_cache_dir, ensure_architectures
from latprof.devices import HostDevice
from latprof.devices.host import MeasureSettings, eviction_bytes
from latprof.lut import build_lut
from latprof.network import Network
from latprof.predict import predict_ops
from latprof.profiling import profile
from latprof.space import get_space

METHODS = {"v6: L2 evicted per sample": MeasureSettings(), "v7: warm bursts": MeasureSettings(sample_eviction="none"),
           "v8: all caches evicted per sample": MeasureSettings(sample_eviction="llc"),
           "v4: v6 with 5 samples a round": MeasureSettings(op_burst_us=0),
           "v9: weights in memory": MeasureSettings(sample_eviction="network")}


def _stream(stop, cores: set[int]) -> None:
    os.sched_setaffinity(0, cores)
    buffer = np.ones(eviction_bytes() // 4, np.float32)
    while not stop.is_set():
        buffer.sum()


@contextmanager
def neighbour(active: bool):
    """A process streaming through twice the last-level cache on the cores the device leaves free."""
    if not active:
        yield
        return
    free = set(os.sched_getaffinity(0)) - set(HostDevice().cores)
    if not free:
        raise SystemExit("--neighbour needs a core the measurement does not use")
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=_stream, args=(stop, free))
    process.start()
    try:
        time.sleep(1)
        yield
    finally:
        stop.set()
        process.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=12)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--neighbour", action="store_true", help="every other pass beside a cache-streaming process")
    parser.add_argument("--methods", nargs="+", choices=[name.split(":")[0] for name in METHODS],
                        default=[name.split(":")[0] for name in METHODS], help="the op-timing methods to compare")
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/bench-op-context"))
    args = parser.parse_args()
    methods = [name for name in METHODS if name.split(":")[0] in args.methods]

    cache = ModelCache(default_cache_dir())
    archs = get_space("mnasnet").sample_many(args.networks, args.seed)
    names = [a.to_string() for a in archs]
    paths = ensure_architectures(archs, "float32", cache)
    ops = [op for arch in archs for op in Network(arch).ops]
    errors: dict[str, list] = {}  # per method (and neighbour), per pass: signed % error per network
    latency: dict[str, list] = {}  # per method (and neighbour), per pass: networks' and op sums' ms
    t0 = time.perf_counter()
    for number in range(args.passes):
        contended = args.neighbour and number % 2 == 1
        suffix = " + neighbour" if contended else ""
        with neighbour(contended):
            whole = np.array([t.latency_us / 1000 for t in HostDevice().measure_models([paths[n] for n in names])])
            order = (number // 2 if args.neighbour else number) % 2
            for name in (methods if order == 0 else methods[::-1]):
                run = args.output / f"pass{number}-{name.split(':')[0]}"
                profile(ops, HostDevice(METHODS[name]), run, cache)
                lut = build_lut([run])
                predicted = np.array([predict_ops(n, list(Network(a).ops), lut).latency_ms
                                      for n, a in zip(names, archs)])
                errors.setdefault(name + suffix, []).append(100 * (predicted - whole) / whole)
                latency.setdefault(name + suffix, []).append((np.median(whole), np.median(predicted)))
        print(f"pass {number + 1}/{args.passes} done ({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)

    print(f"\n{len(archs)} networks, {len(set(ops))} unique ops, {args.passes} passes "
          f"({(time.perf_counter() - t0) / 60:.1f} min); error of the op sum against the whole network of the same pass")
    header = (f"{'method':<40}{'mean err %':>11}{'MAPE %':>8}{'±5 %':>7}{'±10 %':>7}{'pass spread %':>15}"
              f"{'networks ms':>13}{'op sums ms':>12}")
    print(header)
    for name, per_pass in errors.items():
        table = np.array(per_pass)
        median = np.median(table, axis=0)  # per network, over passes
        spread = np.median(np.abs(table - median), axis=0).mean()
        networks, sums = np.median(latency[name], axis=0)  # medians over networks, then passes
        print(f"{name:<40}{median.mean():>+11.2f}{np.abs(median).mean():>8.2f}{100 * np.mean(np.abs(median) <= 5):>7.0f}"
              f"{100 * np.mean(np.abs(median) <= 10):>7.0f}{spread:>15.2f}{networks:>13.3f}{sums:>12.3f}")


if __name__ == "__main__":
    main()
