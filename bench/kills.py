"""Kill ``latprof profile`` and ``latprof search`` with SIGKILL at random moments, resume each, and
count what ended up measured once, duplicated or lost.

Profile: ``latprof profile --device host --sample 6 --seed 7 -o RUN``, timed once whole; then into
fresh folders, each run killed (the process group, with everything it started) at a random moment
of that time and re-run to the end.  A network is measured once when the folder holds exactly
one residual line for it and one line per op; duplicated when it holds more; lost when it holds
none or fewer (the networks asked for are the seed's sample).  The reference networks, timed with
every chunk by design, are counted per chunk: one line per chunk that finished.

Search: ``latprof search --latency measure --budget B --workers 2 --epochs 1 --train-resolution 16``
(the built-in dataset) into a folder killed several times and resumed with ``--resume``.  An
evaluation is measured once when its id is logged once; duplicated when more; lost when an id
below the budget is missing at the end.

    python bench/kills.py [--profile-kills 20] [--search-kills 10] [--sample 6] [--budget 4] [--seed 0]
                          [-o runs/bench/kills.json]

Run from the repo root (bench/common.py is imported from the script's folder).  Expect 10-20
minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import common

from latprof.profiling import MEASUREMENTS_FILE, RESIDUAL_KEY
from latprof.space import get_space
from latprof.tflite_file import decompose

KILLS_PER_FOLDER = 5  # kills of one search folder before it runs to the end
PROFILE_SEED = 7


def run_until(args: list[str], seconds: float | None) -> int | None:
    """Start ``latprof ARGS`` in a process group of its own; after ``seconds``, SIGKILL the group.
    The exit code when it finished first (None when killed)."""
    process = subprocess.Popen([sys.executable, "-m", "latprof.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None
    if process.returncode != 0:
        raise SystemExit(f"latprof {' '.join(args[:3])} ... failed: {process.stderr.read()[-500:]}")
    return process.returncode


def profile_counts(run_dir: Path, networks: list[str], models: dict[str, Path]) -> dict:
    lines = [json.loads(line) for line in (run_dir / MEASUREMENTS_FILE).read_text().splitlines() if line.strip()]
    residuals = Counter(line["network"] for line in lines if line["key"] == RESIDUAL_KEY)
    op_lines = Counter(line["network"] for line in lines if line.get("network") and line["key"] != RESIDUAL_KEY)
    counts = Counter()
    for network in networks:
        ops = len(decompose(models[network]).ops)
        if residuals[network] == 1 and op_lines[network] == ops:
            counts["measured_once"] += 1
        elif residuals[network] > 1 or op_lines[network] > ops:
            counts["duplicated"] += 1
        else:
            counts["lost"] += 1
    return counts


def profile_bench(work: Path, kills: int, sample: int, rng: random.Random) -> dict:
    """Each kill on a fresh folder, at a random moment of a run timed once beforehand (the same
    networks every time, converted once), then resumed to the end and counted."""
    from latprof.convert import ModelCache, default_cache_dir, ensure_architectures

    archs = get_space("mnasnet").sample_many(sample, PROFILE_SEED)
    models = {name: Path(path) for name, path in
              ensure_architectures(archs, "float32", ModelCache(default_cache_dir())).items()}

    def args(run_dir: Path) -> list[str]:
        return ["profile", "--device", "host", "--sample", str(sample), "--seed", str(PROFILE_SEED), "-o", str(run_dir)]

    started = time.monotonic()
    run_until(args(work / "profile-whole"), None)
    whole_s = time.monotonic() - started
    folders, totals = [], Counter()
    while sum(f["killed"] for f in folders) < kills:
        run_dir = work / f"profile-{len(folders)}"
        delay = rng.uniform(1.0, whole_s)
        killed = run_until(args(run_dir), delay) is None
        run_until(args(run_dir), None)
        counts = profile_counts(run_dir, list(models), models)
        totals.update(counts)
        folders.append({"folder": run_dir.name, "killed": killed, "kill_after_s": round(delay, 2), **counts})
    common.print_table(folders, columns=["folder", "killed", "kill_after_s", "measured_once", "duplicated", "lost"],
                       title=f"profile --sample {sample}: a whole run takes {whole_s:.1f} s")
    return {"whole_run_s": round(whole_s, 1), "folders": folders, "measured_once": totals["measured_once"],
            "duplicated": totals["duplicated"], "lost": totals["lost"], "kills": kills}


def search_bench(work: Path, kills: int, budget: int, rng: random.Random) -> dict:
    folders, totals = [], Counter()
    for index in range((kills + KILLS_PER_FOLDER - 1) // KILLS_PER_FOLDER):
        out_dir = work / f"search-{index}"
        started = time.monotonic()
        delays, finished_early = [], 0
        first = ["search", "--target-ms", "10", "--latency", "measure", "--budget", str(budget), "--workers", "2",
                 "--epochs", "1", "--train-resolution", "16", "--seed", str(index), "-o", str(out_dir)]
        for _ in range(min(KILLS_PER_FOLDER, kills - index * KILLS_PER_FOLDER)):
            args = ["search", "--resume", str(out_dir)] if (out_dir / "search.json").is_file() else first
            delay = rng.uniform(3.0, 40.0)
            if run_until(args, delay) is None:
                delays.append(round(delay, 2))
            else:
                finished_early += 1
        run_until(["search", "--resume", str(out_dir)] if (out_dir / "search.json").is_file() else first, None)
        ids = Counter(json.loads(line)["id"] for line in (out_dir / "log.jsonl").read_text().splitlines() if line.strip())
        counts = Counter(measured_once=sum(1 for i in range(budget) if ids[i] == 1),
                         duplicated=sum(1 for i in ids if ids[i] > 1), lost=sum(1 for i in range(budget) if ids[i] == 0))
        totals.update(counts)
        folders.append({"folder": out_dir.name, "kills": len(delays), "finished_before_the_kill": finished_early,
                        "kill_after_s": delays, **counts, "seconds": round(time.monotonic() - started, 1)})
        common.print_table([folders[-1]], columns=["folder", "kills", "finished_before_the_kill", "measured_once",
                                                   "duplicated", "lost", "seconds"])
    return {"folders": folders, "measured_once": totals["measured_once"], "duplicated": totals["duplicated"],
            "lost": totals["lost"], "kills": sum(f["kills"] for f in folders)}


def main() -> None:
    parser = common.parser(__doc__, "kills")
    parser.add_argument("--profile-kills", type=int, default=20, help="kills of profile (default: 20)")
    parser.add_argument("--search-kills", type=int, default=10, help="kills of search (default: 10)")
    parser.add_argument("--sample", type=int, default=6, help="networks each profile run times (default: 6)")
    parser.add_argument("--budget", type=int, default=4, help="candidates of each search (default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments (default: 0)")
    args = parser.parse_args()
    work = common.fresh_work_dir(args.output)
    rng = random.Random(args.seed)
    result = {**common.context("kills"), "profile": profile_bench(work, args.profile_kills, args.sample, rng),
              "search": search_bench(work, args.search_kills, args.budget, rng)}
    rows = [{"command": name, **{k: result[name][k] for k in ("kills", "measured_once", "duplicated", "lost")}}
            for name in ("profile", "search")]
    result["summary"] = rows
    common.print_table(rows, title="SIGKILL at random moments, then resumed")
    common.write_json(args.output, result)


if __name__ == "__main__":
    main()
