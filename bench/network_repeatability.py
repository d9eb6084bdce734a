"""How well does this host repeat the truth a LUT is validated against?

Times the same sampled networks twice back to back, interleaved in rounds as ``validate`` times
them, for each ``--max-rounds`` given, and prints how far the second pass came from the first.
No prediction can agree with a measurement better than the measurement agrees with itself.

    python bench/network_repeatability.py [--networks 50] [--seed 1] [--max-rounds 20 60]

Measured (day 10, AMD EPYC, 2 cores shared, `--eviction in-network`, 50 networks of seed 1): at most 20
rounds, 28 s a pass, +3.2% (sd 4.3%, 66% within ±5%); at most 60 rounds, 45 s a pass, +5.4%
(sd 6.7%, 38% within ±5%): the host's state moved over minutes, and more rounds spanned more of it.
An hour later, at most 20 rounds: −0.1% (sd 1.2%, all within ±5%).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from host_accuracy import share_rows  # bench/ is the script's folder, so on its path

from latprof.convert import ModelCache, default_cache_dir, ensure_architectures
from latprof.devices import HostDevice
from latprof.devices.host import MeasureSettings
from latprof.host_methods import DEFAULT_EVICTION, METHODS
from latprof.space import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-rounds", type=int, nargs="+", default=[20, 60])
    parser.add_argument("--eviction", choices=sorted(METHODS), default=DEFAULT_EVICTION,
                        help="the op method whose settings time the networks (MeasureSettings.sample_eviction)")
    args = parser.parse_args()

    archs = get_space("mnasnet").sample_many(args.networks, args.seed)
    paths = ensure_architectures(archs, "float32", ModelCache(default_cache_dir()))
    models = [Path(paths[arch.to_string()]) for arch in archs]
    rows = []
    for cap in args.max_rounds:
        device = HostDevice(MeasureSettings(sample_eviction=args.eviction, max_rounds=cap))
        start = time.perf_counter()
        first, second = (pd.Series([t.latency_us for t in device.measure_models(models)]) for _ in range(2))
        rows += [(f"at most {cap} rounds: a pass (s)", f"{(time.perf_counter() - start) / 2:.0f}"),
                 *share_rows("  second pass vs first", second / first - 1)]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
