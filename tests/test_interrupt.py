"""A profile run stopped by Ctrl-C (the whole process group, as a terminal sends it) says so in one
line, and the same command run again finishes the job with every op measured exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import latprof_executable

from latprof.network import Network
from latprof.profiling import MEASUREMENTS_FILE, OVERHEAD_SPEC
from latprof.space import get_space


def test_ctrl_c_then_resume_measures_every_op_once(tmp_path):
    env = dict(os.environ, LATPROF_CACHE=str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    command = [latprof_executable(), "profile", "--sample", "2", "--seed", "9", "-o", str(run_dir)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not (run_dir / "run.json").is_file() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(8)  # inside the conversion of about a hundred microbenchmarks
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "latprof: interrupted" in stderr and "re-run the same command" in stderr
    assert "Traceback" not in stderr

    resumed = subprocess.run(command + ["--json"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    wanted = {op.key for arch in get_space("mnasnet").sample_many(2, 9) for op in Network(arch).ops} | {OVERHEAD_SPEC.key}
    keys = [json.loads(line)["key"] for line in (run_dir / MEASUREMENTS_FILE).read_text().splitlines()]
    assert sorted(keys) == sorted(wanted)
    assert json.loads(resumed.stdout)["requested"] == len(wanted)
