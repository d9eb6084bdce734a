"""How long must an op's burst be?  Repeatability of op timings with 5 samples a round against
bursts of ``op_burst_us``, by op size.

Each pass loads every op twice and times both copies in the same interleaved rounds, so the
copies see the same moments of this shared machine: how far they disagree (MAPE, after dividing
out their common ratio) is the noise of one timing.  The two settings alternate pass by pass.  The
level column compares each op's timing under the two settings (median over ops and passes):
below 0 means the longer burst times the op faster, that is, 5 samples sat in the transient after
the cache eviction.

    python bench/burst_length.py [--ops 128] [--passes 2] [--burst-us 200]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from latprof.convert import ModelCache, default_cache_dir, ensure_models
from latprof.devices import HostDevice, MeasureSettings
from latprof.predictor import error_metrics
from latprof.space import get_space

SIZES = ((0, 10), (10, 50), (50, float("inf")))


def copies_mape(first: np.ndarray, second: np.ndarray) -> float:
    """MAPE of the second copies against the first, their common ratio divided out."""
    return error_metrics(second / np.median(second / first), first)["mape_pct"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=128)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--burst-us", type=float, default=MeasureSettings().op_burst_us)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    unique = sorted(get_space("mnasnet").unique_ops(), key=lambda op: op.key)
    ops = random.Random(args.seed).sample(unique, min(args.ops, len(unique)))
    cache = ModelCache(default_cache_dir())
    ensure_models(ops, "float32", cache)
    paths: list[Path] = [cache.path(op, "float32") for op in ops]
    n = len(paths)
    settings = {"5 samples": MeasureSettings(op_burst_us=0),
                f"{args.burst_us:g} us": MeasureSettings(op_burst_us=args.burst_us)}
    copies: dict[str, list[np.ndarray]] = {name: [] for name in settings}  # per pass: 2 x n timings
    seconds = dict.fromkeys(settings, 0.0)
    for number in range(args.passes):
        for name in (list(settings) if number % 2 == 0 else list(settings)[::-1]):
            start = time.perf_counter()
            timings = HostDevice(settings[name]).measure_ops(paths + paths)
            seconds[name] += time.perf_counter() - start
            copies[name].append(np.array([t.latency_us for t in timings]).reshape(2, n))
    base, longer = settings
    size = copies[base][0][0]  # buckets by one timing, the same ops for both settings
    level = np.median([b[0] / a[0] - 1 for a, b in zip(copies[base], copies[longer])], axis=0)
    print(f"{n} ops of the MnasNet space, each loaded twice; the copies' MAPE, pass by pass")
    print(f"{'op size':<14}{'ops':>6}{base:>22}{longer:>22}{'level, ' + longer:>18}")
    for low, high in SIZES:
        chosen = (size >= low) & (size < high)
        label = f"{low}-{high:g} us" if high != float("inf") else f">= {low} us"
        cells = [", ".join(f"{copies_mape(a[chosen], b[chosen]):.1f}%" for a, b in copies[name]) for name in settings]
        print(f"{label:<14}{int(chosen.sum()):>6}{cells[0]:>22}{cells[1]:>22}{100 * np.median(level[chosen]):>+17.1f}%")
    print("seconds a pass: " + ", ".join(f"{name} {seconds[name] / args.passes:.0f}" for name in settings))


if __name__ == "__main__":
    main()
