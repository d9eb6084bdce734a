"""The predictor on a whole space's LUT: trained on a random share of its ops, scored on the rest,
against how well the labels themselves repeat.

A LUT of every op spec of the space (``latprof profile --all`` then ``lut build``) is split at
random: the predictor learns from ``--train`` of the ops and predicts the others (per op type and
per op size).  Then ``--recheck`` random ops of the LUT are measured again on the host, now: how
far they land from their own LUT rows is the noise of one label, the floor any score above sits
on.  Run it on the machine and settings the LUT was profiled with.

    python bench/predictor_space.py runs/space.lut.json [--train 0.25] [--recheck 256]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from latprof.convert import ModelCache, default_cache_dir, ensure_models
from latprof.devices import HostDevice
from latprof.lut import LUT
from latprof.predictor import LatencyPredictor, error_metrics, lut_training_data, per_type_metrics

SIZES = ((0, 10), (10, 50), (50, 200), (200, float("inf")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lut")
    parser.add_argument("--train", type=float, default=0.25, help="share of the ops to learn from")
    parser.add_argument("--recheck", type=int, default=256, help="ops measured again for the noise floor (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    lut = LUT.load(args.lut)
    device = HostDevice()
    if args.recheck:
        device.provenance().require_same(lut.provenance, "the LUT", "run this on the machine and settings it was profiled with")
    specs, latency = lut_training_data(lut)
    order = random.Random(args.seed).sample(range(len(specs)), len(specs))
    cut = int(args.train * len(specs))
    train, test = order[:cut], order[cut:]
    start = time.perf_counter()
    model = LatencyPredictor(overhead_us=lut.overhead_us).fit([specs[i] for i in train], latency[train])
    held_out = [specs[i] for i in test]
    predicted, truth = model.predict(held_out), latency[test]
    print(f"{len(specs)} ops in the LUT; trained on {cut} ({100 * args.train:g}%), "
          f"scored on {len(test)} ({time.perf_counter() - start:.0f} s)")
    print(per_type_metrics(held_out, predicted, truth).to_string(index=False))
    known = ~np.isnan(predicted)
    for low, high in SIZES:
        chosen = known & (truth >= low) & (truth < high)
        label = f"{low}-{high:g} us" if high != float("inf") else f">= {low} us"
        print(f"  ops of {label:<11} {chosen.sum():>5}: MAPE {error_metrics(predicted[chosen], truth[chosen])['mape_pct']:.2f}%")

    if args.recheck:
        again = random.Random(args.seed + 1).sample(specs, min(args.recheck, len(specs)))
        cache = ModelCache(default_cache_dir())
        ensure_models(again, lut.provenance.dtype, cache)
        start = time.perf_counter()
        now = np.array([t.latency_us for t in device.measure_ops([cache.path(s, lut.provenance.dtype) for s in again])])
        before = lut.table.loc[[s.key for s in again], "latency_us"].to_numpy(dtype=float)
        common = float(np.median(now / before))
        print(f"noise floor: {len(again)} of the LUT's ops measured again ({time.perf_counter() - start:.0f} s): "
              f"MAPE {error_metrics(now, before)['mape_pct']:.2f}% against their rows, "
              f"{error_metrics(now / common, before)['mape_pct']:.2f}% with their common {100 * (common - 1):+.1f}% divided out")


if __name__ == "__main__":
    main()
