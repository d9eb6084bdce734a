"""How long profiling a whole search space takes on this host with the default method.

Runs the user's command as a subprocess, into a fresh run folder:

    latprof profile --device host --all --space SPACE -o RUN

With the default method (in-network) that profiles a fixed sample of the space's networks, then
times every op spec of the space as a single-op model (with some of the networks' ops, which
calibrate them), then the reference networks.  Prints the wall time, how many op specs were
asked for, measured and refused, and the minutes of each stage as the run folder's time stamps
(one a chunk, to the second) divide them.  Then it checks the LUT, most of whose rows are
calibrated, as a user would:

    latprof lut build RUN -o LUT
    latprof validate --lut LUT --random 30 --seed 11 -o VAL

and prints the accuracy on those networks (none of them profiled) with the LUT's rows by source.

``--fresh-cache`` converts into an empty model cache (``LATPROF_CACHE`` set to a temporary
folder, removed afterwards), so the time includes converting every model, as on a new machine;
without it the user's cache serves what it holds.

    python bench/space_profile.py [--space mnasnet] [--fresh-cache] [-o runs/bench/space_profile.json]

Run from the repo root (bench/common.py is imported from the script's folder).  The run folder
goes to runs/bench/space_profile/run.  The MnasNet space has about 7,700 op specs; single-op
models are written directly (no converter), so a fresh cache adds about a minute.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import common

from latprof.profiling import OVERHEAD_SPEC, read_run
from latprof.reference import read_references
from latprof.space import SPACES, get_space

VALIDATE_SEED = 11  # networks other than those the run profiled to calibrate its ops


def main() -> None:
    parser = common.parser(__doc__, "space_profile")
    parser.add_argument("--space", choices=sorted(SPACES), default="mnasnet", help="search space (default: %(default)s)")
    parser.add_argument("--fresh-cache", action="store_true", help="convert every model into an empty model cache")
    parser.add_argument("--validate", type=int, default=30, help="sampled networks to validate the LUT on "
                                                                 "(default: %(default)s)")
    args = parser.parse_args()
    work = common.fresh_work_dir(args.output)
    run, lut = work / "run", work / "lut.json"
    specs = len(get_space(args.space).unique_ops())

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="latprof-bench-cache-") as cache:
        env = {"LATPROF_CACHE": cache} if args.fresh_cache else None
        summary, seconds = common.latprof("profile", "--device", "host", "--all", "--space", args.space, "-o", run, env=env)
        stages = stage_minutes(run, started, started + seconds)
        common.latprof("lut", "build", run, "-o", lut, env=env)
        validated, _ = common.latprof("validate", "--lut", lut, "--random", args.validate, "--seed", VALIDATE_SEED,
                                      "--space", args.space, "-o", work / "val", env=env)
    table = json.loads(lut.read_text())
    sources = Counter(row[table["columns"].index("source")] for row in table["rows"])
    m = validated["metrics"]
    accuracy = {"networks": m["models"], "mape_pct": m["mape_pct"], "within_5_pct": m["within_5_pct"],
                "within_10_pct": m["within_10_pct"], "unpaced_within_10_pct": m.get("unpaced", {}).get("within_10_pct"),
                "reference_drift_pct": m.get("reference_drift_pct"),
                **{f"LUT rows {source}": count for source, count in sorted(sources.items())},
                "calibration ratio, all types": (table.get("calibration") or {}).get("*", {}).get("ratio")}
    run_info = json.loads((run / "run.json").read_text())
    counts = {"space": args.space, "op specs in the space": specs, "requested": summary.get("requested"),
              "measured": summary.get("measured_now"), "could not be timed": len(summary.get("unsupported", {})),
              "networks timed alone": len(summary.get("timed_alone", {})), "fresh model cache": args.fresh_cache,
              "method": run_info["provenance"]["method"], "wall time (min)": round(seconds / 60, 1)}
    common.print_pairs(list(counts.items()), title=f"latprof profile --all --space {args.space}")
    common.print_table([{"stage": name, "minutes": minutes} for name, minutes in stages.items()],
                       title="minutes per stage (from the run folder's time stamps)")
    common.print_pairs(list(accuracy.items()), title=f"the LUT of the whole space against {args.validate} other "
                                                     f"sampled networks measured whole (seed {VALIDATE_SEED})")
    common.write_json(args.output, {**common.context("space_profile"), "summary": counts, "stage_minutes": stages,
                                    "accuracy": accuracy, "profile": summary, "validate": validated})


def stage_minutes(run: Path, started: float, ended: float) -> dict[str, float]:
    """Minutes between the time stamps of a run folder's lines: run folder made, networks
    profiled, first chunk of single-op models timed, last chunk, end; stages a run lacks are left out."""
    def stamp(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").timestamp()

    run_info, records = read_run(run)
    lines = [r for r in records if r.get("time") and r["key"] != OVERHEAD_SPEC.key]
    networks = [stamp(r["time"]) for r in lines if r.get("network")]
    alone = [stamp(r["time"]) for r in lines if not r.get("network")]
    references = [stamp(r["time"]) for r in read_references(run) if r.get("time")]
    marks = [("start-up, to the run folder made", stamp(run_info["created"]))]
    if networks:
        marks.append(("networks converted and profiled", max(networks)))
    if alone:
        marks += [("single-op models converted, their first chunk timed", min(alone)),
                  ("the other chunks timed", max(alone))]
    if references:
        marks.append(("reference networks timed", max(references)))
    marks.append(("exit", ended))
    minutes, previous = {}, started
    for name, moment in marks:
        minutes[name] = round(max(0.0, moment - previous) / 60, 2)
        previous = max(previous, moment)
    return minutes


if __name__ == "__main__":
    main()
