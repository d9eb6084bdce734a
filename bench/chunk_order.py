"""Does the order ops are measured in move networks' op sums?

A profile times its ops in chunks of ``CHUNK``, one chunk after another, each in its own
interleaved rounds, so a chunk's ops share the device's state of its moment.  This times the ops
of ``--networks`` sampled architectures twice in the order they were asked for (network by
network: a network's ops share a chunk or two) and twice in ``measuring_order`` (a hash of the
key: each network's ops spread over every chunk), alternating, and compares each network's op
sum between the two passes of an order.  The smaller the spread, the less a network's predicted
latency depends on the moment its chunk happened to be timed.

    python bench/chunk_order.py [--networks 50] [--seed 1] [--op-method v9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from latprof.convert import ModelCache, default_cache_dir, ensure_models
from latprof.devices import HostDevice
from latprof.devices.host import MeasureSettings
from latprof.host_methods import DEFAULT_VERSION, VERSIONS, sample_eviction_of
from latprof.network import Network
from latprof.profiling import CHUNK, OVERHEAD_SPEC, measuring_order
from latprof.space import get_space


def timed(device: HostDevice, cache: ModelCache, specs: list) -> dict:
    """Each spec's latency (us), measured chunk after chunk in the order given, as profile does."""
    latency = {}
    for first in range(0, len(specs), CHUNK):
        chunk = specs[first:first + CHUNK]
        timings = device.measure_ops([cache.path(spec, device.settings.dtype) for spec in chunk])
        latency.update((spec, timing.latency_us) for spec, timing in zip(chunk, timings))
    return latency


def op_sums(latency: dict, networks: list[list]) -> np.ndarray:
    """Each network's latency as ``predict`` sums it: ops less the overhead, the overhead once."""
    overhead = latency[OVERHEAD_SPEC]
    return np.array([overhead + sum(max(0.0, latency[op] - overhead) for op in ops) for ops in networks])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--op-method", choices=VERSIONS, default=DEFAULT_VERSION)
    args = parser.parse_args()

    cache = ModelCache(default_cache_dir())
    device = HostDevice(MeasureSettings(sample_eviction=sample_eviction_of(args.op_method)))
    networks = [list(Network(arch).ops) for arch in get_space("mnasnet").sample_many(args.networks, args.seed)]
    asked = list(dict.fromkeys([OVERHEAD_SPEC, *(op for ops in networks for op in ops)]))
    ensure_models(asked, device.settings.dtype, cache)
    orders = {"as asked (network by network)": asked, "measuring_order (hash of the key)": measuring_order(asked)}
    sums: dict[str, list[np.ndarray]] = {name: [] for name in orders}
    start = time.perf_counter()
    for _ in range(2):
        for name, order in orders.items():
            sums[name].append(op_sums(timed(device, cache, order), networks))
    print(f"{len(networks)} networks, {len(asked)} ops in chunks of {CHUNK}, method {args.op_method}, "
          f"4 passes in {(time.perf_counter() - start) / 60:.1f} min")
    print("| order | network op sums, second pass against the first: mean | sd | within ±2% |")
    print("|---|---|---|---|")
    for name, (first, second) in sums.items():
        apart = 100 * (second / first - 1)
        print(f"| {name} | {apart.mean():+.2f}% | {apart.std():.2f}% | {100 * np.mean(abs(apart) <= 2):.0f}% |")


if __name__ == "__main__":
    main()
