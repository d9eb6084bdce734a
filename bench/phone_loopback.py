"""The phone path on the loopback phone: what a profile run costs per model on a "phone", against
the host, and how its op times compare.

Starts a private adb server and a loopback phone (tests/loopback: a device-side adbd over TCP,
commands chrooted into a sandbox that looks like Android; its benchmark_model is a stand-in that
runs the model with LiteRT and prints the real tool's output, per-op profile included), then
runs, each as a subprocess and with the default method (in-network):

    latprof profile --device host --sample N --seed S -o HOST                 # once to convert, once timed
    latprof profile --device SERIAL --benchmark-binary BIN --sample N --seed S -o PHONE
    latprof profile ... -o PHONE                                              # again: nothing left to do
    latprof lut build PHONE -o PHONE_LUT
    latprof validate --lut PHONE_LUT --device SERIAL --benchmark-binary BIN --random N --seed S -o VAL

The phone's wall time includes everything a real phone pays besides running the model: adb round
trips, pushes, the detached loop, the binary's start, warm-up (--warmup_min_secs) and timed runs
(--min_secs).  Prints wall seconds per requested item for each runner, the re-run's, the
ratio of the phone's op times to the host's (median per op key over the lines of each run), and
the phone LUT's predictions of the profiled networks against the phone's measurement of them
whole, in another call (validate, which also times the reference networks on the phone).

    python bench/phone_loopback.py [--sample 5] [--seed 1] [-o runs/bench/phone_loopback.json]

Run from the repo root (bench/common.py is imported from the script's folder; tests/loopback is
put on the path by this script, as the loopback phone lives there).  The run folders go to
runs/bench/phone_loopback/.  Expect a few minutes for five networks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import common
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from loopback.benchmark_model import install  # noqa: E402
from loopback.fixtures import ADB_ENV, LoopbackPhone, start_adb_server  # noqa: E402

from latprof.profiling import RESIDUAL_KEY, read_run  # noqa: E402


def op_times(run: Path) -> dict[str, float]:
    """Each op key's median latency over the run's lines (an op found in several networks has a
    line from each); the lines of what a network took beyond its ops are left out."""
    by_key: dict[str, list[float]] = {}
    for record in read_run(run)[1]:
        if record["key"] != RESIDUAL_KEY:
            by_key.setdefault(record["key"], []).append(float(record["latency_us"]))
    return {key: float(np.median(values)) for key, values in by_key.items()}


def main() -> None:
    parser = common.parser(__doc__, "phone_loopback")
    parser.add_argument("--sample", type=int, default=5, help="architectures to profile (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the draw (default: %(default)s)")
    args = parser.parse_args()
    out = common.fresh_work_dir(args.output)

    work = Path(tempfile.mkdtemp(prefix="latprof-bench-phone-"))
    server = start_adb_server(work)
    os.environ.update({**ADB_ENV, "ANDROID_ADB_SERVER_PORT": str(server.port)})
    (work / "phone").mkdir()
    phone = LoopbackPhone(server, work / "phone").start()
    try:
        binary = install(work / "benchmark_model")
        what = ["--sample", args.sample, "--seed", args.seed]
        common.latprof("profile", "--device", "host", *what, "-o", out / "convert")  # so both timings are measuring only
        host, host_s = common.latprof("profile", "--device", "host", *what, "-o", out / "host")
        command = ["profile", "--device", phone.serial, "--benchmark-binary", binary, *what, "-o", out / "phone"]
        ours, phone_s = common.latprof(*command)
        again, again_s = common.latprof(*command)
        common.latprof("lut", "build", out / "phone", "-o", out / "phone-lut.json")
        validated, validate_s = common.latprof("validate", "--lut", out / "phone-lut.json", "--device", phone.serial,
                                               "--benchmark-binary", binary, "--random", args.sample, "--seed",
                                               args.seed, "-o", out / "phone-val")
        phone_ops, host_ops = op_times(out / "phone"), op_times(out / "host")
        provenance = json.loads((out / "phone" / "run.json").read_text())["provenance"]
    finally:
        phone.close()
        server.run("kill-server")
        shutil.rmtree(work, ignore_errors=True)

    ratios = np.array([phone_ops[key] / host_ops[key] for key in phone_ops if key in host_ops and host_ops[key] > 0])
    rows = [{"runner": "host (LiteRT in this process)", "requested": host["requested"], "wall_s": round(host_s, 1),
             "s_each": round(host_s / max(1, host["requested"]), 2)},
            {"runner": "loopback phone (adb + benchmark_model)", "requested": ours["requested"], "wall_s": round(phone_s, 1),
             "s_each": round(phone_s / max(1, ours["requested"]), 2)},
            {"runner": "loopback phone, re-run (nothing to do)", "requested": again["measured_now"],
             "wall_s": round(again_s, 1), "s_each": None}]
    ratio = ({"ops": len(ratios), "median": round(float(np.median(ratios)), 3),
              "p10": round(float(np.percentile(ratios, 10)), 3), "p90": round(float(np.percentile(ratios, 90)), 3)}
             if len(ratios) else {"ops": 0})
    common.print_table(rows, title=f"latprof profile --sample {args.sample} --seed {args.seed}, "
                                   f"{provenance['method'].split(' (')[0]}")
    common.print_table([{k: v for k, v in row.items() if k != "target"} for row in validated["models"]],
                       title="the phone LUT against the phone, networks measured whole by validate")
    m = validated["metrics"]
    accuracy = {"networks": m["models"], "mape_pct": m["mape_pct"], "within_5_pct": m["within_5_pct"],
                "within_10_pct": m["within_10_pct"], "unpaced_within_10_pct": m.get("unpaced", {}).get("within_10_pct"),
                "reference_drift_pct": m.get("reference_drift_pct"),
                "validate_s": round(validate_s, 1)}
    common.print_pairs(list(accuracy.items()), title="phone LUT accuracy")
    common.print_pairs([("phone / host op time: ops, median, p10, p90", " / ".join(map(str, ratio.values()))),
                        ("phone provenance", f"{provenance['device']} | {provenance['hardware']} | {provenance['runtime']}")])
    common.write_json(args.output, {**common.context("phone_loopback"), "sample": args.sample, "seed": args.seed,
                                    "runners": rows, "phone_over_host": ratio, "accuracy": accuracy,
                                    "phone_provenance": provenance,
                                    "outputs": {"host": host, "phone": ours, "phone_again": again,
                                                "validate": validated}})


if __name__ == "__main__":
    main()
