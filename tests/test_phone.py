"""The phone path end to end: latprof -> adbutils -> a real adb server -> the loopback phone.

The phone's "benchmark_model" is the stand-in of tests/loopback/benchmark_model.py: it runs the
pushed model with LiteRT and prints the real tool's output, so the device scripts, the parser and
the resume logic all run for real.  Every run writes the graphs it measured to a call log on the
phone, which is how "measured exactly once" is checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import latprof_executable
from loopback.benchmark_model import install

from latprof.reference import REFERENCE_NETWORKS

CALL_LOG = "/data/local/tmp/benchmark_model.calls"
# A finished profile of the tiny model runs each of its 8 ops' models once, then the reference
# networks that record the phone's state.
RUN_CALLS = 8 + len(REFERENCE_NETWORKS)
# Short runs: the stand-in's own start (Python + LiteRT import) is most of the time per model.
FAST = ["--warmup-runs", "1", "--warmup-min-secs", "0", "--num-runs", "3", "--min-secs", "0"]


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    return install(tmp_path_factory.mktemp("binary") / "benchmark_model")


@pytest.fixture(scope="module")
def tiny_model(tiny_arch_text, tmp_path_factory) -> Path:
    """A converted network of seven ops: profiling its ops measures eight models (with the overhead op)."""
    from latprof.arch import Architecture
    from latprof.builder import build_model
    from latprof.convert import convert_keras

    path = tmp_path_factory.mktemp("models") / "tiny.tflite"
    path.write_bytes(convert_keras(build_model(Architecture.from_string(tiny_arch_text))))
    return path


@pytest.fixture
def logged_phone(phone_factory):
    """A started phone whose benchmark_model logs every graph it runs."""
    return phone_factory(env={"BENCHMARK_MODEL_CALL_LOG": CALL_LOG}).start()


def calls(phone) -> list[str]:
    path = phone.device_path(CALL_LOG)
    return path.read_text().splitlines() if path.exists() else []


def latprof(*args, check: bool = False, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real console script; the adb server's port comes from the environment the
    ``adb_server`` fixture exported."""
    done = subprocess.run([latprof_executable(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env or os.environ)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def jobs(phone) -> list[str]:
    """The job folders left on the phone."""
    folder = phone.device_path("/data/local/tmp/latprof/jobs")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def profile_args(serial: str, stand_in, model, run_dir, *extra) -> list:
    return ["profile", "--device", serial, "--benchmark-binary", stand_in, "--models", model, "-o", run_dir,
            *FAST, *extra]


def one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latprof: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def measured_keys(run_dir: Path) -> list[str]:
    return [json.loads(line)["key"] for line in (run_dir / "measurements.jsonl").read_text().splitlines()]


def test_devices_lists_the_host_and_the_phone(phone):
    listing = json.loads(latprof("devices", "--json", check=True).stdout)
    assert listing[0]["serial"] == "host"
    (entry,) = [d for d in listing if d["serial"] == phone.serial]
    cores = os.cpu_count()
    assert entry["state"] == "device" and entry["model"] == "Pixel 7" and entry["manufacturer"] == "Loopback"
    assert "x86_64" in entry["abilist"] and entry["android"] and entry["cores"] == cores
    # The fastest core is the highest-numbered one on the loopback phone (big.LITTLE layout).
    assert int(entry["big_core_mask"], 16) == 1 << (cores - 1)
    assert int(entry["max_khz"][str(cores - 1)]) > int(entry["max_khz"]["0"]) or cores == 1
    assert entry["conditions"]["thermal"] == "0"


def test_profile_on_a_phone_measures_each_model_once_with_provenance(logged_phone, stand_in, tiny_model, tmp_path):
    run_dir = tmp_path / "run"
    started = time.monotonic()
    summary = json.loads(latprof(*profile_args(logged_phone.serial, stand_in, tiny_model, run_dir), "--json", check=True).stdout)
    seconds = time.monotonic() - started
    assert summary["requested"] == 8 and summary["measured_now"] == 8 and summary["already_measured"] == 0
    assert len(calls(logged_phone)) == RUN_CALLS == len(set(calls(logged_phone)))
    references = [json.loads(line) for line in (run_dir / "reference.jsonl").read_text().splitlines()]
    assert len(references) == 2 and all(r["latency_us"] > 0 for r in references)
    records = [json.loads(line) for line in (run_dir / "measurements.jsonl").read_text().splitlines()]
    assert len({r["key"] for r in records}) == 8
    for record in records:
        assert record["latency_us"] > 0 and record["runs"] >= 3
        assert record["conditions"]["before_thermal"] == "0" and record["conditions"]["after_thermal"] == "0"
        assert record["conditions"]["mask"] and record["conditions"]["before_level"] == "87"
    provenance = json.loads((run_dir / "run.json").read_text())["provenance"]
    assert provenance["device"] == "Loopback Pixel 7"
    assert provenance["binary_sha256"] == hashlib.sha256(stand_in.read_bytes()).hexdigest()
    assert provenance["threads"] == 1 and provenance["delegate"] == "xnnpack" and provenance["dtype"] == "float32"
    assert "--num_threads=1" in provenance["method"] and "--use_xnnpack=true" in provenance["method"]
    assert provenance["details"]["serials"] == [logged_phone.serial]
    assert "Android" in provenance["runtime"] and "cores" in provenance["hardware"]

    # The finished jobs' folders are gone; their results stay and serve the re-run.
    assert not jobs(logged_phone)
    again = json.loads(latprof(*profile_args(logged_phone.serial, stand_in, tiny_model, run_dir), "--json", check=True).stdout)
    assert again["measured_now"] == 0 and again["already_measured"] == 8 and len(calls(logged_phone)) == RUN_CALLS

    lut = tmp_path / "phone_lut.json"
    latprof("lut", "build", run_dir, "-o", lut, check=True)
    (prediction,) = json.loads(latprof("predict", tiny_model, "--lut", lut, "--json", check=True).stdout)
    assert prediction["latency_ms"] > 0 and not prediction["missing"]
    print(f"\nloopback phone: 8 models in {seconds:.1f} s ({seconds / 8:.2f} s per model)")


def test_profile_survives_three_adbd_crashes(logged_phone, stand_in, tiny_model, tmp_path):
    """adbd dies three times during the run (a loose cable); the job on the phone goes on, the
    host waits for the phone and follows it to the end."""
    run_dir = tmp_path / "run"
    command = [latprof_executable(), *map(str, profile_args(logged_phone.serial, stand_in, tiny_model, run_dir)),
               "--min-secs", "1.0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    crashes, deadline = 0, time.monotonic() + 240
    # Crash after the 1st, 3rd and 5th model: the job runs on while adbd is down (about 1.5 s a model).
    while crashes < 3 and process.poll() is None and time.monotonic() < deadline:
        if len(calls(logged_phone)) >= 2 * crashes + 1:
            logged_phone.kill()
            time.sleep(0.5)
            logged_phone.restart()
            crashes += 1
        time.sleep(0.05)
    out, err = process.communicate(timeout=300)
    assert crashes == 3, "the run finished before three crashes; make it longer"
    assert process.returncode == 0, err
    assert sorted(measured_keys(run_dir)) == sorted(set(measured_keys(run_dir))) and len(measured_keys(run_dir)) == 8
    assert len(calls(logged_phone)) == RUN_CALLS == len(set(calls(logged_phone)))


def test_a_killed_host_resumes_without_measuring_twice(logged_phone, stand_in, tiny_model, tmp_path):
    run_dir = tmp_path / "run"
    args = profile_args(logged_phone.serial, stand_in, tiny_model, run_dir, "--min-secs", "0.3")
    process = subprocess.Popen([latprof_executable(), *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(calls(logged_phone)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= len(calls(logged_phone)) < 8 and jobs(logged_phone)  # the job stays for the re-run
    latprof(*args, check=True)
    assert len(measured_keys(run_dir)) == 8 == len(set(measured_keys(run_dir)))
    assert len(calls(logged_phone)) == RUN_CALLS == len(set(calls(logged_phone)))
    assert not jobs(logged_phone)


def test_an_unplugged_phone_stops_the_run_and_the_rerun_resumes(logged_phone, stand_in, tiny_model, tmp_path):
    """The phone drops off for longer than --reconnect-timeout (adbd gone, cable out): the host
    stops with a message; the job on the phone goes on, and the re-run collects its results."""
    run_dir = tmp_path / "run"
    args = profile_args(logged_phone.serial, stand_in, tiny_model, run_dir, "--min-secs", "0.3")
    command = [latprof_executable(), *map(str, args), "--reconnect-timeout", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not calls(logged_phone) and time.monotonic() < deadline:
        time.sleep(0.1)
    logged_phone.kill()
    logged_phone.disconnect()
    out, err = process.communicate(timeout=120)
    one_line_error(subprocess.CompletedProcess(command, process.returncode, out, err),
                   logged_phone.serial, "re-run the same command")
    assert jobs(logged_phone)  # kept: the phone goes on, and the re-run follows the same job
    logged_phone.start()
    latprof(*args, check=True)
    assert len(measured_keys(run_dir)) == 8 == len(set(measured_keys(run_dir)))
    assert len(calls(logged_phone)) == RUN_CALLS == len(set(calls(logged_phone)))


def test_phone_not_connected(adb_server, stand_in, tiny_model, tmp_path):
    done = latprof(*profile_args("127.0.0.1:9", stand_in, tiny_model, tmp_path / "run"))
    one_line_error(done, "127.0.0.1:9", "is absent", "plug it in")
    assert not (tmp_path / "run").exists()


def test_wrong_abi_binary_is_refused_before_models_are_pushed(phone, tiny_model, tmp_path):
    arm64 = tmp_path / "benchmark_model"
    # An ELF header for aarch64 (e_machine 183): what the official android_aarch64 build starts with.
    arm64.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + (183).to_bytes(2, "little")
                      + bytes(100))
    done = latprof(*profile_args(phone.serial, arm64, tiny_model, tmp_path / "run"))
    one_line_error(done, "arm64-v8a", "x86_64")
    assert not phone.device_path("/data/local/tmp/latprof/models").exists()
    assert not phone.device_path("/data/local/tmp/latprof/bin").exists()


def test_binary_that_does_not_run_on_the_phone(phone, tiny_model, tmp_path):
    garbage = tmp_path / "benchmark_model"
    garbage.write_bytes(os.urandom(4096))
    one_line_error(latprof(*profile_args(phone.serial, garbage, tiny_model, tmp_path / "run")), "does not run on phone")
    assert not phone.device_path("/data/local/tmp/latprof/models").exists()


def test_missing_binary(phone, tiny_model, tmp_path):
    done = latprof(*profile_args(phone.serial, tmp_path / "absent", tiny_model, tmp_path / "run"))
    one_line_error(done, "does not exist")


def test_a_full_phone_is_a_clear_error(phone_factory, stand_in, tiny_model, tmp_path):
    scripts = sum(p.stat().st_size for p in (Path(__file__).parent.parent / "device_scripts").glob("*.sh"))
    # Room for the scripts and the binary, not for the models.
    full = phone_factory(quota_bytes=scripts + stand_in.stat().st_size + 1024).start()
    done = latprof(*profile_args(full.serial, stand_in, tiny_model, tmp_path / "run"))
    one_line_error(done, "storage full", "re-run the same command")
    measurements = tmp_path / "run" / "measurements.jsonl"
    assert not measurements.exists() or measurements.read_text() == ""


def test_flags_the_binary_does_not_know_are_refused(phone_factory, stand_in, tiny_model, tmp_path):
    """An older benchmark_model ignores flags it does not know and runs with defaults: the
    measurement would silently be another one than asked for."""
    old = phone_factory(env={"BENCHMARK_MODEL_UNKNOWN_FLAGS": "warmup_min_secs"}).start()
    done = latprof("measure", "--device", old.serial, "--benchmark-binary", stand_in, tiny_model, *FAST)
    one_line_error(done, "warmup_min_secs")
    # A fresh timing that failed leaves nothing behind: no re-run would read it.
    fresh = old.device_path("/data/local/tmp/latprof/results/fresh")
    assert fresh.is_dir() and not any(fresh.iterdir()) and not jobs(old)


@pytest.mark.parametrize("generation", ["current", "v2", "old", "old-nostats", "all-same"])
def test_measure_whole_model_on_phone_with_every_output_generation(phone_factory, stand_in, tiny_model, generation):
    phone = phone_factory(env={"BENCHMARK_MODEL_FORMAT": generation}).start()
    result = json.loads(latprof("measure", "--device", phone.serial, "--benchmark-binary", stand_in, tiny_model,
                                *FAST, "--json", check=True).stdout)
    (row,) = result["models"]
    assert 0 < row["latency_ms"] < 100 and row["p5_ms"] <= row["p95_ms"]
    assert result["provenance"]["device"] == "Loopback Pixel 7"


def test_hostile_model_name_runs_nothing_else(phone, stand_in, tiny_model, tmp_path):
    hostile = tmp_path / "a b;rm -rf x'.tflite"
    shutil.copy(tiny_model, hostile)
    canary = phone.device_path("/data/local/tmp/x")
    canary.write_text("still here")
    result = json.loads(latprof("measure", "--device", phone.serial, "--benchmark-binary", stand_in, hostile,
                                *FAST, "--json", check=True).stdout)
    assert result["models"][0]["model"] == str(hostile) and result["models"][0]["latency_ms"] > 0
    assert canary.read_text() == "still here"


def test_the_loop_waits_while_the_phone_is_hot(logged_phone, stand_in, tiny_model):
    from latprof.devices.android import AndroidDevice, PhoneSettings

    logged_phone.set_thermal(status=3, temperature_c=52.0)
    settings = PhoneSettings(warmup_runs=1, warmup_min_secs=0, num_runs=3, min_secs=0, cool_poll=1)
    device = AndroidDevice(logged_phone.serial, stand_in, settings=settings)
    result = {}
    worker = threading.Thread(target=lambda: result.update(timings=device.measure_models([tiny_model])))
    worker.start()
    time.sleep(3)
    assert calls(logged_phone) == [], "measured while the phone was throttling"
    logged_phone.set_thermal(status=0, temperature_c=38.0)
    worker.join(120)
    (timing,) = result["timings"]
    assert timing.conditions["cooldown_s"] >= 2 and timing.conditions["before_thermal"] == "0"
    assert timing.latency_us > 0


def test_capped_clocks_count_as_throttling(logged_phone, stand_in, tiny_model):
    from latprof.devices.android import AndroidDevice, PhoneSettings

    settings = PhoneSettings(warmup_runs=1, warmup_min_secs=0, num_runs=3, min_secs=0, cool_poll=1, cool_timeout=2)
    device = AndroidDevice(logged_phone.serial, stand_in, settings=settings)
    big = int(device.info.mask, 16).bit_length() - 1
    cap = logged_phone.device_path(f"/sys/devices/system/cpu/cpu{big}/cpufreq/scaling_max_freq")
    cap.write_text("1000000\n")
    (timing,) = device.measure_models([tiny_model])
    # The cap never lifted: the loop waited its cool_timeout, then measured and said so.
    assert timing.conditions["cooldown_s"] >= 2 and timing.conditions["before_cap_khz"] == "1000000"


def test_a_farm_of_two_phones_shares_the_work(phone_factory, stand_in, tiny_model, tmp_path):
    env = {"BENCHMARK_MODEL_CALL_LOG": CALL_LOG}
    phones = [phone_factory(env=env).start(), phone_factory(env=env).start()]
    run_dir = tmp_path / "run"
    latprof("profile", "--serial", phones[0].serial, "--serial", phones[1].serial, "--benchmark-binary", stand_in,
            "--models", tiny_model, "-o", run_dir, *FAST, check=True)
    first, second = calls(phones[0]), calls(phones[1])
    assert first and second and not set(first) & set(second) and len(first) + len(second) == RUN_CALLS
    assert len(measured_keys(run_dir)) == 8
    provenance = json.loads((run_dir / "run.json").read_text())["provenance"]
    assert sorted(provenance["details"]["serials"]) == sorted(p.serial for p in phones)


def test_a_farm_refuses_phones_of_different_models(phone_factory, stand_in, tiny_model, tmp_path):
    phones = [phone_factory(model="Pixel 7").start(), phone_factory(model="Pixel 8").start()]
    done = latprof("profile", "--serial", phones[0].serial, "--serial", phones[1].serial, "--benchmark-binary",
                   stand_in, "--models", tiny_model, "-o", tmp_path / "run", *FAST)
    one_line_error(done, "Pixel 8", "same model")


def test_check_times_mobilenetv2_on_the_phone_once_per_timing(logged_phone, stand_in):
    data = json.loads(latprof("check", "--device", logged_phone.serial, "--benchmark-binary", stand_in, *FAST,
                              "--seconds", "1", "--json", check=True).stdout)
    assert data["timings"] >= 3 and data["provenance"]["device"] == "Loopback Pixel 7"
    runs = calls(logged_phone)
    assert len(runs) == data["timings"] and len(set(runs)) == 1
    # Each timing went to a folder of its own, removed once read.
    fresh = logged_phone.device_path("/data/local/tmp/latprof/results/fresh")
    assert fresh.is_dir() and not any(fresh.iterdir()) and not jobs(logged_phone)


def test_measure_on_a_phone_times_the_model_again_each_time(logged_phone, stand_in, tiny_model):
    args = ("measure", "--device", logged_phone.serial, "--benchmark-binary", stand_in, tiny_model, *FAST, "--json")
    first, second = (json.loads(latprof(*args, check=True).stdout)["models"][0] for _ in range(2))
    assert len(calls(logged_phone)) == 2 and first["latency_ms"] > 0 and second["latency_ms"] > 0


def test_one_loop_measures_at_a_time_on_a_phone(logged_phone, stand_in, tiny_model):
    """A fresh timing waits for a loop of other settings that still runs (say, of a killed
    profile): two benchmark_models at once would slow each other."""
    root = logged_phone.device_path("/data/local/tmp/latprof")
    lock = root / "measure.lock"
    lock.mkdir(parents=True)
    (lock / "pid").write_text(f"{os.getpid()}\n")  # a live owner
    process = subprocess.Popen([latprof_executable(), "measure", "--device", logged_phone.serial,
                                "--benchmark-binary", stand_in, tiny_model, *FAST, "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(root.glob("jobs/*/pid")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)
        assert list(root.glob("jobs/*/pid")) and process.poll() is None and calls(logged_phone) == []
    finally:
        shutil.rmtree(lock)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert len(calls(logged_phone)) == 1 and json.loads(out)["models"][0]["latency_ms"] > 0
