"""How well the LUT plus the predictor predict ops and networks it never measured, on the host.

1. Adaptive profile of the MnasNet space: ``--budget`` op specs (at most 25% of the space) to learn
   from, plus 100 random check ops, in rounds; the predictor's check error after each round.
2. The ops of ``--validate`` sampled networks (seed 1) that the adaptive run did not measure:
   held-out op-level error of the predictor, per op type.
3. The same networks measured end to end, predicted two ways: from the adaptive LUT plus the
   predictor (most of their ops unmeasured), and from a LUT that holds every op they need
   (the foundation's op-sum check).
4. keras.applications networks (``latprof zoo``): op kinds the search space lacks get
   ``--kind-sample`` of their ops profiled on request; every other op is predicted, by the
   space's predictor and by one that also learned from ``--kernels`` ops of the generic kernel
   space (``latprof.kernels``: no search space's and no zoo model's ranges), on one measurement.
5. The noise floor: 200 of the held-out ops measured again, against their first measurement.

Prints a table with the measurements and minutes each step took.  Run it on a quiet machine:
other work on the cores shows up as error.

    python bench/predictor_accuracy.py [--budget 1500] [--validate 50] [-o runs/bench-predictor]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from latprof.adaptive import AdaptivePlan, adaptive_profile
from latprof.convert import ModelCache, default_cache_dir
from latprof.devices import HostDevice
from latprof.kernels import sample_kernels
from latprof.lut import build_lut
from latprof.network import Network
from latprof.predictor import fit_predictor, per_type_metrics
from latprof.profiling import profile
from latprof.space import get_space
from latprof.tflite_file import decompose
from latprof.validate import reuse_measurements, validate
from latprof.zoo import CATALOGUE, ensure_zoo


def _fit(run_dirs: list[Path]):
    lut = build_lut(run_dirs)
    return lut, fit_predictor(lut)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--validate", type=int, default=50)
    parser.add_argument("--kind-sample", type=int, default=24)
    parser.add_argument("--kernels", type=int, default=400)
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/bench-predictor"))
    args = parser.parse_args()

    space, device, cache = get_space("mnasnet"), HostDevice(), ModelCache(default_cache_dir())
    out, rows, minutes = args.output, [], {}
    unique = sorted(space.unique_ops())
    budget = min(args.budget, len(unique) // 4)

    t0 = time.perf_counter()
    reports = adaptive_profile(unique, AdaptivePlan(budget, rounds=4, check=100, seed=0), device, out / "train", cache)
    minutes["adaptive profile"] = (time.perf_counter() - t0) / 60
    lut, model = _fit([out / "train"])

    archs = space.sample_many(args.validate, 1)
    needed = list(dict.fromkeys(op for arch in archs for op in Network(arch).ops))
    held_out = [op for op in needed if op.key not in lut.table.index]
    t0 = time.perf_counter()
    profile(held_out, device, out / "held-out", cache)
    minutes["held-out ops profile"] = (time.perf_counter() - t0) / 60
    full = build_lut([out / "train", out / "held-out"])
    truth = np.array([full.table.at[op.key, "latency_us"] for op in held_out])
    op_table = per_type_metrics(held_out, model.predict(held_out), truth)

    t0 = time.perf_counter()
    with_predictor = validate(archs, lut, device, out / "validate-predictor", cache, predictor=model)
    reuse_measurements(out / "validate-predictor", out / "validate-lut")  # the same networks, one measurement
    op_sum = validate(archs, full, device, out / "validate-lut", cache)
    minutes["networks convert + measure"] = (time.perf_counter() - t0) / 60

    t0 = time.perf_counter()
    zoo_paths = [str(p) for p in ensure_zoo(list(CATALOGUE), "float32", cache).values()]
    zoo_ops = list(dict.fromkeys(op for path in zoo_paths for op in decompose(path).ops))
    kinds = sorted({op.op for op in zoo_ops} - set(model.op_types_))
    rng = random.Random(0)
    on_request = [op for kind in kinds
                  for op in rng.sample([o for o in zoo_ops if o.op == kind],
                                       min(args.kind_sample, sum(o.op == kind for o in zoo_ops)))]
    profile(on_request, device, out / "zoo-kinds", cache)
    profile(sample_kernels(args.kernels, 0), device, out / "kernels", cache)
    zoo_lut, zoo_model = _fit([out / "train", out / "zoo-kinds"])
    zoo = validate([], zoo_lut, device, out / "validate-zoo", cache, predictor=zoo_model, models=zoo_paths)
    reuse_measurements(out / "validate-zoo", out / "validate-zoo-kernels")
    kernel_lut, kernel_model = _fit([out / "train", out / "zoo-kinds", out / "kernels"])
    zoo_kernels = validate([], kernel_lut, device, out / "validate-zoo-kernels", cache, predictor=kernel_model,
                           models=zoo_paths)
    minutes["zoo convert + kinds and kernels profile + measure"] = (time.perf_counter() - t0) / 60

    again = random.Random(1).sample(held_out, min(200, len(held_out)))
    repeat = np.array([t.latency_us for t in device.measure_ops([cache.path(op, "float32") for op in again])])
    floor = per_type_metrics(again, repeat, np.array([full.table.at[op.key, "latency_us"] for op in again]))

    share = 100 * budget / len(unique)
    rows += [("device", f"{lut.provenance.hardware}, {lut.provenance.threads} thread, {lut.provenance.delegate}, "
                        f"{lut.provenance.dtype}"),
             ("space op specs / learned from (share)", f"{len(unique)} / {budget} ({share:.1f}%)")]
    rows += [(f"  round {r.round}: trained on {r.trained_on}, check ops MAPE / ±5 / ±10 / sum error (%)",
              f"{r.mape_pct} / {r.within_5_pct} / {r.within_10_pct} / {r.sum_error_pct:+}") for r in reports]
    rows += [(f"held-out ops of {len(archs)} networks: {row['op']} ({row['count']}), MAPE / ±5 / ±10 / sum error (%)",
              f"{row['mape_pct']} / {row['within_5_pct']} / {row['within_10_pct']} / {row['sum_error_pct']:+}")
             for row in op_table.to_dict("records")]
    all_floor = floor[floor["op"] == "all"].iloc[0]
    rows.append((f"noise floor: {all_floor['count']} held-out ops measured again, MAPE / ±5 / ±10 (%)",
                 f"{all_floor['mape_pct']} / {all_floor['within_5_pct']} / {all_floor['within_10_pct']}"))
    share_predicted = with_predictor.table["predicted_ops"].sum() / sum(len(Network(a).ops) for a in archs)
    for name, result in (("networks, adaptive LUT + predictor", with_predictor), ("networks, LUT with every op", op_sum),
                         ("keras.applications, LUT + space predictor", zoo),
                         ("keras.applications, LUT + predictor with kernels", zoo_kernels)):
        m = result.metrics
        rows.append((f"{name} ({m['models']}): MAPE / ±5 / ±10 (%)",
                     f"{m['mape_pct']} / {m['within_5_pct']} / {m['within_10_pct']} (drift {m.get('lut_drift_pct')}%)"))
        if result is with_predictor:
            rows.append(("  ops the predictor estimated in those networks", f"{100 * share_predicted:.1f}%"))
    rows += [("  zoo op kinds profiled on request", f"{', '.join(kinds)} ({len(on_request)} ops)"),
             ("  zoo ops estimated by the predictor", f"{int(zoo.table['predicted_ops'].sum())} of "
                                                      f"{sum(len(decompose(p).ops) for p in zoo_paths)}"),
             ("op measurements (adaptive + held-out + zoo kinds + kernels)",
              f"{budget + 100} + {len(held_out)} + {len(on_request)} + {args.kernels}")]
    rows += [(f"minutes: {name}", f"{value:.1f}") for name, value in minutes.items()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
