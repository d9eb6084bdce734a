"""One process per folder, and files that survive a kill: a second `latprof profile` on a folder
in use is refused, a stale temporary file does not block the folder, and a JSON-lines file a
killed writer left without its last newline is repaired in place."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import latprof_executable

from latprof.jsonl import append_jsonl, read_jsonl, write_json
from latprof.locks import LOCK_FILE
from latprof.profiling import MEASUREMENTS_FILE


def test_a_second_profile_on_a_folder_in_use_is_refused_and_nothing_is_measured_twice(tmp_path, cli_env, tiny_model):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".run.json.k1ll3d.tmp").write_text("{\"format\": ")  # what a write killed before its rename leaves
    command = [latprof_executable(), "profile", "--models", str(tiny_model), "-o", str(run_dir), "--json"]
    first = subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / MEASUREMENTS_FILE).is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.poll() is None, first.communicate()[1][-2000:]
    second = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    message = second.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert f"in use by another latprof process (pid {first.pid}, latprof profile)" in message, message
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    records = read_jsonl(run_dir / MEASUREMENTS_FILE)
    keys = [(r["key"], r.get("network"), r.get("context")) for r in records]
    assert len(keys) == len(set(keys))  # every line measured once
    assert json.loads(out)["measured_now"] == 1
    # the lock is released with its holder: the same command runs again, with nothing left to do
    again = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["measured_now"] == 0 and (run_dir / LOCK_FILE).exists()


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + json.dumps({"key": "b"}))  # killed before the newline
    assert [r["key"] for r in read_jsonl(path)] == ["a", "b"]
    append_jsonl(path, [{"key": "c"}])
    assert [r["key"] for r in read_jsonl(path)] == ["a", "b", "c"]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 3


def test_a_torn_last_record_is_cut_off_in_place(tmp_path):
    path = tmp_path / "m.jsonl"
    whole = "".join(json.dumps({"key": f"k{i}", "latency_us": float(i)}) + "\n" for i in range(20000))
    path.write_text(whole + '{"key": "torn", "laten')
    inode = path.stat().st_ino
    append_jsonl(path, [{"key": "next", "latency_us": 1.0}])
    assert path.stat().st_ino == inode  # truncated, not rewritten under another file
    text = path.read_text()
    assert text.startswith(whole) and text[len(whole):] == json.dumps({"key": "next", "latency_us": 1.0}) + "\n"


def test_atomic_writes_leave_no_temporary_file(tmp_path):
    for version in range(3):
        write_json(tmp_path / "doc.json", {"version": version})
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]
    assert json.loads((tmp_path / "doc.json").read_text()) == {"version": 2}
