"""The search for real: candidates priced from a LUT, trained on an image folder, rewarded, logged;
killed with SIGKILL and resumed on the device its folder records; run on a local Ray."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import latprof_executable
from test_search_training import write_colour_folder

from latprof.arch import Architecture
from latprof.cli import main
from latprof.errors import LatprofError
from latprof.lut import COLUMNS, ISOLATED_SOURCE, LUT
from latprof.network import Network
from latprof.search.reward import Reward
from latprof.space import get_space


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """A small image folder: a MnasNet candidate's training costs its tracing, whatever the images."""
    return write_colour_folder(tmp_path_factory.mktemp("images") / "colours", per_class=20)


def quick(image_folder) -> list[str]:
    """One short epoch on the small folder: real training, seconds per candidate."""
    return ["--epochs", "1", "--train-resolution", "16", "--dataset", str(image_folder)]


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


# ---- a LUT of the whole space, without measuring it ----

OVERHEAD_US = 20.0


def _cost_us(spec) -> float:
    """A made-up latency that grows with the op's work, as a real one does."""
    elements = sum(int(np.prod(shape)) for shape in (*spec.inputs, spec.output))
    return OVERHEAD_US + 1.0 + spec.macs / 5e4 + elements / 5e3


@pytest.fixture(scope="module")
def space_lut(tmp_path_factory):
    """An isolated LUT of this host holding every op the space and the reference networks (at
    every resolution and width a search looks them up at) can have: a search priced from it never
    measures an op.  Returns its path and a latency target in the middle of the space."""
    from latprof.devices import DeviceConfig, HostDevice
    from latprof.search.latency import LutLatency
    from latprof.search.results import REFERENCE_MULTIPLIERS, REFERENCES

    space = get_space("mnasnet")
    specs = set(space.unique_ops())
    for name in REFERENCES:
        for resolution in space.resolutions:
            for multiplier in REFERENCE_MULTIPLIERS:
                specs |= set(Network(Architecture.from_string(f"{name}:res{resolution}_w{multiplier}")).ops)
    rows = [[spec.key, spec.op, *[_cost_us(spec)] * 4, 10, ISOLATED_SOURCE] for spec in sorted(specs)]
    provenance = HostDevice(DeviceConfig(method="isolated")).provenance()
    lut = LUT(provenance, pd.DataFrame(rows, columns=COLUMNS).set_index("key"), OVERHEAD_US)
    path = tmp_path_factory.mktemp("space-lut") / "space.json"
    lut.save(path)
    latencies = [LutLatency(lut).latency_ms(arch)[0] for arch in space.sample_many(20, 0)]
    return path, round(float(np.median(latencies)), 1)


# ---- killed and resumed through the console script ----

def log_lines(out_dir) -> list[dict]:
    path = out_dir / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def kill_when(command: list, env: dict, ready, stderr_path, timeout: float = 300, with_workers: bool = False) -> None:
    """Start ``command`` and SIGKILL it (the search process alone, as ``kill -9 PID`` does) as soon
    as ``ready()``; it must still run then.  Its workers (``with_workers``: it must have started
    some) must be gone 10 s later."""
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        still_running = process.poll() is None
        workers = children(process.pid)
        if still_running:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert still_running and ready(), stderr_path.read_text()[-2000:]
    assert workers or not with_workers, "the search had started no worker process"
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if alive(pid)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left must not outlive the test
    assert not left, f"workers {left} outlived the killed search by 10 s"


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by init, does not)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def invoke(*args):
    """The CLI in this process, for failures that stop before anything runs."""
    result = CliRunner().invoke(main, [str(a) for a in args], prog_name="latprof")
    return result.exit_code, result.stderr


def assert_one_line_error(code: int, stderr: str, *hints: str) -> None:
    lines = stderr.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("latprof: error: "), (code, stderr)
    for hint in hints:
        assert hint in lines[0], lines[0]


