"""Accuracy on models outside the search space that were never profiled: the 28 keras.applications
models of ``latprof zoo`` and five of them converted with a free batch dimension, predicted by a
LUT plus the predictor, on this host.

Runs the README's recipe for models outside the space, each command as a subprocess:

    latprof zoo ZOO_TRAIN... -o TRAIN             # variants of each family NOT in the catalogue
    latprof profile --device host --sample 24 --seed 2 --models TRAIN/*.tflite -o RUN
    latprof lut build RUN -o LUT
    latprof predictor train LUT -o PREDICTOR
    latprof zoo -o ZOO                            # the catalogue: the models predicted
    latprof zoo ZOO_FREE_BATCH... -o ZOO          # and five of them with a free batch dimension
    latprof validate --lut LUT --predictor PREDICTOR --models ZOO TRAIN --device host -o VAL

The LUT holds the ops of 24 sampled architectures and of the training variants (the op kinds the
space lacks, profiled on request, as a user would); the catalogue's own models are never
profiled, so most of their ops come from the predictor.  Prints each model's predicted and
measured latency, the share of its ops the predictor supplied, and MAPE, the shares within ±5%
and ±10% (of the predictions on the pace of the reference networks timed with the models, as
validate reports them; ``unpaced_`` for the LUT's own figures), the reference drift and each
step's wall time; the JSON holds every command's output.

The training variants are validated in the same call, from their own rows: their median ratio of
measured to predicted latency is what the host's state leaves after pacing.  Each
catalogue model's error is also given against that (``error_vs_profiled_pct``): the error the
predictor adds to what the LUT itself would show on this host now.

    python bench/zoo_accuracy.py [-o runs/bench/zoo_accuracy.json]

Run from the repo root (bench/common.py is imported from the script's folder).  The run
folders go to runs/bench/zoo_accuracy/.  Expect about 10 minutes on 2 cores the first time (the 40
models convert in 1-9 s each, the 24 networks in seconds each) and a few minutes once the model
cache holds them, plus up to validate's settle timeout (300 s) when the host is busy.
"""

from __future__ import annotations

from pathlib import Path

import common
import numpy as np

from latprof.tflite_file import decompose
from latprof.zoo import CATALOGUE, ZooModel

# Variants of each family at widths and resolutions the catalogue does not have, small and large:
# the training set of zoo models (none of them is validated).
ZOO_TRAIN = ("mobilenet_v1-0.3-144", "mobilenet_v1-0.6-176", "mobilenet_v2-0.4-112", "mobilenet_v2-0.6-176",
             "mobilenet_v2-1.2-208", "mobilenet_v3_small-0.6-128", "mobilenet_v3_small-0.9-192",
             "mobilenet_v3_small-0.9-192-minimalistic", "mobilenet_v3_large-0.9-176",
             "mobilenet_v3_large-0.9-176-minimalistic", "efficientnet_b0-192", "efficientnet_b1-208",
             "mobilenet_v1-0.6-176-freebatch", "mobilenet_v3_small-0.9-192-freebatch")
# Catalogue models also validated as Keras converts them by default, with a free batch dimension
# (shape ops run at inference time): never profiled either.
ZOO_FREE_BATCH = ("mobilenet_v1-1.0-224-freebatch", "mobilenet_v2-1.0-224-freebatch",
                  "mobilenet_v3_small-1.0-224-freebatch", "mobilenet_v3_large-1.0-224-freebatch",
                  "efficientnet_b0-224-freebatch")
SAMPLE, SEED = 24, 2  # the sampled architectures of the LUT


