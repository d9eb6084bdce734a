"""Accuracy on ops: how well the predictor estimates the ops a LUT lacks, on this host.

Profiles two sets of sampled architectures with the default method (in-network), each command a
subprocess, and trains the predictor on the first set's LUT:

    latprof profile --device host --sample 24 --seed 2 -o TRAIN       # the LUT the predictor learns from
    latprof lut build TRAIN -o TRAIN_LUT
    latprof predictor train TRAIN_LUT -o PREDICTOR
    latprof profile --device host --sample 50 --seed 7 -o HELD_OUT    # other networks: the truth
    latprof lut build HELD_OUT -o HELD_OUT_LUT

Then, in this process:

- held-out ops: the rows of HELD_OUT_LUT whose ops TRAIN_LUT lacks, against the predictor's
  estimate of each (what ``predict`` and ``search`` use for an op the LUT lacks), per op type
  and per op size: MAPE, within ±5% and ±10%, and the error of their sum;
- the floor: the ops both LUTs hold, TRAIN_LUT's row against HELD_OUT_LUT's, the same op timed
  inside other networks in another call.  No estimate can repeat a label better than that.
  Beside it, how much slower (+) the reference networks ran in the second call than in the
  first: the part of the floor that is the host's state moving;
- the predictor's own cross-validated error on TRAIN_LUT (from ``predictor train``);
- the held-out networks, each predicted from TRAIN_LUT plus the predictor (as ``validate`` would)
  against its whole latency timed in HELD_OUT's rounds, beside the op-sum check (its own
  HELD_OUT_LUT rows against the same), with the share of their ops the predictor supplied.

Rows are compared as the LUT holds them (an op's time plus the invoke overhead).

    python bench/predictor_accuracy.py [--train 24] [--held-out 50] [-o runs/bench/predictor_accuracy.json]

Run from the repo root (bench/common.py is imported from the script's folder).  The run
folders go to runs/bench/predictor_accuracy/.  Expect about 10 minutes on 2 cores the first time
(converting the 74 networks) and about 5 once the model cache holds them.
"""

from __future__ import annotations

import common
import numpy as np

from latprof.arch import Architecture
from latprof.lut import LUT
from latprof.network import Network
from latprof.predict import predict_ops
from latprof.predictor import TrainedPredictor, error_metrics, lut_training_data, per_type_metrics
from latprof.profiling import RESIDUAL_KEY, read_run

TRAIN_SEED, HELD_OUT_SEED = 2, 7
SIZES = ((0, 10), (10, 50), (50, 200), (200, float("inf")))  # op row sizes, us


