"""The search loop for real: candidates built, converted and measured on this CPU, trained on an
image folder, rewarded, logged; killed with SIGKILL and resumed; run on a local Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace

import pytest
from conftest import latprof_executable

from latprof.errors import LatprofError
from latprof.search.reward import Reward


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """A small image-folder task (the format users pass): three classes of noisy stripe patterns,
    so that one short epoch of real training gives a real signal in seconds."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    grid = np.indices((32, 32)).sum(axis=0) % 2
    patterns = {"rows": np.indices((32, 32))[0] % 4 < 2, "columns": np.indices((32, 32))[1] % 4 < 2, "checks": grid == 1}
    for name, pattern in patterns.items():
        (root / name).mkdir()
        for i in range(40):
            image = np.clip(pattern * 160 + rng.normal(48, 40, (32, 32)), 0, 255).astype("uint8")
            Image.fromarray(np.stack([image] * 3, axis=-1)).save(root / name / f"{i}.png")
    return root


def quick(image_folder) -> list[str]:
    """One short epoch on the small folder: real training, seconds per candidate."""
    return ["--epochs", "1", "--train-resolution", "32", "--dataset", str(image_folder)]


def test_reward_presets_follow_the_paper():
    soft = Reward.preset("soft", 10.0)
    assert soft(0.8, 10.0) == pytest.approx(0.8)
    assert soft(0.8, 20.0) == pytest.approx(0.8 * 2 ** -0.07)
    assert soft(0.8, 5.0) == pytest.approx(0.8 * 0.5 ** -0.07)  # faster than needed is rewarded a little
    hard = Reward.preset("hard", 10.0)
    assert hard(0.8, 5.0) == pytest.approx(0.8) and hard(0.8, 20.0) == pytest.approx(0.4)
    assert Reward.preset("soft", 10.0, alpha=-0.1).alpha == -0.1
    with pytest.raises(LatprofError):
        Reward.preset("medium", 10.0)


def log_lines(out_dir) -> list[dict]:
    path = out_dir / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_search_killed_with_sigkill_resumes_without_losing_or_repeating(tmp_path, cli_env, image_folder):
    out_dir = tmp_path / "search"
    command = [latprof_executable(), "search", "--target-ms", "6", "--latency", "measure", "--controller", "evolution",
               "--budget", "3", "--workers", "2", *quick(image_folder), "-o", str(out_dir)]
    process = subprocess.Popen(command, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 600
    while not log_lines(out_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = log_lines(out_dir)
    assert 1 <= len(before) < 3

    done = subprocess.run([latprof_executable(), "search", "--resume", str(out_dir), "--json"], env=cli_env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    log = log_lines(out_dir)
    assert log[:len(before)] == before  # nothing lost or rewritten
    assert sorted(entry["id"] for entry in log) == [0, 1, 2]  # nothing repeated, in-flight ones finished
    for entry in log:
        assert entry["latency_source"] == "measure" and entry["latency_ms"] > 0
        assert 0 < entry["accuracy"] <= 1 and entry["reward"] == pytest.approx(
            Reward(6.0)(entry["accuracy"], entry["latency_ms"]), rel=1e-4)
    state = json.loads((out_dir / "state.json").read_text())
    assert state["told"] == [0, 1, 2] and sorted(map(int, state["asked"])) == [0, 1, 2]
    summary = json.loads(done.stdout)
    assert summary["trained"] == 3 and len(summary["top_k"]) == 3
    assert [r["name"] for r in summary["references"]] == ["mobilenetv2", "mnasnet-a1", "mnasnet-b1"]
    assert (out_dir / "pareto.png").stat().st_size > 10_000 and (out_dir / "top_k.csv").is_file()
    best = summary["best"]
    assert best["arch"] == summary["top_k"][0]["arch"] and best["measured_ms"] > 0
    assert (out_dir / "best.tflite").stat().st_size > 0


def test_search_on_a_local_ray(tmp_path, host_device, model_cache, image_folder):
    import ray

    from latprof.search.executor import RayExecutor
    from latprof.search.latency import MeasuredLatency
    from latprof.search.loop import SearchConfig, run_search
    from latprof.search.train import TrainSettings

    config = SearchConfig(target_ms=6.0, controller="random", budget=2, workers=2, latency="measure",
                          train=replace(TrainSettings(), epochs=1, resolution=32, dataset=str(image_folder)))
    executor = RayExecutor(workers=2)
    try:
        log = run_search(tmp_path / "search", config, MeasuredLatency(host_device, model_cache), executor)
    finally:
        executor.shutdown()
    assert not ray.is_initialized()
    assert len(log) == 2 and all(0 < entry["accuracy"] <= 1 for entry in log)


def test_lut_latency_profiles_ops_the_lut_lacks(tmp_path, tiny_lut_path, host_device, model_cache):
    from latprof.arch import Architecture
    from latprof.lut import LUT
    from latprof.search.latency import LutLatency

    arch = Architecture.from_string("res64_w0.5:r1_k5_s11_e1_i32_o16")  # a 5x5 the tiny LUT has not seen
    with pytest.raises(LatprofError, match="lacks"):
        LutLatency(LUT.load(tiny_lut_path)).latency_ms(arch)
    source = LutLatency(LUT.load(tiny_lut_path), host_device, model_cache, tmp_path / "extra")
    size = len(source.lut)
    latency, kind = source.latency_ms(arch)
    assert latency > 0 and kind == "lut" and len(source.lut) > size
    assert not (tmp_path / "extra" / "reference.jsonl").exists()  # topping up a LUT records no device state


def test_search_errors_are_one_line(run_cli, tmp_path):
    for args, fragment in ((["search", "-o", tmp_path / "s"], "--target-ms"),
                           (["search", "--resume", tmp_path], "not a search folder"),
                           (["search", "--target-ms", "5", "-o", tmp_path / "s2"], "--lut")):
        done = run_cli(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("latprof: error: ") and fragment in done.stderr, done.stderr


def test_export_writes_the_model_and_measures_it_next_to_the_prediction(run_cli, tmp_path, tiny_arch_text, tiny_lut_path):
    output = tmp_path / "tiny.tflite"
    done = run_cli("export", tiny_arch_text, "-o", output, "--lut", tiny_lut_path, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert output.stat().st_size > 0 and result["path"] == str(output)
    assert result["measured_ms"] > 0 and result["predicted_ms"] > 0 and result["prediction"] == "lut"
