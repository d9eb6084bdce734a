"""Do op sums add up to whole networks when both are timed in the same moments?

This host's speed moves by 10-20% from one second to the next, so a LUT profiled minutes before a
validation compares two states of the machine.  Here every round takes the networks in turn, and
each network's turn times the whole network, then its ops in several contexts, all within a
second.  Each context's op sum is divided by the network timed in the same turn, and the median of
those ratios over rounds is how far the sum is off: the machine's drift cancels.  The contexts:

- in network order: each op once, inputs written, in the order the network runs them, right after
  the network ran (so its weights are in the last-level cache, as in steady state);
- shuffled: the same ops once each, in a random order, next;
- v6, the profiler's method: every cache evicted, then a burst with L2 evicted and inputs written;
- random groups: every op of all the networks, once each, in random groups of ``--group``, which
  is what a profiler that knows no network order could do.

Ops are counted as ``predict`` counts them: each op's time less the fixed cost of one invoke (the
overhead op, ADD 4x4x8, timed in the same context), plus that cost once.  An op run once after
other models pays a colder invoke than one in a burst, and one overhead sample per pass stands for
it, so the table prints the cost taken off each op: 1 us of it is 1-2% of a network of 70 ops.
"Network timed twice" is the floor: the network timed again after the replays, against the first.

    python bench/paired_additivity.py [--networks 10] [--rounds 20] [--seed 5] [--group 64]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from latprof.convert import ModelCache, default_cache_dir, ensure_architectures, ensure_models
from latprof.devices import HostDevice
from latprof.devices.host import Loaded
from latprof.network import Network
from latprof.profiling import OVERHEAD_SPEC
from latprof.space import get_space

CONTEXTS = ("v6, the profiler's method", "in network order", "shuffled", "random groups", "network timed twice")


def once_each(models: list[Loaded], order: list[int]) -> dict[int, float]:
    """One timed invoke of each model in ``order``, inputs written first, nothing evicted (us)."""
    clock, times = time.perf_counter_ns, {}
    for index in order:
        model = models[index]
        model.feed()
        t0 = clock()
        model.interpreter.invoke()
        times.setdefault(index, (clock() - t0) / 1000.0)
    return times


def op_sum(times: dict[int, float], ops: list[int]) -> float:
    """A network's latency from its ops' times, the overhead op (index 0) counted once."""
    overhead = times[0]
    return sum(max(0.0, times[i] - overhead) for i in ops) + overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--group", type=int, default=64)
    args = parser.parse_args()

    archs = get_space("mnasnet").sample_many(args.networks, args.seed)
    cache, device = ModelCache(default_cache_dir()), HostDevice()
    dtype = device.settings.dtype
    net_paths = ensure_architectures(archs, dtype, cache)
    net_ops = [list(Network(a).ops) for a in archs]
    unique = list(dict.fromkeys([OVERHEAD_SPEC, *(op for ops in net_ops for op in ops)]))
    ensure_models(unique, dtype, cache)
    os.sched_setaffinity(0, device.cores)
    ops = [device.load(Path(cache.path(op, dtype))) for op in unique]
    index = {op: i for i, op in enumerate(unique)}
    sequences = [[index[op] for op in net] for net in net_ops]
    networks = [device.load(Path(net_paths[a.to_string()])) for a in archs]
    sweep, sample_sweep = device.sweeps(ops=True)
    op_bursts = [device.burst(op, ops=True) for op in ops]
    net_bursts = [device.burst(net, ops=False) for net in networks]

    ratio = {context: np.zeros((len(archs), args.rounds)) for context in CONTEXTS}
    network_us = np.zeros((len(archs), args.rounds))
    overhead_us: dict[str, list[float]] = {context: [] for context in CONTEXTS}
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for r in range(args.rounds):
        rest = list(rng.permutation(np.arange(1, len(unique))))
        less_overhead, overheads = {}, []
        for g in range(0, len(rest), args.group):
            times = once_each(ops, [0, *rest[g:g + args.group]])
            less_overhead |= {i: t - times[0] for i, t in times.items() if i}
            overheads.append(times[0])
        # Each op less its own group's overhead; op_sum takes key 0 off every op and counts it once.
        overhead = float(np.median(overheads))
        grouped = {0: overhead} | {i: t + overhead for i, t in less_overhead.items()}
        for k in rng.permutation(len(archs)):
            whole = float(np.median(networks[k].round_samples(net_bursts[k], None, None)))
            # Right after the network: its weights are in the last-level cache, as in steady state.
            times = {"in network order": once_each(ops, [0, *sequences[k]]),
                     "shuffled": once_each(ops, [0, *rng.permutation(sequences[k])])}
            twice = float(np.median(networks[k].round_samples(net_bursts[k], None, None)))
            times["v6, the profiler's method"] = {
                i: float(np.median(ops[i].round_samples(op_bursts[i], sweep, sample_sweep)))
                for i in dict.fromkeys([0, *sequences[k]])}
            times["random groups"] = grouped
            sums = {context: op_sum(t, sequences[k]) for context, t in times.items()}
            sums["network timed twice"] = twice
            for context, t in times.items():
                overhead_us[context].append(t[0])
            network_us[k, r] = whole
            for context, value in sums.items():
                ratio[context][k, r] = value / whole

    drift = np.std(network_us, axis=1) / np.median(network_us, axis=1)
    print(f"{len(archs)} networks (seed {args.seed}), {len(unique)} ops, {args.rounds} rounds in "
          f"{time.perf_counter() - start:.0f} s; a network's time moved by a median sd of "
          f"{100 * np.median(drift):.1f}% from round to round")
    print("| ops timed | op sums against the network (median over rounds): mean | sd | within ±5% | within ±10% "
          "| invoke cost taken off each op (median) | per network |")
    print("|---|---|---|---|---|---|---|")
    for context, values in ratio.items():
        error = 100 * (np.median(values, axis=1) - 1)
        cost = f"{np.median(overhead_us[context]):.1f} us" if overhead_us[context] else ""
        print(f"| {context} | {error.mean():+.1f}% | {error.std():.1f}% | {100 * np.mean(abs(error) <= 5):.0f}% | "
              f"{100 * np.mean(abs(error) <= 10):.0f}% | {cost} | {' '.join(f'{e:+.0f}' for e in error)} |")


if __name__ == "__main__":
    main()
