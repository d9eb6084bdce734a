"""The phone path on the loopback phone: what a profile run costs per model, against the host runner.

Starts a private adb server and a loopback phone (tests/loopback: a device-side adbd over TCP,
commands chrooted into a sandbox; its benchmark_model is the stand-in that runs the model with
LiteRT), then profiles the ops of ``--sample`` architectures on the phone with benchmark_model's
default run lengths and on the host, and prints a table.  The phone's time per model includes
everything a real phone pays besides the model itself: adb round trips, pushes, the detached loop,
the binary's start, warm-up (--warmup_min_secs) and timed runs (--min_secs).

    python bench/phone_loopback.py [--sample 1] [--seed 1] [-o runs/bench-phone]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from loopback.benchmark_model import install  # noqa: E402
from loopback.fixtures import ADB_ENV, LoopbackPhone, start_adb_server  # noqa: E402


def latprof(*args) -> tuple[dict, float]:
    started = time.monotonic()
    done = subprocess.run(["latprof", *map(str, args), "--json"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip())
    return json.loads(done.stdout), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/bench-phone"))
    args = parser.parse_args()
    shutil.rmtree(args.output, ignore_errors=True)
    args.output.mkdir(parents=True)

    work = Path(tempfile.mkdtemp(prefix="latprof-bench-phone-"))
    server = start_adb_server(work)
    os.environ.update({**ADB_ENV, "ANDROID_ADB_SERVER_PORT": str(server.port)})
    (work / "phone").mkdir()
    phone = LoopbackPhone(server, work / "phone").start()
    try:
        binary = install(work / "benchmark_model")
        what = ["--sample", args.sample, "--seed", args.seed]
        # Convert first, so that both timings below are measurement only.
        latprof("profile", "--device", "host", *what, "-o", args.output / "host")
        shutil.rmtree(args.output / "host")
        host, host_s = latprof("profile", "--device", "host", *what, "-o", args.output / "host")
        command = ["profile", "--device", phone.serial, "--benchmark-binary", binary, *what, "-o", args.output / "phone"]
        print("$ latprof " + " ".join(map(str, command)))
        ours, phone_s = latprof(*command)
        print(json.dumps(ours, indent=1))
        again, again_s = latprof(*command)
        records = [json.loads(line) for line in (args.output / "phone" / "measurements.jsonl").read_text().splitlines()]
        host_records = {json.loads(line)["key"]: json.loads(line)["latency_us"]
                        for line in (args.output / "host" / "measurements.jsonl").read_text().splitlines()}
        ratios = sorted(r["latency_us"] / host_records[r["key"]] for r in records if r["key"] in host_records)
        provenance = json.loads((args.output / "phone" / "run.json").read_text())["provenance"]
    finally:
        phone.close()
        server.run("kill-server")
        shutil.rmtree(work, ignore_errors=True)

    n = ours["requested"]
    print(f"\n{'runner':<40}{'models':>8}{'wall s':>10}{'s/model':>10}")
    print(f"{'host (LiteRT in process, v3 protocol)':<40}{host['requested']:>8}{host_s:>10.1f}{host_s / n:>10.2f}")
    print(f"{'loopback phone (adb + benchmark_model)':<40}{n:>8}{phone_s:>10.1f}{phone_s / n:>10.2f}")
    print(f"{'loopback phone, re-run (nothing to do)':<40}{again['measured_now']:>8}{again_s:>10.1f}{'':>10}")
    print(f"\nphone latency / host latency per op: median {ratios[len(ratios) // 2]:.2f} "
          f"(p10 {ratios[len(ratios) // 10]:.2f}, p90 {ratios[9 * len(ratios) // 10]:.2f}) over {len(ratios)} ops; "
          f"{len(records)} phone records")
    print(f"provenance: {provenance['device']} | {provenance['hardware']} | {provenance['runtime']} | "
          f"{provenance['method']}")


if __name__ == "__main__":
    main()