def main() -> None:
    args = common.parser(__doc__, "zoo_accuracy").parse_args()
    overlap = {ZooModel.from_name(name) for name in ZOO_TRAIN} & {*CATALOGUE, *map(ZooModel.from_name, ZOO_FREE_BATCH)}
    if overlap:
        raise SystemExit(f"ZOO_TRAIN names catalogue models, which are the ones validated: {sorted(m.name for m in overlap)}")
    work = common.fresh_work_dir(args.output)
    train_dir, run, lut, predictor = work / "zoo-train", work / "run", work / "lut.json", work / "predictor.json"
    zoo_dir, val = work / "zoo", work / "val"
    seconds, outputs = {}, {}

    outputs["zoo_train"], seconds["zoo (training variants)"] = common.latprof("zoo", *ZOO_TRAIN, "-o", train_dir)
    train_files = sorted(str(path) for path in train_dir.glob("*.tflite"))
    outputs["profile"], seconds["profile"] = common.latprof("profile", "--device", "host", "--sample", SAMPLE,
                                                            "--seed", SEED, "--models", *train_files, "-o", run)
    outputs["lut_build"], seconds["lut build"] = common.latprof("lut", "build", run, "-o", lut)
    outputs["predictor_train"], seconds["predictor train"] = common.latprof("predictor", "train", lut, "-o", predictor)
    outputs["zoo"], seconds["zoo (catalogue)"] = common.latprof("zoo", "-o", zoo_dir)
    outputs["zoo_free_batch"], seconds["zoo (free batch)"] = common.latprof("zoo", *ZOO_FREE_BATCH, "-o", zoo_dir)
    outputs["validate"], seconds["validate"] = common.latprof("validate", "--lut", lut, "--predictor", predictor,
                                                              "--models", zoo_dir, train_dir, "--device", "host",
                                                              "-o", val)

    names = {str(item["path"]): item["name"] for item in outputs["zoo"] + outputs["zoo_free_batch"]}
    rows = outputs["validate"]["models"]
    control = [row for row in rows if Path(row["target"]).resolve().parent == train_dir.resolve()]
    rows = [row for row in rows if row not in control]
    # The profiled variants, predicted from their own rows, measured in the same rounds: what
    # error the state of the host leaves after validate's pacing, which the unprofiled models'
    # errors carry as well.
    state = float(np.median([row["measured_ms"] / row["predicted_now_ms"] for row in control]))
    models = []
    for row in rows:
        total = len(decompose(row["target"]).ops)
        models.append({"model": names.get(row["target"], row["target"]), "predicted_ms": row["predicted_ms"],
                       "predicted_now_ms": row["predicted_now_ms"], "measured_ms": row["measured_ms"],
                       "error_pct": row["error_pct"], "unpaced_error_pct": row["unpaced_error_pct"],
                       "error_vs_profiled_pct": round(100 * (row["predicted_now_ms"] * state / row["measured_ms"] - 1), 2),
                       "ops": total, "predicted_ops_pct": round(100 * row["predicted_ops"] / total, 1)})
    m = outputs["validate"]["metrics"]
    incomplete = outputs["validate"].get("incomplete", [])
    raw = common.accuracy([r["predicted_now_ms"] for r in models], [r["measured_ms"] for r in models])
    unpaced = common.accuracy([r["predicted_ms"] for r in models], [r["measured_ms"] for r in models])
    paired = common.accuracy([r["predicted_now_ms"] * state for r in models], [r["measured_ms"] for r in models])
    summary = {"models": raw["count"], "within_5_pct": raw["within_5_pct"], "within_10_pct": raw["within_10_pct"],
               "mape_pct": raw["mape_pct"], "unpaced_within_10_pct": unpaced["within_10_pct"],
               "reference_drift_pct": m.get("reference_drift_pct"),
               "profiled_variants_measured_over_predicted": round(state, 3),
               "within_5_pct_vs_profiled": paired["within_5_pct"], "within_10_pct_vs_profiled": paired["within_10_pct"],
               "measure_attempts": m.get("measure_attempts"), "not_predicted": len(incomplete),
               "lut_ops": outputs["lut_build"].get("ops"),
               "ops_predicted_pct": round(100 * sum(r["predicted_ops"] for r in rows)
                                          / max(1, sum(r["ops"] for r in models)), 1)}

    common.print_table(models, title=f"{len(models)} keras.applications models, LUT of {SAMPLE} sampled architectures "
                                     f"(seed {SEED}) + {len(ZOO_TRAIN)} zoo variants, with the predictor")
    if incomplete:
        print(f"not predicted (ops neither the LUT nor the predictor knows): {', '.join(map(str, incomplete))}")
    common.print_pairs(list(summary.items()), title="accuracy")
    common.print_pairs([(f"{step} (s)", round(value, 1)) for step, value in seconds.items()], title="wall time")
    common.write_json(args.output, {**common.context("zoo_accuracy"), "zoo_train": list(ZOO_TRAIN), "sample": SAMPLE,
                                    "seed": SEED, "summary": summary, "models": models,
                                    "seconds": {k: round(v, 1) for k, v in seconds.items()}, "outputs": outputs})


if __name__ == "__main__":
    main()
