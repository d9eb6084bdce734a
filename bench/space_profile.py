"""How long profiling the whole search space on the host takes, and how many op specs it has.

Converts and measures a random sample of the space's unique op specs (in a fresh cache, so the
conversion is really paid), then projects to the whole space.  Prints a table.

    python bench/space_profile.py [--sample 120] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from latprof.convert import ModelCache, ensure_models
from latprof.devices import HostDevice
from latprof.space import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = get_space("mnasnet")
    t0 = time.perf_counter()
    unique = sorted(space.unique_ops())
    enumerate_s = time.perf_counter() - t0
    sample = random.Random(args.seed).sample(unique, min(args.sample, len(unique)))
    device = HostDevice()
    with tempfile.TemporaryDirectory() as root:
        cache = ModelCache(Path(root))
        t0 = time.perf_counter()
        failed = ensure_models(sample, "float32", cache)
        convert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        device.measure_ops([cache.path(spec, "float32") for spec in sample if spec not in failed])
        measure_s = time.perf_counter() - t0
    per_op = (convert_s + measure_s) / len(sample)
    rows = [("search space", space.name),
            ("architectures (decision vectors)", f"{space.size:.3e}"),
            ("unique op specs in the space", len(unique)),
            ("  by op type", ", ".join(f"{k} {v}" for k, v in Counter(s.op for s in unique).most_common())),
            ("enumeration time (s)", f"{enumerate_s:.1f}"),
            ("sampled op specs", len(sample)),
            ("  failed to generate", len(failed)),
            ("conversion, 2 workers (s per op)", f"{convert_s / len(sample):.3f}"),
            ("measurement (s per op)", f"{measure_s / len(sample):.3f}"),
            ("projected whole-space profile (min)", f"{per_op * len(unique) / 60:.1f}"),
            ("  of which conversion (min)", f"{convert_s / len(sample) * len(unique) / 60:.1f}"),
            ("  of which measurement (min)", f"{measure_s / len(sample) * len(unique) / 60:.1f}")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
