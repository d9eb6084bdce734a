"""The phone path from a wheel, not a checkout: ``pip install .`` (not editable) into a fresh
virtual environment, then ``latprof profile --device SERIAL`` on a loopback phone.  The device
scripts are package data (``latprof.device_scripts``); the environment borrows this one's
site-packages for the heavy dependencies, so only latprof itself is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_non_editable_install_profiles_on_the_phone(tmp_path, phone, model_cache, tiny_model):
    from loopback.benchmark_model import install

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                                str(ROOT)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import latprof, importlib.resources as r; print(latprof.__file__); "
                            "print(sorted(e.name for e in r.files('latprof.device_scripts').iterdir()))"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.splitlines()
    assert str(venv) in where[0]  # the wheel's latprof, not the checkout's
    assert "measure.sh" in where[1]
    binary = install(tmp_path / "benchmark_model")
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": ""}
    profiled = subprocess.run([str(venv / "bin" / "latprof"), "profile", "--device", phone.serial, "--benchmark-binary",
                               str(binary), "--warmup-min-secs", "0", "--min-secs", "0.1", "--num-runs", "3",
                               "--models", str(tiny_model), "-o", str(run_dir), "--json"],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert profiled.returncode == 0, profiled.stderr[-2000:]
    assert json.loads(profiled.stdout)["measured_now"] > 0
