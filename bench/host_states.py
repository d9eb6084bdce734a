"""How this host's speed moves over seconds: one op and one network, each timed back to back.

An op (timed as ``profile`` times it: L2 evicted and inputs written before every sample) and
MobileNetV2 (steady back-to-back inferences, as ``validate`` times networks) each run for
--seconds.  The table gives the median of every half-second window relative to the run's median,
and the fast and slow halves of those windows: on a host whose neighbours come and go, the
windows fall into two levels, and the gap between them is larger for the network (its weights
must stay in the shared cache between inferences) than for the op.  That difference is why op
sums and networks measured minutes apart need not agree (README, "How latency is measured on the
host"); ``latprof check`` is the short form of this for users.

    python bench/host_states.py [--seconds 20] [--op KEY]

Measured (AMD EPYC, 2 cores shared, day 4): at 11:05, windows of 1-3 s alternating between two
levels, the op (1x1 conv 14x14x96 -> 576, 291 us median) at 0.87 and 1.07 of its median and
MobileNetV2 (11.9 ms) at 0.80 and 1.04; at 11:35, one level with spikes (up to 1.26 and 1.23):
fast and slow halves 0.97/1.04 (op, 236 us) and 0.99/1.03 (MobileNetV2, 9.0 ms).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from latprof.arch import REFERENCES
from latprof.convert import ModelCache, default_cache_dir, ensure_architectures, ensure_models
from latprof.devices.host import HostDevice, eviction_bytes
from latprof.ops import OpSpec

DEFAULT_OP = "CONV_2D|in=14x14x96|out=14x14x576|k=1|s=1|pad=VALID|act=RELU6"
WINDOW_S = 0.5


def time_series(model, seconds: float, evict: bool) -> tuple[np.ndarray, np.ndarray]:
    """(start times in s, latencies in us) of back-to-back invocations for ``seconds``."""
    sweep = np.ones(eviction_bytes(level=2) // 4, np.float32) if evict else None
    model.feed()
    model.interpreter.invoke()
    starts, latencies, end = [], [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        if sweep is not None:
            sweep.sum()
            model.feed()
        t0 = time.perf_counter_ns()
        model.interpreter.invoke()
        latencies.append((time.perf_counter_ns() - t0) / 1000)
        starts.append(t0)
    return (np.array(starts) - starts[0]) / 1e9, np.array(latencies)


def window_levels(starts: np.ndarray, latencies: np.ndarray) -> np.ndarray:
    """The median of every window, relative to the median of all invocations."""
    windows = np.floor(starts / WINDOW_S).astype(int)
    return np.array([np.median(latencies[windows == w]) for w in np.unique(windows)]) / np.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--op", default=DEFAULT_OP, help="op key of the microbenchmark to time")
    args = parser.parse_args()

    cache = ModelCache(default_cache_dir())
    spec = OpSpec.from_key(args.op)
    ensure_models([spec], "float32", cache)
    (network,) = ensure_architectures([REFERENCES["mobilenetv2"]], "float32", cache).values()
    device = HostDevice()
    os.sched_setaffinity(0, device.cores)
    rows = []
    for name, path, evict in (("op " + args.op, cache.path(spec, "float32"), True), ("mobilenetv2", network, False)):
        starts, latencies = time_series(device.load(Path(path)), args.seconds, evict)
        levels = window_levels(starts, latencies)
        print(f"{name}: windows of {WINDOW_S} s relative to the median: " + " ".join(f"{v:.2f}" for v in levels),
              flush=True)
        ordered, half = np.sort(levels), len(levels) // 2
        rows.append((name, len(latencies), np.median(latencies), np.median(ordered[:half]), np.median(ordered[half:])))
    print(f"\n{'model':<72}{'runs':>7}{'median us':>11}{'fast half':>11}{'slow half':>11}{'slow/fast':>11}")
    for name, runs, median, fast, slow in rows:
        print(f"{name[:71]:<72}{runs:>7}{median:>11.1f}{fast:>11.2f}{slow:>11.2f}{slow / fast:>11.2f}")


if __name__ == "__main__":
    main()
