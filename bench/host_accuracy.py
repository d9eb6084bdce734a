"""Accuracy of the default recipe on networks of the search space, on this host, repeated.

Runs the user's three commands, each as a subprocess, into a fresh folder per repeat:

    latprof profile --device host --sample 50 --seed 7 -o RUN
    latprof lut build RUN -o LUT
    latprof validate --lut LUT --random 50 --seed 7 --device host -o VAL

(the default timing method, in-network: the validated networks are the profiled ones, measured
again whole in a call of their own).  Per repeat it reports the shares of networks within ±5% and
±10% of their measured latency, MAPE and Spearman, with the predictions put on the pace of the
reference networks timed in the validation's rounds (what ``validate`` reports; the
``unpaced_`` columns score the LUT's own figures), the reference drift (how much slower (+) the
reference networks ran at validation than when the LUT was profiled: the host's state moving
between the calls), how many times validate measured, and the wall time of each step; then the
median and range over repeats.  The JSON holds every command's own JSON output as well (the
validation's per-network table included).

    python bench/host_accuracy.py [--repeats 3] [--sample 50] [--random 50] [--seed 7] [-o runs/bench/host_accuracy.json]

Run from the repo root (bench/common.py is imported from the script's folder).  The run
folders go to runs/bench/host_accuracy/repeat-N/.  Expect a few minutes a repeat on 2 cores, more
for the first (it converts the 50 networks; later repeats find them in the model cache), and up
to validate's settle timeout (300 s) more when the host is busy.
"""

from __future__ import annotations

import common


def main() -> None:
    parser = common.parser(__doc__, "host_accuracy")
    parser.add_argument("--repeats", type=int, default=3, help="times to run the three commands (default: 3)")
    parser.add_argument("--sample", type=int, default=50, help="architectures to profile (default: 50)")
    parser.add_argument("--random", type=int, default=50, help="architectures to validate (default: 50)")
    parser.add_argument("--seed", type=int, default=7, help="seed of both draws (default: 7: the same networks)")
    args = parser.parse_args()
    work = common.fresh_work_dir(args.output)
    result = {**common.context("host_accuracy"), "recipe": {"sample": args.sample, "random": args.random,
                                                            "seed": args.seed}, "repeats": []}

    rows = []
    for repeat in range(1, args.repeats + 1):
        folder = work / f"repeat-{repeat}"
        run, lut, val = folder / "run", folder / "lut.json", folder / "val"
        profiled, profile_s = common.latprof("profile", "--device", "host", "--sample", args.sample,
                                             "--seed", args.seed, "-o", run)
        built, build_s = common.latprof("lut", "build", run, "-o", lut)
        validated, validate_s = common.latprof("validate", "--lut", lut, "--random", args.random, "--seed", args.seed,
                                               "--device", "host", "-o", val)
        m = validated["metrics"]
        row = {"repeat": repeat, "networks": m.get("models"), "within_5_pct": m.get("within_5_pct"),
               "within_10_pct": m.get("within_10_pct"), "mape_pct": m.get("mape_pct"), "spearman": m.get("spearman"),
               "unpaced_within_10_pct": m.get("unpaced", {}).get("within_10_pct"),
               "unpaced_mape_pct": m.get("unpaced", {}).get("mape_pct"),
               "reference_drift_pct": m.get("reference_drift_pct", m.get("lut_drift_pct")),
               "measure_attempts": m.get("measure_attempts"), "lut_ops": built.get("ops"),
               "profile_s": round(profile_s, 1), "lut_build_s": round(build_s, 1), "validate_s": round(validate_s, 1)}
        rows.append(row)
        result["repeats"].append({**row, "profile": profiled, "lut_build": built, "validate": validated})
        if args.repeats > 1:
            common.print_table([row], title=f"repeat {repeat} of {args.repeats}")

    summary = {name: common.spread(row[name] for row in rows)
               for name in ("within_5_pct", "within_10_pct", "mape_pct", "unpaced_within_10_pct", "reference_drift_pct",
                            "profile_s", "lut_build_s", "validate_s")}
    result["summary"] = summary
    provenance = result["repeats"][0]["lut_build"].get("provenance", {})
    common.print_table(rows, title=f"{args.repeats} repeats of the recipe (profile {args.sample} networks, seed "
                                   f"{args.seed}; validate {args.random}, seed {args.seed}) on "
                                   f"{provenance.get('hardware', 'this host')}, "
                                   f"{provenance.get('method', '').split(' (')[0]}")
    common.print_pairs(list(summary.items()), title="median (min-max) over repeats")
    common.write_json(args.output, result)


if __name__ == "__main__":
    main()
