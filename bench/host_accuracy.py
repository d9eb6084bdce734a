"""How well LUT predictions match measured end-to-end latency on the host, and how well the
machine repeats itself.

Measures ``--validate`` architectures (seed 1) whole, profiles their ops and those of ``--others``
more (seed 2), builds the LUT, validates on the first set, then measures the same networks again.
Two ceilings come out beside the LUT's score: the networks at validation against themselves when
the ops were profiled (what a LUT that knew each network's profile-time latency exactly would
score, since a LUT records the state the host was in), and against themselves right after (the
noise of one measurement).  With ``--op-method v10`` (ops timed inside networks) the validated
networks' ops were timed inside those very networks, so the same networks are also predicted
held out: from the LUT of the other networks alone, with a predictor trained on it for the ops
it lacks.  Prints a table.

    python bench/host_accuracy.py [--validate 50] [--others 30] [--op-method v9] [-o runs/bench-accuracy]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from latprof.convert import ModelCache, default_cache_dir, ensure_architectures
from latprof.devices import HostDevice
from latprof.devices.host import MeasureSettings
from latprof.host_methods import DEFAULT_VERSION, VERSIONS, sample_eviction_of
from latprof.lut import build_lut
from latprof.network import Network
from latprof.predict import predict_ops
from latprof.predictor import fit_predictor
from latprof.profiling import profile, profile_networks
from latprof.space import get_space
from latprof.validate import validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validate", type=int, default=50)
    parser.add_argument("--others", type=int, default=30)
    parser.add_argument("--op-method", choices=VERSIONS, default=DEFAULT_VERSION)
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/bench-accuracy"))
    args = parser.parse_args()

    space, cache = get_space("mnasnet"), ModelCache(default_cache_dir())
    device = HostDevice(MeasureSettings(sample_eviction=sample_eviction_of(args.op_method)))
    archs = space.sample_many(args.validate, 1)
    others = space.sample_many(args.others, 2)
    paths = ensure_architectures(archs, device.provenance().dtype, cache)
    profiled = latencies(device, paths)
    t0 = time.perf_counter()
    runs = []
    for name, group in (("validated", archs), ("others", others)):
        runs.append(args.output / f"ops-{name}")
        if device.in_networks:
            networks = ensure_architectures(group, device.provenance().dtype, cache)
            profile_networks({text: Path(path) for text, path in networks.items()}, device, runs[-1], cache)
        else:
            profile([op for arch in group for op in Network(arch).ops], device, runs[-1], cache)
    profile_min = (time.perf_counter() - t0) / 60
    lut = build_lut(runs)
    t0 = time.perf_counter()
    first = validate(archs, lut, device, args.output / "validate", cache)
    validate_min = (time.perf_counter() - t0) / 60
    table = first.table.set_index("target")[["predicted_ms", "measured_ms"]]
    table["profiled_ms"], table["again_ms"] = profiled, latencies(device, paths)
    table.to_csv(args.output / "networks.csv")
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
            *share_rows("LUT vs networks when profiled", table["predicted_ms"] / table["profiled_ms"] - 1),
            *share_rows("networks at validation vs when profiled", table["measured_ms"] / table["profiled_ms"] - 1),
            *share_rows("networks right after vs at validation", table["again_ms"] / table["measured_ms"] - 1)]
    if device.in_networks:
        rows += held_out_rows(archs, build_lut(runs[1:]), table["measured_ms"])
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def held_out_rows(archs, others_lut, measured_ms: pd.Series) -> list[tuple[str, object]]:
    """The validated networks predicted without their own profiles: the other networks' LUT, and
    a predictor trained on it for the ops it lacks."""
    predictor = fit_predictor(others_lut)
    ops = {arch.to_string(): list(Network(arch).ops) for arch in archs}
    known = np.mean([others_lut.op_latency_us(op) is not None for arch_ops in ops.values() for op in arch_ops])
    predicted = pd.Series({name: predict_ops(name, arch_ops, others_lut, predictor).latency_ms
                           for name, arch_ops in ops.items()})
    errors = predicted[measured_ms.index] / measured_ms - 1
    return [("held out: validated ops in the others' LUT (%)", f"{100 * known:.1f}"),
            ("held out: MAPE (%)", f"{100 * errors.abs().mean():.2f}"),
            *share_rows("held out: LUT of the others + predictor vs networks", errors)]


def latencies(device, paths: dict[str, Path]) -> pd.Series:
    """Each network's latency (ms) now, by architecture string."""
    timings = device.measure_models(list(paths.values()), fresh=True)
    return pd.Series([t.latency_us / 1000 for t in timings], index=list(paths))


def share_rows(title: str, errors: pd.Series) -> list[tuple[str, object]]:
    """Mean, spread and the bar's shares of relative differences, as table rows."""
    pct = 100 * errors.to_numpy()
    return [(f"{title}: mean, sd (%)", f"{pct.mean():+.2f}, {pct.std():.2f}"),
            ("  within ±5%, ±10% (%)", f"{100 * np.mean(np.abs(pct) <= 5):.0f}, {100 * np.mean(np.abs(pct) <= 10):.0f}")]


if __name__ == "__main__":
    main()
