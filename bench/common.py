"""What the benches share: running a latprof command, accuracy figures, a table, the JSON file.

Not a bench.  Every bench is run from the repo root as ``python bench/NAME.py``; Python puts the
script's folder (bench/) first on ``sys.path``, so a bench imports this module as ``common``.
Benches import latprof and this module, never each other.

Conventions every bench follows:

- ``-o/--output FILE.json`` (default ``runs/bench/NAME.json``): everything the bench measured,
  with what ran it (:func:`context`).
- A bench that makes run folders, LUTs or validations puts them in its work folder, the JSON
  path without ``.json`` (``runs/bench/NAME/``), made afresh on each run (:func:`fresh_work_dir`).
- A latprof command is run as the user runs it, in a subprocess (:func:`latprof`), with this
  Python (``python -m latprof.cli``, so the working tree's latprof): its ``--json`` output is
  the result, its stderr (progress, warnings, errors) goes to the terminal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

BENCH_RUNS = Path("runs/bench")
WORK_MARKER = ".latprof-bench"  # marks a work folder as the bench's own, so a re-run may empty it


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """An argument parser whose help is the bench's docstring, with ``-o`` (the JSON file)."""
    parser = argparse.ArgumentParser(prog=f"python bench/{name}.py", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, default=BENCH_RUNS / f"{name}.json",
                        help="JSON file to write the results to (default: %(default)s); the bench's run "
                             "folders, if any, go to the same path without .json")
    return parser


def fresh_work_dir(output: Path) -> Path:
    """The bench's work folder for ``output`` (its path without ``.json``), empty.  A folder left
    by an earlier run of a bench is emptied; any other non-empty folder is refused, not touched."""
    work = output.with_suffix("")
    if work == output:
        raise SystemExit(f"{output}: the output must be a .json file")
    if work.exists() and any(work.iterdir()):
        if not (work / WORK_MARKER).is_file():
            raise SystemExit(f"{work} exists and is not a bench's work folder; choose another -o")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARKER).write_text("made by a latprof bench; emptied when the bench runs again\n")
    return work


def latprof(*args: object, env: dict[str, str] | None = None, as_json: bool = True) -> tuple[object, float]:
    """Run ``latprof ARGS --json`` as a subprocess; its parsed output and its wall time in seconds.
    The command is echoed; a failure stops the bench with the command's exit code."""
    words = [str(arg) for arg in args] + (["--json"] if as_json else [])
    print("$ latprof " + " ".join(shlex.quote(word) for word in _shortened(words)), file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "latprof.cli", *words], stdout=subprocess.PIPE, text=True,
                          env=None if env is None else {**os.environ, **env}, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"bench stopped: 'latprof {' '.join(words[:3])} ...' exited with {done.returncode} "
                         "(its error is above)")
    return (json.loads(done.stdout) if as_json else done.stdout), seconds


def _shortened(words: list[str], keep: int = 3) -> list[str]:
    """A command line for the eye: a long run of .tflite files is cut to its first few."""
    files = [word for word in words if word.endswith(".tflite")]
    if len(files) <= keep + 1:
        return words
    first = words.index(files[0])
    return words[:first] + files[:keep] + [f"... ({len(files) - keep} more .tflite)"] + words[first + len(files):]


def accuracy(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """How far predictions land from measurements: MAPE, the shares within ±5% and ±10%, and the
    mean and spread of the signed error, in percent."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if not len(measured):
        return {"count": 0}
    error = 100 * (predicted / measured - 1)
    return {"count": int(len(error)), "mape_pct": round(float(np.abs(error).mean()), 2),
            "within_5_pct": round(float(100 * (np.abs(error) <= 5).mean()), 1),
            "within_10_pct": round(float(100 * (np.abs(error) <= 10).mean()), 1),
            "mean_error_pct": round(float(error.mean()), 2), "sd_error_pct": round(float(error.std()), 2)}


def spread(values: Iterable[float | None]) -> str:
    """Median and range of a figure over repeats, as text ("94.0 (92.0-98.0)")."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "-"
    if len(values) == 1:
        return cell(values[0])
    return f"{cell(float(np.median(values)))} ({cell(min(values))}-{cell(max(values))})"


def print_table(rows: list[dict], columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Rows of dicts as an aligned text table; numbers right-aligned, None as '-'."""
    if title:
        print(f"\n{title}")
    if not rows:
        print("  (nothing)")
        return
    columns = list(columns or rows[0])
    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    numeric = [all(isinstance(row.get(column), (int, float)) or row.get(column) is None for row in rows)
               for column in columns]
    print("  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(columns, widths, numeric)))
    for line in cells:
        print("  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(line, widths, numeric)))


def print_pairs(pairs: Sequence[tuple[str, object]], title: str | None = None) -> None:
    """Name-value lines, the names padded to one width."""
    if title:
        print(f"\n{title}")
    width = max((len(name) for name, _ in pairs), default=0)
    for name, value in pairs:
        print(f"{name:<{width}}  {cell(value)}")


def cell(value: object) -> str:
    """A figure as the tables print it: three significant digits or so, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 1e6:
            return "0" if value == 0 else f"{value:.3e}"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return str(value)


def context(name: str) -> dict:
    """What ran a bench, for its JSON: the command, when, the commit and the machine."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, check=False, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    return {"bench": name, "command": " ".join(shlex.quote(arg) for arg in [f"python bench/{name}.py", *sys.argv[1:]]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": git("rev-parse", "HEAD"),
            "uncommitted_changes": bool(git("status", "--porcelain")), "host": platform.node(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version()}


def write_json(path: Path, data: dict) -> None:
    """Write the bench's results (numpy numbers and paths made plain) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=_plain) + "\n")
    print(f"\nwrote {path}")


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