def test_search_killed_with_sigkill_resumes_on_its_device_without_losing_or_repeating(tmp_path, cli_env, image_folder,
                                                                                      space_lut):
    """The search takes its device configuration from the LUT (isolated, no option given) and
    records it; resuming rebuilds that device from the folder (the LUT's latency source takes no
    other), refuses an option that contradicts it, and refuses the LUT once its file changed."""
    from latprof.search.latency import LutLatency

    lut_path, target_ms = space_lut
    out_dir = tmp_path / "search"
    kill_when([latprof_executable(), "search", "--target-ms", str(target_ms), "--latency", "lut", "--lut", str(lut_path),
               "--controller", "evolution", "--budget", "3", "--workers", "2", *quick(image_folder), "-o", str(out_dir)],
              cli_env, lambda: log_lines(out_dir), tmp_path / "first.stderr", with_workers=True)
    before = log_lines(out_dir)
    assert 1 <= len(before) < 3
    recorded = json.loads((out_dir / "search.json").read_text())
    assert recorded["device"] == {"names": ["host"], "benchmark_binary": None,
                                  "config": {"method": "isolated", "threads": 1, "delegate": "xnnpack",
                                             "dtype": "float32"}}
    assert recorded["lut_sha256"] == LUT.load(lut_path).sha256

    assert_one_line_error(*invoke("search", "--resume", out_dir, "--method", "in-network"),
                          "this search measures with method isolated; drop --method when resuming")
    original = lut_path.read_bytes()
    lut_path.write_bytes(original + b"\n")  # the same table, another file
    try:
        assert_one_line_error(*invoke("search", "--resume", out_dir), str(lut_path),
                              "is not the LUT this search started with")
    finally:
        lut_path.write_bytes(original)
    assert log_lines(out_dir) == before  # refused before anything ran

    done = subprocess.run([latprof_executable(), "search", "--resume", str(out_dir), "--json"], env=cli_env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    log = log_lines(out_dir)
    assert log[:len(before)] == before  # nothing lost or rewritten
    assert sorted(entry["id"] for entry in log) == [0, 1, 2]  # nothing repeated, in-flight ones finished
    prices = LutLatency(LUT.load(lut_path))
    for entry in log:
        assert entry["latency_source"] == "lut"
        assert entry["latency_ms"] == pytest.approx(prices.latency_ms(Architecture.from_string(entry["arch"]))[0])
        assert 0 < entry["accuracy"] <= 1 and entry["reward"] == pytest.approx(
            Reward(target_ms)(entry["accuracy"], entry["latency_ms"]), rel=1e-4)
    state = json.loads((out_dir / "state.json").read_text())
    assert state["told"] == [0, 1, 2] and sorted(map(int, state["asked"])) == [0, 1, 2]
    summary = json.loads(done.stdout)
    assert summary["trained"] == 3 and len(summary["top_k"]) == 3
    assert [r["name"] for r in summary["references"]] == ["mobilenetv2", "mnasnet-a1", "mnasnet-b1"]
    assert all(r["latency_source"] == "lut" and 0 < r["accuracy"] <= 1 for r in summary["references"])
    assert (out_dir / "pareto.png").stat().st_size > 10_000 and (out_dir / "top_k.csv").is_file()
    best = summary["best"]
    assert best["arch"] == summary["top_k"][0]["arch"] and best["measured_ms"] > 0
    assert best["predicted_ms"] == pytest.approx(prices.latency_ms(Architecture.from_string(best["arch"]))[0])
    assert (out_dir / "best.tflite").stat().st_size > 0


def test_a_search_measuring_candidates_resumes_with_the_method_it_started_with(tmp_path, cli_env):
    """Without a LUT the options decide, and the folder keeps them: killed as soon as it started,
    the search resumes measuring with --method isolated although the command no longer says so."""
    from latprof.cli import DeviceChoice, _resumed_device
    from latprof.devices import DeviceConfig
    from latprof.search.loop import load_config

    out_dir = tmp_path / "search"
    kill_when([latprof_executable(), "search", "--target-ms", "5", "--latency", "measure", "--method", "isolated",
               "--budget", "1", "-o", str(out_dir)], cli_env, lambda: (out_dir / "search.json").is_file(),
              tmp_path / "stderr")
    config = load_config(out_dir)
    assert config.device.names == ("host",) and config.lut is None and config.lut_sha256 is None
    assert config.device.config == {"method": "isolated", "threads": 1, "delegate": "xnnpack", "dtype": "float32"}

    for option, value, recorded in (("method", "in-network", "isolated"), ("threads", "2", "1"),
                                    ("delegate", "none", "xnnpack"), ("dtype", "int8", "float32")):
        assert_one_line_error(*invoke("search", "--resume", out_dir, f"--{option}", value),
                              f"this search measures with {option} {recorded}; drop --{option} when resuming")

    def choice(**given) -> DeviceChoice:  # the device options as the command line gives them
        defaults = dict(device="host", serials=(), method=None, threads=None, delegate=None, dtype=None,
                        benchmark_binary=None, warmup_runs=10, warmup_min_secs=0.5, num_runs=50, min_secs=1.0,
                        cool_status=2, cool_timeout=600, pause=0, reconnect_timeout=120.0)
        return DeviceChoice(**{**defaults, **given})

    assert _resumed_device(config, choice(), None).config == DeviceConfig(method="isolated")
    assert _resumed_device(config, choice(method="isolated", threads=1), None).config == DeviceConfig(method="isolated")


# ---- in this process ----

TINY_SPACE = dict(name="tiny", base_widths=(8, 16), base_layers=(1, 1), strides=(1, 2), resolutions=(32,),
                  multipliers=(1.0,), stem=8, head=32, classes=10)


class MacsLatency:
    """A latency source that measures nothing: the loop's contract is all a Ray test needs."""

    name = "macs"

    def latency_ms(self, arch):
        return round(Network(arch).macs / 1e6, 4), self.name


def test_search_on_a_local_ray(tmp_path, image_folder, monkeypatch):
    """A space of two small blocks (the loop reads the space only here, the workers get
    architectures), so that a candidate trains in a second once its worker has TensorFlow."""
    import ray

    from latprof import space as spaces
    from latprof.search.executor import RayExecutor
    from latprof.search.loop import SearchConfig, run_search
    from latprof.search.train import TrainSettings

    monkeypatch.setitem(spaces.SPACES, "tiny", spaces.SearchSpace(**TINY_SPACE))
    config = SearchConfig(target_ms=1.0, controller="random", space="tiny", budget=2, workers=2, latency="macs",
                          train=replace(TrainSettings(), epochs=1, resolution=16, dataset=str(image_folder)))
    executor = RayExecutor(workers=2)
    try:
        log = run_search(tmp_path / "search", config, MacsLatency(), executor)
    finally:
        executor.shutdown()
    assert not ray.is_initialized()
    assert sorted(entry["id"] for entry in log) == [0, 1]
    for entry in log:
        arch = Architecture.from_string(entry["arch"])
        assert arch.resolution == 32 and len(arch.blocks) == 2  # a candidate of the tiny space
        assert 0 < entry["accuracy"] <= 1 and entry["params"] > 0 and entry["latency_source"] == "macs"


def test_lut_latency_profiles_ops_the_lut_lacks(tiny_lut_path, host_device, model_cache, run_copy):
    """On an in-network device, an op the LUT lacks is timed alone and mapped to its time in a
    network by the extra run's ops timed both ways.  The extra run here is a copy of the shared
    run (which has them); a fresh one first profiles networks of the space to calibrate by."""
    from latprof.lut import CALIBRATED_SOURCE
    from latprof.reference import REFERENCE_FILE
    from latprof.search.latency import LutLatency

    arch = Architecture.from_string("res64_w0.5:r1_k5_s11_e1_i32_o16")  # a 5x5 the tiny LUT has not seen
    with pytest.raises(LatprofError, match="lacks"):
        LutLatency(LUT.load(tiny_lut_path)).latency_ms(arch)
    (missing,) = [op for op in Network(arch).ops if LUT.load(tiny_lut_path).op_latency_us(op) is None]
    references = (run_copy / REFERENCE_FILE).read_text()
    source = LutLatency(LUT.load(tiny_lut_path), host_device, model_cache, run_copy)
    size = len(source.lut)
    latency, kind = source.latency_ms(arch)
    assert latency > 0 and kind == "lut" and len(source.lut) == size + 1
    assert source.lut.table.loc[missing.key, "source"] == CALIBRATED_SOURCE
    lines = [json.loads(line) for line in (run_copy / "measurements.jsonl").read_text().splitlines()]
    assert [line.get("context") for line in lines if line["key"] == missing.key] == ["isolated"]
    assert (run_copy / REFERENCE_FILE).read_text() == references  # topping up a LUT records no device state
    assert source.latency_ms(arch) == (latency, kind)  # the next candidate with the op finds it in the LUT


def test_search_errors_are_one_line(run_cli, tmp_path):
    for args, fragment in ((["search", "-o", tmp_path / "s"], "--target-ms"),
                           (["search", "--resume", tmp_path], "not a search folder"),
                           (["search", "--resume", tmp_path, "--lut", "other.json", "--budget", "5"],
                            "drop --lut, --budget"),
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


def test_controller_options_and_objective_are_checked_before_anything_runs(tmp_path):
    for args, fragment in ((["--controller", "ppo", "--objective", "pareto"], "optimises reward, not 'pareto'"),
                           (["--controller", "tpe", "--controller-option", "n_startup=3"], "one of objective, n_startup_trials"),
                           (["--controller", "evolution", "--controller-option", "population_size=many"], "not int")):
        assert_one_line_error(*invoke("search", "--target-ms", "5", "--lut", "x.json", *args, "-o", tmp_path / "s"),
                              fragment)
    assert not (tmp_path / "s").exists()
    assert_one_line_error(*invoke("search", "--resume", tmp_path, "--controller-option", "lr=0.1"),
                          "drop --controller-option")


def test_a_pareto_search_reports_its_front():
    from latprof.cli import _search_text
    from latprof.search.results import pareto_front

    table = pd.DataFrame([{"id": i, "reward": r, "accuracy": a, "latency_ms": lat, "latency_source": "lut", "arch": f"a{i}"}
                          for i, (r, a, lat) in enumerate([(0.5, 0.6, 3.0), (0.4, 0.5, 4.0), (0.45, 0.7, 5.0)])])
    front = pareto_front(table)
    assert list(front["id"]) == [0, 2]  # the slower, less accurate one is dominated
    summary = {"objective": "pareto", "trained": 3, "rejected": 0, "top_k": table.to_dict(orient="records"),
               "pareto_front": front.to_dict(orient="records"), "references": [], "pareto_plot": "p.png",
               "best": {"path": "b.tflite", "predicted_ms": 3.0, "measured_ms": 3.1, "error_pct": 3.3}}
    text = _search_text(summary, 3, "runs/s")
    assert "Pareto front of accuracy and latency (runs/s/pareto.csv):" in text
    assert "a0" in text and "a2" in text and "a1" not in text
