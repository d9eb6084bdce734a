"""A profile run stopped by Ctrl-C (the whole process group, as a terminal sends it) says so in one
line, keeps the measurement lines it had written, and the same command run again finishes the job
with every line written exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import latprof_executable

from latprof.network import Network
from latprof.profiling import MEASUREMENTS_FILE, OVERHEAD_SPEC, RESIDUAL_KEY


def measurement_lines(run_dir) -> list[str]:
    path = run_dir / MEASUREMENTS_FILE
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def test_ctrl_c_then_resume_keeps_the_lines_and_measures_each_once(tmp_path, cli_env, tiny_model, tiny_arch):
    """SIGINT goes out once the run has measurement lines (the invoke overhead, timed first), while
    the network is still being profiled: not at a fixed time, which on a slow machine came before
    anything was measured, and so tested nothing of what an interrupted run keeps."""
    run_dir = tmp_path / "run"
    command = [latprof_executable(), "profile", "--models", str(tiny_model), "-o", str(run_dir)]
    process = subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not measurement_lines(run_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()[1][-2000:]  # still running: there is work to interrupt
    kept = measurement_lines(run_dir)
    assert kept, "no measurement line within 120 s"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "latprof: interrupted" in stderr and "re-run the same command" in stderr
    assert "Traceback" not in stderr
    kept = measurement_lines(run_dir)  # what the interrupted run left, whole lines only
    assert json.loads(kept[0])["key"] == OVERHEAD_SPEC.key

    resumed = subprocess.run(command + ["--json"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    lines = measurement_lines(run_dir)
    assert lines[:len(kept)] == kept  # nothing lost or rewritten
    records = [json.loads(line) for line in lines]
    assert [r["key"] for r in records if "network" not in r] == [OVERHEAD_SPEC.key]  # timed once
    profiled = sorted(r["key"] for r in records if r.get("network") == str(tiny_model))
    assert profiled == sorted([*(op.key for op in Network(tiny_arch).ops), RESIDUAL_KEY])  # the network once
    summary = json.loads(resumed.stdout)
    network_kept = any("network" in json.loads(line) for line in kept)
    assert (summary["requested"], summary["measured_now"]) == (1, 0 if network_kept else 1)
