"""Does a whole network keep its weights in the caches from one inference to the next?

Each network runs in steady state (back-to-back inferences, as ``validate`` and benchmark_model
time it), and again right after every cache was evicted (a read of twice the last-level cache) or
only L2.  If a network's weights stayed in the last-level cache between inferences, evicting it
would slow the next inference by the time it takes to fetch them from memory; a network that
already streams its weights from memory is not slowed.  Which of the two holds decides the state
an op microbenchmark should be timed in (``MeasureSettings.sample_eviction``: v6 keeps the op's
weights in the last-level cache, v9 fetches them from memory).

    python bench/network_cache_state.py [--networks 16] [--seed 11] [--rounds 15]

Measured (AMD EPYC, 2 cores shared, 16 networks of the space, defaults): evicting every cache
slowed the networks of 5 ms and more by -1.2% to +0.9% on day 7 and -2.1% to +2.0% on day 8, so
their weights come from memory in steady state; the smallest ones (1.2 and 2 ms, 8 MB of weights)
by 15-18%, and those of 3-4 ms by 1-4%: they keep part of their weights cached.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from latprof.convert import ModelCache, default_cache_dir, ensure_architectures
from latprof.devices import HostDevice
from latprof.devices.host import eviction_bytes
from latprof.network import Network
from latprof.space import get_space

STEADY_SAMPLES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    archs = get_space("mnasnet").sample_many(args.networks, args.seed)
    device = HostDevice()
    paths = ensure_architectures(archs, device.settings.dtype, ModelCache(default_cache_dir()))
    os.sched_setaffinity(0, device.cores)
    networks = [device.load(Path(paths[a.to_string()])) for a in archs]
    evictions = {"L2 evicted": np.ones(eviction_bytes(level=2) // 4, np.float32),
                 "every cache evicted": np.ones(eviction_bytes() // 4, np.float32)}
    clock = time.perf_counter_ns
    times = {name: np.zeros((len(archs), args.rounds)) for name in ("steady", *evictions)}
    for r in range(args.rounds):
        for k, network in enumerate(networks):
            invoke = network.interpreter.invoke
            for name, buffer in evictions.items():
                buffer.sum()
                network.feed()
                t0 = clock()
                invoke()
                times[name][k, r] = (clock() - t0) / 1000
            times["steady"][k, r] = float(np.median(network.round_samples(STEADY_SAMPLES, None, None)))

    quartile = {name: np.quantile(values, 0.25, axis=1) for name, values in times.items()}
    print(f"{len(archs)} networks (seed {args.seed}), {args.rounds} rounds; the first inference after an eviction "
          "against steady state (quartiles over rounds)")
    print("| network | steady ms | weights MB | " + " | ".join(evictions) + " |")
    print("|---|---|---|" + "---|" * len(evictions))
    for k in np.argsort(quartile["steady"]):
        weights = Network(archs[k]).params * 4 / 1e6
        print(f"| {archs[k].to_string().split(':')[0]} | {quartile['steady'][k] / 1000:.2f} | {weights:.1f} | "
              + " | ".join(f"{100 * (quartile[name][k] / quartile['steady'][k] - 1):+.1f}%" for name in evictions) + " |")


if __name__ == "__main__":
    main()
