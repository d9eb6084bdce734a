"""SIGKILL at the two moments where a write is half done: between a search's log append and its
state save, and inside the repair of a torn JSON-lines tail.  The process kills itself there (a
patch in the test's own subprocess, nothing in latprof), and the next run must lose and repeat
nothing.  (Kills at random moments of whole commands: bench/kills.py and tests/test_search.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from test_search_training import write_colour_folder

TESTS = Path(__file__).resolve().parent

SEARCH = """
import os, signal, sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
sys.path.insert(0, {tests!r})
from test_search import TINY_SPACE, MacsLatency
from latprof import space as spaces
from latprof.search import loop
from latprof.search.train import TrainSettings

spaces.SPACES["tiny"] = spaces.SearchSpace(**TINY_SPACE)
if sys.argv[2] == "kill-after-log":
    original = loop.append_jsonl
    def append_then_die(path, records):
        original(path, records)
        os.kill(os.getpid(), signal.SIGKILL)  # the line is in the log, the state not saved yet
    loop.append_jsonl = append_then_die
if sys.argv[2] == "kill-after-ask":
    original_write = loop.write_json
    def die_before_the_state(path, data):
        if path.name == loop.STATE_FILE:
            os.kill(os.getpid(), signal.SIGKILL)  # the controller asked (Optuna's storage has it), the state not saved
        original_write(path, data)
    loop.write_json = die_before_the_state
config = loop.SearchConfig(target_ms=1.0, space="tiny", budget=2, workers=1, latency="macs", controller=sys.argv[4],
                           train=replace(TrainSettings(), epochs=1, resolution=16, dataset=sys.argv[3]))
with ThreadPoolExecutor(1) as executor:
    loop.run_search(sys.argv[1], None if sys.argv[2] == "resume" else config, MacsLatency(), executor,
                    resume=sys.argv[2] == "resume")
"""


def run(folder: Path, mode: str, images: Path, controller: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SEARCH.format(tests=str(TESTS)), str(folder), mode, str(images),
                           controller], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("controller", ["tpe", "nsga2"])  # the loop is the same for all; Optuna adds its storage
def test_a_search_killed_between_its_log_append_and_its_state_save_resumes_exactly(tmp_path, controller):
    images = write_colour_folder(tmp_path / "images", per_class=10)
    folder = tmp_path / "search"
    killed = run(folder, "kill-after-log", images, controller)
    assert killed.returncode == -9, killed.stderr[-2000:]
    logged = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    state = json.loads((folder / "state.json").read_text())
    assert [entry["id"] for entry in logged] == [0] and state["told"] == []  # the kill hit between the two
    done = run(folder, "resume", images, controller)
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert log[0] == logged[0] and sorted(entry["id"] for entry in log) == [0, 1]  # nothing lost or repeated
    state = json.loads((folder / "state.json").read_text())
    assert state["told"] == [0, 1] and state["controller"]["told"] == 2  # the logged one was told once
    # Optuna's storage agrees: two trials, each told once
    trials = optuna.load_study(study_name="latprof", storage=f"sqlite:///{folder / 'optuna.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert [t.params for t in trials] == [{f"d{i:02d}": d for i, d in enumerate(e["decisions"])} for e in log]


def test_an_optuna_search_killed_after_its_ask_before_its_state_save_asks_again(tmp_path):
    """The sampler's trial reached the storage, the search's state did not: the orphan trial is
    failed (samplers ignore it), the same candidate is asked again under a new trial."""
    images = write_colour_folder(tmp_path / "images", per_class=10)
    folder = tmp_path / "search"
    killed = run(folder, "kill-after-ask", images, "tpe")
    assert killed.returncode == -9 and not (folder / "state.json").exists(), killed.stderr[-2000:]
    done = run(folder, "resume", images, "tpe")
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert sorted(entry["id"] for entry in log) == [0, 1]
    trials = optuna.load_study(study_name="latprof", storage=f"sqlite:///{folder / 'optuna.db'}").trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"] and trials[0].params == trials[1].params


REPAIR = """
import os, signal, sys
from latprof import jsonl
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die after the cut, before it is made durable
jsonl.repair_tail(__import__("pathlib").Path(sys.argv[1]))
"""


def test_a_repair_killed_midway_leaves_the_whole_lines_and_finishes_on_the_next_run(tmp_path):
    from latprof.jsonl import read_jsonl, repair_tail

    path = tmp_path / "measurements.jsonl"
    whole = "".join(json.dumps({"key": f"op{i}", "latency_us": float(i)}) + "\n" for i in range(1000))
    for tail, expected in (('{"key": "torn", "laten', 1000), ('{"key": "op1000", "latency_us": 1000.0}', 1001)):
        path.write_text(whole + tail)
        killed = subprocess.run([sys.executable, "-c", REPAIR, str(path)], capture_output=True, text=True, timeout=120)
        assert killed.returncode == -9, killed.stderr
        repair_tail(path)
        records = read_jsonl(path, required=("key", "latency_us"))
        assert [r["key"] for r in records] == [f"op{i}" for i in range(expected)]
        assert path.read_text().endswith("\n")