def main() -> None:
    parser = common.parser(__doc__, "predictor_accuracy")
    parser.add_argument("--train", type=int, default=24, help="architectures whose ops the predictor learns from (default: 24)")
    parser.add_argument("--held-out", type=int, default=50, help="other architectures whose ops it is scored on (default: 50)")
    args = parser.parse_args()
    work = common.fresh_work_dir(args.output)
    train, train_lut, predictor = work / "train", work / "train.lut.json", work / "predictor.json"
    held, held_lut = work / "held-out", work / "held-out.lut.json"
    seconds, outputs = {}, {}
    outputs["profile_train"], seconds["profile train"] = common.latprof(
        "profile", "--device", "host", "--sample", args.train, "--seed", TRAIN_SEED, "-o", train)
    outputs["lut_build_train"], seconds["lut build train"] = common.latprof("lut", "build", train, "-o", train_lut)
    outputs["predictor_train"], seconds["predictor train"] = common.latprof("predictor", "train", train_lut, "-o", predictor)
    outputs["profile_held_out"], seconds["profile held-out"] = common.latprof(
        "profile", "--device", "host", "--sample", args.held_out, "--seed", HELD_OUT_SEED, "-o", held)
    outputs["lut_build_held_out"], seconds["lut build held-out"] = common.latprof("lut", "build", held, "-o", held_lut)

    known, truth_lut = LUT.load(train_lut), LUT.load(held_lut)
    model = TrainedPredictor.load(predictor).model
    specs, truth = lut_training_data(truth_lut)
    missing = np.array([spec.key not in known.table.index for spec in specs])
    held_specs = [spec for spec, lacks in zip(specs, missing) if lacks]
    estimates = model.predict(held_specs) if held_specs else np.array([])
    held_truth = truth[missing]
    ops_table = per_type_metrics(held_specs, estimates, held_truth).to_dict("records") if held_specs else []
    sizes = []
    for low, high in SIZES:
        chosen = np.isfinite(estimates) & (held_truth >= low) & (held_truth < high)
        if chosen.any():
            label = f"{low}-{high:g} us" if high != float("inf") else f">= {low} us"
            sizes.append({"op size": label, **error_metrics(estimates[chosen], held_truth[chosen])})
    shared = [spec for spec, lacks in zip(specs, missing) if not lacks]
    floor = error_metrics(known.table.loc[[s.key for s in shared], "latency_us"].to_numpy(dtype=float),
                          truth[~missing]) if shared else {"count": 0}
    cross_validation = outputs["predictor_train"].get("cross_validation", [])
    networks = network_rows(held, known, model, truth_lut)
    both = sorted(set(known.reference_us) & set(truth_lut.reference_us))
    state = round(float(np.median([100 * (truth_lut.reference_us[t] / known.reference_us[t] - 1) for t in both])), 1) \
        if both else None

    summary = {"train_lut_ops": len(known), "held_out_lut_ops": len(specs), "held_out_ops_the_train_lut_lacks": len(held_specs),
               "held_out_ops": next((row for row in ops_table if row["op"] == "all"), {}),
               "floor_ops_in_both_luts": floor, "reference_networks_held_out_vs_train_pct": state,
               "cross_validation": next((row for row in cross_validation if row.get("op") == "all"), {}),
               "networks_lut_plus_predictor": common.accuracy(networks["predicted_ms"], networks["measured_ms"]),
               "networks_own_ops": common.accuracy(networks["own_ops_ms"], networks["measured_ms"]),
               "network_ops_predicted_pct": networks["ops_predicted_pct"],
               "networks_not_predicted": len(networks["unpredicted"])}

    common.print_table(ops_table, title=f"held-out ops: {len(held_specs)} ops of {args.held_out} networks (seed "
                                        f"{HELD_OUT_SEED}) that the LUT of {args.train} networks (seed {TRAIN_SEED}) "
                                        "lacks, predictor vs their rows")
    common.print_table(sizes, title="held-out ops by size of their row")
    common.print_pairs([
        ("floor: ops in both LUTs, one LUT's row vs the other's", _figures(floor)),
        ("  reference networks in the held-out call vs the train call (%)", state),
        ("predictor's cross-validation on its own LUT", _figures(summary["cross_validation"])),
        ("held-out networks, LUT + predictor vs timed whole", _figures(summary["networks_lut_plus_predictor"])),
        ("held-out networks, their own ops (op-sum check)", _figures(summary["networks_own_ops"])),
        ("  share of their ops the predictor supplied (%)", networks["ops_predicted_pct"]),
        ("  networks left out: ops of a type the predictor never saw", len(networks["unpredicted"])),
        *((f"{step} (s)", round(value, 1)) for step, value in seconds.items())], title="figures: count, MAPE %, ±5 %, ±10 %")
    common.write_json(args.output, {**common.context("predictor_accuracy"), "train": args.train, "train_seed": TRAIN_SEED,
                                    "held_out": args.held_out, "held_out_seed": HELD_OUT_SEED, "summary": summary,
                                    "held_out_ops_by_type": ops_table, "held_out_ops_by_size": sizes,
                                    "networks": networks["rows"], "networks_not_predicted": networks["unpredicted"],
                                    "seconds": {k: round(v, 1) for k, v in seconds.items()},
                                    "outputs": outputs})


def network_rows(run_dir, lut: LUT, model, own: LUT) -> dict:
    """Each network profiled into ``run_dir``: predicted from ``lut`` + ``model`` and from its own
    run's LUT ``own``, against its whole latency timed in the same rounds as its ops."""
    whole = {r["network"]: r["network_us"] / 1000 for r in read_run(run_dir)[1] if r["key"] == RESIDUAL_KEY}
    rows, predicted_ops, total_ops, unpredicted = [], 0, 0, []
    for name, measured_ms in whole.items():
        ops = list(Network(Architecture.from_string(name)).ops)
        estimate, check = predict_ops(name, ops, lut, model), predict_ops(name, ops, own)
        if estimate.latency_ms is None or check.latency_ms is None:  # an op type the predictor never saw
            unpredicted.append(name)
            continue
        predicted_ops, total_ops = predicted_ops + estimate.predicted_ops, total_ops + len(ops)
        rows.append({"network": name, "measured_ms": round(measured_ms, 4), "predicted_ms": estimate.latency_ms,
                     "own_ops_ms": check.latency_ms, "predicted_ops": estimate.predicted_ops, "ops": len(ops)})
    return {"rows": rows, "unpredicted": unpredicted, "measured_ms": [r["measured_ms"] for r in rows],
            "predicted_ms": [r["predicted_ms"] for r in rows],
            "own_ops_ms": [r["own_ops_ms"] for r in rows],
            "ops_predicted_pct": round(100 * predicted_ops / total_ops, 1) if total_ops else None}


def _figures(m: dict) -> str:
    if not m or not m.get("count", m.get("models")):
        return "-"
    return " / ".join(str(m.get(k)) for k in ("count", "mape_pct", "within_5_pct", "within_10_pct"))


if __name__ == "__main__":
    main()
