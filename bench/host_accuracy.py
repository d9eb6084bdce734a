"""How well LUT predictions match measured end-to-end latency on the host, and how well the
machine repeats itself.

Profiles the ops of ``--validate`` architectures (seed 1) and ``--others`` more (seed 2), builds
the LUT, validates on the first set, then measures the same networks again: the second measurement
against the first is the noise floor a prediction can approach.  Prints a table.

    python bench/host_accuracy.py [--validate 50] [--others 30] [-o runs/bench-accuracy]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from latprof.convert import ModelCache, default_cache_dir
from latprof.devices import HostDevice
from latprof.lut import build_lut
from latprof.network import Network
from latprof.profiling import profile
from latprof.space import get_space
from latprof.validate import validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validate", type=int, default=50)
    parser.add_argument("--others", type=int, default=30)
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/bench-accuracy"))
    args = parser.parse_args()

    space, device, cache = get_space("mnasnet"), HostDevice(), ModelCache(default_cache_dir())
    archs = space.sample_many(args.validate, 1)
    others = space.sample_many(args.others, 2)
    t0 = time.perf_counter()
    runs = []
    for name, group in (("validated", archs), ("others", others)):
        runs.append(args.output / f"ops-{name}")
        profile([op for arch in group for op in Network(arch).ops], device, runs[-1], cache)
    profile_min = (time.perf_counter() - t0) / 60
    lut = build_lut(runs)
    t0 = time.perf_counter()
    first = validate(archs, lut, device, args.output / "validate", cache)
    validate_min = (time.perf_counter() - t0) / 60
    again = device.measure_models([cache.path(arch.to_string(), lut.provenance.dtype) for arch in archs])
    repeat = np.array([t.latency_us / 1000 for t in again]) / first.table["measured_ms"].to_numpy() - 1
    m = first.metrics
    rows = [("device", f"{lut.provenance.hardware}, {lut.provenance.threads} thread, {lut.provenance.delegate}, "
                       f"{lut.provenance.dtype}"),
            ("LUT ops (invoke overhead us)", f"{len(lut)} ({lut.overhead_us:.2f})"),
            ("profile time, cached conversions (min)", f"{profile_min:.1f}"),
            ("validate time (min)", f"{validate_min:.1f}"),
            ("validated networks", m["models"]),
            ("MAPE (%)", m["mape_pct"]),
            ("within ±5% (%)", m["within_5_pct"]),
            ("within ±10% (%)", m["within_10_pct"]),
            ("Spearman", m["spearman"]),
            ("LUT ops re-measured now vs LUT (median %)", m.get("lut_drift_pct")),
            ("networks re-measured vs first (median |diff| %)", round(float(100 * np.median(np.abs(repeat))), 2)),
            ("  within ±5% of themselves (%)", round(float(100 * np.mean(np.abs(repeat) <= 0.05)), 1))]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
