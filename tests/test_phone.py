"""The phone path end to end: latprof's phone devices -> adbutils -> a real adb server -> the loopback phone.

The phone's "benchmark_model" is the stand-in of tests/loopback/benchmark_model.py: it runs the
pushed model with LiteRT and prints the real tool's output (op-profiling tables with XNNPACK's
operators timed by LiteRT's profiler), so the device scripts, the parser, the attribution of op
times and the resume logic all run for real.  Every run writes the graph it measured to a call
log on the phone, which is how "measured exactly once" is checked.

The devices are driven through their classes (``AndroidDevice``, ``PhoneFarm``), the contract of
``latprof.devices.base``; a killed host is a separate Python process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from loopback.benchmark_model import install

from latprof.devices.android import AndroidDevice, PhoneSettings, list_phones
from latprof.devices.base import DeviceConfig
from latprof.devices.farm import PhoneFarm
from latprof.errors import LatprofError
from latprof.timing import IN_NETWORK, ISOLATED

CALL_LOG = "/data/local/tmp/benchmark_model.calls"
LOOPBACK_GPU = "Loopback, Loopback GPU (host CPU), OpenGL ES 3.2"  # its dumpsys SurfaceFlinger's GLES line
# Short runs: the stand-in's own start (Python + LiteRT import) is most of the time per model.
FAST = PhoneSettings(warmup_runs=1, warmup_min_secs=0, num_runs=3, min_secs=0, rounds=1)
ISOLATED_CONFIG, IN_NETWORK_CONFIG = DeviceConfig(method=ISOLATED), DeviceConfig(method=IN_NETWORK)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    return install(tmp_path_factory.mktemp("binary") / "benchmark_model")


@pytest.fixture(scope="module")
def op_models(tiny_arch, model_cache) -> list[Path]:
    """The single-op models of a network of seven ops (stem, one block, head)."""
    from latprof.convert import ensure_models
    from latprof.network import Network

    specs = list(dict.fromkeys(Network(tiny_arch).ops))
    assert ensure_models(specs, "float32", model_cache) == {}
    return [model_cache.path(spec, "float32") for spec in specs]


@pytest.fixture(scope="module")
def tiny_model(op_models) -> Path:
    """A small model that takes a fraction of a millisecond: the largest of the op models."""
    return max(op_models, key=lambda path: path.stat().st_size)


@pytest.fixture(scope="module")
def networks(model_cache) -> list[Path]:
    """Two real networks of the MnasNet space, made small (128x128, half width): about a millisecond."""
    from latprof.convert import ensure_architectures
    from latprof.space import get_space

    archs = [replace(arch, resolution=128, width=0.5) for arch in get_space("mnasnet").sample_many(2, 0)]
    paths = ensure_architectures(archs, "float32", model_cache)
    return [Path(paths[arch.to_string()]) for arch in archs]


@pytest.fixture(scope="module")
def network_ops(networks) -> list[list]:
    from latprof.tflite_file import decompose

    return [list(decompose(path).ops) for path in networks]


@pytest.fixture
def logged_phone(phone_factory):
    """A started phone whose benchmark_model logs every graph it runs."""
    return phone_factory(env={"BENCHMARK_MODEL_CALL_LOG": CALL_LOG}).start()


def device(phone, binary, config: DeviceConfig = ISOLATED_CONFIG, settings: PhoneSettings = FAST,
           **options) -> AndroidDevice:
    serial = phone if isinstance(phone, str) else phone.serial
    return AndroidDevice(serial, binary, config, settings, **options)


def calls(phone) -> list[str]:
    path = phone.device_path(CALL_LOG)
    return path.read_text().splitlines() if path.exists() else []


def on_phone(model: Path) -> str:
    """The path a model has on the phone (by content), as benchmark_model's --graph names it."""
    return f"/data/local/tmp/latprof/models/{hashlib.sha256(model.read_bytes()).hexdigest()}.tflite"


def jobs(phone) -> list[str]:
    """The job folders left on the phone."""
    folder = phone.device_path("/data/local/tmp/latprof/jobs")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def kill_host_after_first_call(phone, binary: Path, method: str, models: list[Path], settings: str, call: str) -> None:
    """Run a host in a process of its own that measures ``models`` on ``phone`` by ``method``
    (``AndroidDevice(...).CALL`` with ``PhoneSettings(SETTINGS)``), and SIGKILL it once the phone's
    benchmark_model has started a model: its loop on the phone goes on."""
    script = ("import sys\nfrom pathlib import Path\n"
              "from latprof.devices.android import AndroidDevice, PhoneSettings\n"
              "from latprof.devices.base import DeviceConfig\nfrom latprof.tflite_file import decompose\n"
              "serial, binary, method, *models = sys.argv[1:]\npaths = [Path(m) for m in models]\n"
              f"AndroidDevice(serial, binary, DeviceConfig(method=method), PhoneSettings({settings})).{call}\n")
    host = subprocess.Popen([sys.executable, "-c", script, phone.serial, str(binary), method, *map(str, models)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not calls(phone) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(host.pid, signal.SIGKILL)
    host.wait()


def fresh_folders(phone) -> list[Path]:
    folder = phone.device_path("/data/local/tmp/latprof/results/fresh")
    return list(folder.iterdir()) if folder.is_dir() else []


def in_thread(action):
    """Run ``action`` in a thread; returns (thread, outcome) with outcome["result"] or ["error"]."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = action()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    return worker, outcome


def test_list_phones_describes_the_loopback_phone(phone):
    (entry,) = [info.to_dict() for info in list_phones() if info.serial == phone.serial]
    cores = os.cpu_count()
    assert entry["state"] == "device" and entry["model"] == "Pixel 7" and entry["manufacturer"] == "Loopback"
    assert "x86_64" in entry["abilist"] and entry["android"] and entry["cores"] == cores
    # The fastest core is the highest-numbered one on the loopback phone (big.LITTLE layout).
    assert int(entry["big_core_mask"], 16) == 1 << (cores - 1)
    assert int(entry["max_khz"][str(cores - 1)]) > int(entry["max_khz"]["0"]) or cores == 1
    assert entry["conditions"]["thermal"] == "0"
    assert entry["gpu"] == LOOPBACK_GPU


def test_the_phone_declares_its_methods_and_refuses_other_configurations(phone, stand_in, networks, network_ops):
    assert AndroidDevice.methods == {IN_NETWORK, ISOLATED}
    assert AndroidDevice.delegates == ("xnnpack", "none", "gpu", "nnapi")
    with pytest.raises(LatprofError, match="delegate 'hexagon' is not available"):
        device(phone, stand_in, DeviceConfig(method=ISOLATED, delegate="hexagon"))
    # A GPU or NNAPI delegate runs a network as one node: no per-op times inside it.
    for delegate in ("gpu", "nnapi"):
        with pytest.raises(LatprofError, match="use --method isolated") as refused:
            device(phone, stand_in, DeviceConfig(method=IN_NETWORK, delegate=delegate))
        assert "\n" not in str(refused.value)
    with pytest.raises(LatprofError, match="profiling networks op by op is method in-network"):
        device(phone, stand_in, ISOLATED_CONFIG).profile_networks(networks, network_ops)


def test_isolated_times_each_op_model_once_with_provenance(logged_phone, stand_in, op_models):
    phone = device(logged_phone, stand_in)
    progress: list[int] = []
    timings = phone.time_isolated(op_models, progress.append)
    assert sorted(calls(logged_phone)) == sorted(on_phone(path) for path in op_models)
    assert progress[-1] == len(op_models)
    for timing in timings:
        assert timing.latency_us > 0 and timing.runs >= 3 and timing.p5_us <= timing.p95_us
        assert timing.conditions["before_thermal"] == "0" and timing.conditions["after_thermal"] == "0"
        assert timing.conditions["mask"] and timing.conditions["before_level"] == "87"
    provenance = phone.provenance()
    assert provenance.device == "Loopback Pixel 7"
    assert provenance.binary_sha256 == hashlib.sha256(stand_in.read_bytes()).hexdigest()
    assert (provenance.threads, provenance.delegate, provenance.dtype) == (1, "xnnpack", "float32")
    assert provenance.method.startswith("isolated/1 (") and "--enable_op_profiling" not in provenance.method
    assert "--num_threads=1" in provenance.method and "--use_xnnpack=true" in provenance.method
    assert provenance.details["serials"] == [logged_phone.serial]
    assert "Android" in provenance.runtime and "cores" in provenance.hardware

    # The finished job's folder is gone; its results stay and serve the next request, even of
    # another device object (a re-run).
    assert not jobs(logged_phone)
    again = device(logged_phone, stand_in).time_isolated(op_models)
    assert again == timings and len(calls(logged_phone)) == len(op_models)


def test_in_network_profiles_real_networks_op_by_op(logged_phone, stand_in, networks, network_ops):
    """Each network is profiled once and timed whole in rounds, and every op gets its time inside it.  (How
    well the ops add up to the network is a figure of the shared host's speed: bench/phone_loopback.py.)"""
    settings = PhoneSettings(warmup_runs=3, warmup_min_secs=0.2, num_runs=20, min_secs=0.5)
    phone = device(logged_phone, stand_in, IN_NETWORK_CONFIG, settings)
    progress: list[int] = []
    profiles, failed = phone.profile_networks(networks, network_ops, progress.append)
    assert failed == {} and [p.model for p in profiles] == [str(path) for path in networks]
    assert progress == sorted(progress) and progress[-1] == len(networks)
    for profile, ops in zip(profiles, network_ops):
        assert len(profile.ops) == len(ops) and all(op.latency_us >= 0 for op in profile.ops)
        convolutions = [t.latency_us for t, spec in zip(profile.ops, ops) if spec.op == "CONV_2D"]
        assert max(convolutions) > 0 and profile.latency.conditions["before_thermal"] == "0"
        assert profile.ops[0].runs >= 20 and profile.ops[0].conditions["statistic"] == "op profile avg"
        assert profile.latency.conditions["rounds"] == settings.rounds
    # One run of each network with op profiling, then one a round timed whole, as measure_models times it.
    assert Counter(calls(logged_phone)) == {on_phone(path): 1 + settings.rounds for path in networks}
    provenance = phone.provenance()
    assert provenance.method.startswith("in-network/1 (") and "--enable_op_profiling=true" in provenance.method
    assert "--num_threads=1" in provenance.method and "--use_xnnpack=true" in provenance.method

    # The op tables stay on the phone: the same request, by another device object, profiles
    # nothing again; the networks are timed whole now, as any measurement of a model is.
    assert not jobs(logged_phone)
    again, _ = device(logged_phone, stand_in, IN_NETWORK_CONFIG, settings).profile_networks(networks, network_ops)
    assert [p.ops for p in again] == [p.ops for p in profiles]
    assert len(calls(logged_phone)) == (1 + 2 * settings.rounds) * len(networks)


def test_a_delegate_without_per_operator_rows_fails_the_network_with_the_reason(phone_factory, stand_in, networks,
                                                                                  network_ops, tmp_path):
    """A benchmark_model from before XNNPACK reported its operators prints one TfLiteXNNPackDelegate
    row: the network is reported, not an exception; so is a network benchmark_model cannot load."""
    old = phone_factory(env={"BENCHMARK_MODEL_FORMAT": "old"}).start()
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(networks[0].read_bytes()[:4000])
    profiles, failed = device(old, stand_in, IN_NETWORK_CONFIG).profile_networks(
        [networks[0], truncated], [network_ops[0], network_ops[0]])
    assert profiles == [] and list(failed) == [str(networks[0]), str(truncated)]
    assert "1 TfLiteXNNPackDelegate node" in failed[str(networks[0])]
    assert "no per-operator times" in failed[str(networks[0])] and "--method isolated" in failed[str(networks[0])]
    assert "benchmark_model failed on model" in failed[str(truncated)]


def test_gpu_and_nnapi_time_single_op_models_with_provenance(logged_phone, stand_in, op_models):
    """Each op a model of its own, run whole by the delegate: --use_<delegate>=true with XNNPACK off,
    the delegate's full-delegation line checked, and what it ran on recorded."""
    backends = {"gpu": "GPU: OpenCL", "nnapi": "NNAPI: loopback-npu,nnapi-reference"}
    for delegate, backend in backends.items():
        phone = device(logged_phone, stand_in, DeviceConfig(method=ISOLATED, delegate=delegate))
        timings = phone.time_isolated(op_models[:1])
        assert all(t.latency_us > 0 and t.conditions["delegate_backend"] == backend for t in timings)
        provenance = phone.provenance()
        assert provenance.delegate == delegate and f"--use_{delegate}=true" in provenance.method
        assert "--use_xnnpack=false" in provenance.method and "runs whole" in provenance.method
        assert provenance.details["gpu"] == LOOPBACK_GPU
        # A GPU LUT is valid for the GPU it was measured on.
        assert (f"GPU {LOOPBACK_GPU}" in provenance.hardware) == (delegate == "gpu")
    assert len(calls(logged_phone)) == len(backends)


def test_a_delegate_the_phone_rejects_is_a_one_line_error(phone_factory, stand_in, op_models):
    rejecting = phone_factory(env={"BENCHMARK_MODEL_DELEGATE_FAILS": "1"}).start()
    with pytest.raises(LatprofError, match="rejected the GPU delegate") as failure:
        device(rejecting, stand_in, DeviceConfig(method=ISOLATED, delegate="gpu")).time_isolated(op_models[:1])
    assert "Failed to build program executable" in str(failure.value) and "\n" not in str(failure.value)


def test_a_delegate_that_leaves_ops_to_the_cpu_is_never_timed_as_delegated(phone_factory, stand_in, op_models,
                                                                            networks):
    """A GPU that takes all ops of a network but its convolutions runs part of it, and an op model of
    one convolution not at all: both are errors that name the ops, not a CPU time filed as the GPU's."""
    from latprof.tflite_file import decompose

    phone = phone_factory(env={"BENCHMARK_MODEL_UNSUPPORTED_OPS": "CONV_2D"}).start()
    gpu = device(phone, stand_in, DeviceConfig(method=ISOLATED, delegate="gpu"))
    with pytest.raises(LatprofError, match=r"GPU delegate runs only part of this model \(\d+ ops on the GPU, \d+ on "
                                           r"the CPU; ops it does not take: CONV_2D\)") as partial:
        gpu.measure_models(networks[:1])
    assert "--method isolated" in str(partial.value) and "\n" not in str(partial.value)
    convolution = next(path for path in op_models if decompose(path).ops[0].op == "CONV_2D")
    nnapi = device(phone, stand_in, DeviceConfig(method=ISOLATED, delegate="nnapi"))
    with pytest.raises(LatprofError, match="NNAPI delegate runs none of this model.*ops it does not take: CONV_2D"):
        nnapi.time_isolated([convolution])


def test_in_network_resumes_after_a_killed_host_without_running_anything_twice(logged_phone, stand_in, networks,
                                                                                network_ops):
    kill_host_after_first_call(logged_phone, stand_in, IN_NETWORK, networks, "warmup_runs=1, warmup_min_secs=0, num_runs=3, "
                               "min_secs=0.5", "profile_networks(paths, [list(decompose(p).ops) for p in paths])")
    assert 1 <= len(calls(logged_phone)) < 2 * len(networks) and jobs(logged_phone)  # the job stays for the re-run
    settings = PhoneSettings(warmup_runs=1, warmup_min_secs=0, num_runs=3, min_secs=0.5)
    profiles, failed = device(logged_phone, stand_in, IN_NETWORK_CONFIG, settings).profile_networks(networks,
                                                                                                   network_ops)
    # The killed job's op profiles are kept and its job resumes; then each network is timed whole once a round.
    assert failed == {} and len(profiles) == len(networks)
    assert Counter(calls(logged_phone)) == {on_phone(path): 1 + settings.rounds for path in networks}
    assert not jobs(logged_phone)


def test_a_re_run_waits_behind_a_killed_hosts_loop_while_that_loop_makes_progress(phone_factory, stand_in, op_models):
    """A killed host's loop goes on measuring, and the re-run's loop waits for the phone's lock
    behind it.  What that loop has left takes longer than one model may (5 s here, 2 s a model),
    but each result it lists is progress: the re-run waits instead of calling the phone stuck, and
    nothing runs twice."""
    slow = phone_factory(env={"BENCHMARK_MODEL_CALL_LOG": CALL_LOG, "BENCHMARK_MODEL_HANG_SECONDS": "2"}).start()
    models = op_models[:5]
    kill_host_after_first_call(slow, stand_in, ISOLATED, models, "warmup_runs=1, warmup_min_secs=0, num_runs=3, min_secs=0, "
                               "rounds=1, cool_timeout=0, max_secs=1.0, load_timeout=4", "time_isolated(paths)")
    settings = replace(FAST, cool_timeout=0, max_secs=1.0, load_timeout=4)
    assert settings.model_timeout == 5.0 and len(calls(slow)) < len(models) - 1
    timings = device(slow, stand_in, settings=settings).time_isolated(models)
    assert len(timings) == len(models) and all(t.latency_us > 0 for t in timings)
    assert sorted(calls(slow)) == sorted(on_phone(path) for path in models)


def test_a_run_survives_three_adbd_crashes(logged_phone, stand_in, op_models):
    """adbd dies three times during the run (a loose cable); the job on the phone goes on, the
    host waits for the phone and follows it to the end."""
    phone = device(logged_phone, stand_in, settings=replace(FAST, min_secs=1.0))
    worker, outcome = in_thread(lambda: phone.time_isolated(op_models))
    crashes, deadline = 0, time.monotonic() + 240
    # Crash after the 1st, 3rd and 5th model: the job runs on while adbd is down (about 1.5 s a model).
    while crashes < 3 and worker.is_alive() and time.monotonic() < deadline:
        if len(calls(logged_phone)) >= 2 * crashes + 1:
            logged_phone.kill()
            time.sleep(0.5)
            logged_phone.restart()
            crashes += 1
        time.sleep(0.05)
    worker.join(300)
    assert crashes == 3, "the run finished before three crashes; make it longer"
    assert "error" not in outcome, outcome.get("error")
    assert len(outcome["result"]) == len(op_models) and all(t.latency_us > 0 for t in outcome["result"])
    assert sorted(calls(logged_phone)) == sorted(on_phone(path) for path in op_models)


def test_an_unplugged_phone_stops_the_run_and_the_rerun_resumes(logged_phone, stand_in, op_models):
    """The phone drops off for longer than the reconnect timeout (adbd gone, cable out): the host
    stops with a message; the job on the phone goes on, and the re-run collects its results."""
    slow = replace(FAST, min_secs=0.3)
    worker, outcome = in_thread(lambda: device(logged_phone, stand_in, settings=slow, reconnect_timeout=2)
                                .time_isolated(op_models))
    deadline = time.monotonic() + 120
    while not calls(logged_phone) and time.monotonic() < deadline:
        time.sleep(0.1)
    logged_phone.kill()
    logged_phone.disconnect()
    worker.join(120)
    assert isinstance(outcome.get("error"), LatprofError), outcome
    message = str(outcome["error"])
    assert logged_phone.serial in message and "re-run the same command" in message
    assert jobs(logged_phone)  # kept: the phone goes on, and the re-run follows the same job
    logged_phone.start()
    timings = device(logged_phone, stand_in, settings=slow).time_isolated(op_models)
    assert len(timings) == len(op_models)
    assert sorted(calls(logged_phone)) == sorted(on_phone(path) for path in op_models)


def test_phone_not_connected(adb_server, stand_in):
    with pytest.raises(LatprofError, match=r"127\.0\.0\.1:9 is absent: plug it in"):
        device("127.0.0.1:9", stand_in)


def test_wrong_abi_binary_is_refused_before_models_are_pushed(phone, tiny_model, tmp_path):
    arm64 = tmp_path / "benchmark_model"
    # An ELF header for aarch64 (e_machine 183): what the official android_aarch64 build starts with.
    arm64.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + (183).to_bytes(2, "little")
                      + bytes(100))
    with pytest.raises(LatprofError, match="built for arm64 but .* runs x86_64"):
        device(phone, arm64).time_isolated([tiny_model])
    assert not phone.device_path("/data/local/tmp/latprof/models").exists()
    assert not phone.device_path("/data/local/tmp/latprof/bin").exists()


def test_binary_that_does_not_run_on_the_phone(phone, tiny_model, tmp_path):
    garbage = tmp_path / "benchmark_model"
    # Not a program: the phone refuses to start it, or its shell runs it as a script of garbage.
    garbage.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(LatprofError, match="does not run on phone"):
        device(phone, garbage).measure_models([tiny_model])
    assert not phone.device_path("/data/local/tmp/latprof/models").exists()


def test_missing_binary(phone, tmp_path):
    with pytest.raises(LatprofError, match="does not exist"):
        device(phone, tmp_path / "absent")


def test_a_full_phone_is_a_clear_error(phone_factory, stand_in, op_models):
    scripts = sum(p.stat().st_size for p in (Path(__file__).parent.parent / "device_scripts").glob("*.sh"))
    # Room for the scripts and the binary, not for the models.
    full = phone_factory(quota_bytes=scripts + stand_in.stat().st_size + 1024).start()
    with pytest.raises(LatprofError, match="storage full.*re-run the same command"):
        device(full, stand_in).time_isolated(op_models)


def test_flags_the_binary_does_not_know_are_refused(phone_factory, stand_in, tiny_model):
    """An older benchmark_model ignores flags it does not know and runs with defaults: the
    measurement would silently be another one than asked for."""
    old = phone_factory(env={"BENCHMARK_MODEL_UNKNOWN_FLAGS": "warmup_min_secs"}).start()
    with pytest.raises(LatprofError, match="warmup_min_secs"):
        device(old, stand_in).measure_models([tiny_model])
    # A fresh timing that failed leaves nothing behind: no re-run would read it.
    assert not fresh_folders(old) and not jobs(old)


@pytest.mark.parametrize("generation", ["current", "v2", "old", "old-nostats", "all-same"])
def test_measure_whole_model_on_phone_with_every_output_generation(phone_factory, stand_in, tiny_model, generation):
    phone = phone_factory(env={"BENCHMARK_MODEL_FORMAT": generation}).start()
    (timing,) = device(phone, stand_in).measure_models([tiny_model])
    assert 0 < timing.latency_us < 100_000 and timing.p5_us <= timing.p95_us


def test_hostile_model_name_runs_nothing_else(phone, stand_in, tiny_model, tmp_path):
    hostile = tmp_path / "a b;rm -rf x'.tflite"
    shutil.copy(tiny_model, hostile)
    canary = phone.device_path("/data/local/tmp/x")
    canary.write_text("still here")
    (timing,) = device(phone, stand_in).measure_models([hostile])
    assert timing.latency_us > 0 and canary.read_text() == "still here"


def test_the_loop_waits_while_the_phone_is_hot(logged_phone, stand_in, tiny_model):
    logged_phone.set_thermal(status=3, temperature_c=52.0)
    phone = device(logged_phone, stand_in, settings=replace(FAST, cool_poll=1))
    worker, outcome = in_thread(lambda: phone.measure_models([tiny_model]))
    time.sleep(3)
    assert calls(logged_phone) == [], "measured while the phone was throttling"
    logged_phone.set_thermal(status=0, temperature_c=38.0)
    worker.join(120)
    (timing,) = outcome["result"]
    assert timing.conditions["cooldown_s"] >= 2 and timing.conditions["before_thermal"] == "0"
    assert timing.latency_us > 0


def test_capped_clocks_count_as_throttling(logged_phone, stand_in, tiny_model):
    phone = device(logged_phone, stand_in, settings=replace(FAST, cool_poll=1, cool_timeout=2))
    big = int(phone.info.mask, 16).bit_length() - 1
    cap = logged_phone.device_path(f"/sys/devices/system/cpu/cpu{big}/cpufreq/scaling_max_freq")
    cap.write_text("1000000\n")
    (timing,) = phone.measure_models([tiny_model])
    # The cap never lifted: the loop waited its cool_timeout, then measured and said so.
    assert timing.conditions["cooldown_s"] >= 2 and timing.conditions["before_cap_khz"] == "1000000"


def test_a_farm_of_two_phones_shares_the_work(phone_factory, stand_in, op_models, networks, network_ops):
    env = {"BENCHMARK_MODEL_CALL_LOG": CALL_LOG}
    phones = [phone_factory(env=env).start(), phone_factory(env=env).start()]
    farm = PhoneFarm([device(phone, stand_in) for phone in phones])
    assert farm.config == ISOLATED_CONFIG
    timings = farm.time_isolated(op_models)
    first, second = calls(phones[0]), calls(phones[1])
    assert first and second and not set(first) & set(second)
    assert sorted(first + second) == sorted(on_phone(path) for path in op_models)
    assert len(timings) == len(op_models) and all(t.latency_us > 0 for t in timings)
    assert farm.time_isolated(op_models) == timings and len(calls(phones[0]) + calls(phones[1])) == len(op_models)
    assert sorted(farm.provenance().details["serials"]) == sorted(p.serial for p in phones)

    # In-network: each network timed whole and profiled on one phone.
    farm = PhoneFarm([device(phone, stand_in, IN_NETWORK_CONFIG) for phone in phones])
    profiles, failed = farm.profile_networks(networks, network_ops)
    assert failed == {} and [p.model for p in profiles] == [str(path) for path in networks]
    by_phone = [Counter(calls(phone)) - Counter(first if i == 0 else second) for i, phone in enumerate(phones)]
    assert sorted(map(dict, by_phone), key=len) == sorted([{on_phone(networks[0]): 2}, {on_phone(networks[1]): 2}],
                                                          key=len)
    assert farm.provenance().method.startswith("in-network/1 (")


def test_a_farm_refuses_phones_of_different_models(phone_factory, stand_in):
    phones = [phone_factory(model="Pixel 7").start(), phone_factory(model="Pixel 8").start()]
    with pytest.raises(LatprofError, match="Pixel 8.*same model"):
        PhoneFarm([device(phone, stand_in) for phone in phones]).provenance()
    with pytest.raises(LatprofError, match="share one configuration"):
        PhoneFarm([device(phones[0], stand_in), device(phones[1], stand_in, IN_NETWORK_CONFIG)])


def test_measure_models_times_the_model_again_each_time(logged_phone, stand_in, tiny_model):
    phone = device(logged_phone, stand_in)
    first, second = (phone.measure_models([tiny_model])[0] for _ in range(2))
    assert len(calls(logged_phone)) == 2 and first.latency_us > 0 and second.latency_us > 0
    # Each timing went to a folder of its own, removed once read.
    assert not fresh_folders(logged_phone) and not jobs(logged_phone)


def test_measure_models_times_every_model_in_rounds_each_in_another_order(logged_phone, stand_in, op_models):
    """Three rounds over four models: each model's latency is the median of its three round
    times, each divided by the phone's pace when it ran."""
    models = op_models[:4]
    timings = device(logged_phone, stand_in, settings=dataclasses.replace(FAST, rounds=3)).measure_models(models)
    graphs = calls(logged_phone)
    assert len(graphs) == 12
    orders = [graphs[i:i + 4] for i in (0, 4, 8)]
    assert all(sorted(order) == sorted(map(on_phone, models)) for order in orders)
    assert orders[0] == [on_phone(m) for m in models] and len({tuple(order) for order in orders}) > 1
    for timing in timings:
        rounds = timing.conditions["round_latencies_us"]
        assert timing.conditions["rounds"] == 3 and len(rounds) == 3
        assert 0.5 * min(rounds) <= timing.latency_us <= 2 * max(rounds)


def test_one_loop_measures_at_a_time_on_a_phone(logged_phone, stand_in, tiny_model):
    """A timing waits for a loop of other settings that still runs (say, of a killed profile):
    two benchmark_models at once would slow each other."""
    root = logged_phone.device_path("/data/local/tmp/latprof")
    lock = root / "measure.lock"
    lock.mkdir(parents=True)
    (lock / "pid").write_text(f"{os.getpid()}\n")  # a live owner
    worker, outcome = in_thread(lambda: device(logged_phone, stand_in).measure_models([tiny_model]))
    try:
        deadline = time.monotonic() + 120
        while not list(root.glob("jobs/*/runs/*/pid")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)
        assert list(root.glob("jobs/*/runs/*/pid")) and worker.is_alive() and calls(logged_phone) == []
    finally:
        shutil.rmtree(lock)
    worker.join(120)
    assert len(calls(logged_phone)) == 1 and outcome["result"][0].latency_us > 0


@pytest.mark.parametrize("owner", ["dead", "unnamed"])
def test_a_stale_phone_lock_is_taken_over(logged_phone, stand_in, tiny_model, owner):
    """A lock left by a loop that was killed (its pid no longer runs), or killed before it wrote
    its pid, does not stop the phone for good."""
    lock = logged_phone.device_path("/data/local/tmp/latprof") / "measure.lock"
    lock.mkdir(parents=True)
    if owner == "dead":
        gone = subprocess.Popen(["true"])
        gone.wait()
        (lock / "pid").write_text(f"{gone.pid}\n")
    (timing,) = device(logged_phone, stand_in).measure_models([tiny_model])
    assert timing.latency_us > 0 and len(calls(logged_phone)) == 1


def test_a_model_that_failed_once_is_measured_again_on_the_re_run(phone_factory, stand_in, op_models):
    """A result of a failed benchmark_model (the low-memory killer's exit 137) is not kept
    forever: the error says the re-run measures it again, and the re-run does, once.  Each model
    takes 2 s, so the re-run re-attaches to the first run's job while its loop is still on the
    second model: the first loop's listing of the failure must not be read as the retry's result."""
    flaky = phone_factory(env={"BENCHMARK_MODEL_KILLED_ONCE": "/data/local/tmp/killed-once",
                               "BENCHMARK_MODEL_HANG_SECONDS": "2"}).start()
    phone = device(flaky, stand_in)
    with pytest.raises(LatprofError, match=r"exit 137.*measured again once when you re-run the same command"):
        phone.time_isolated(op_models[:2])
    timings = phone.time_isolated(op_models[:2])
    assert all(t.latency_us > 0 for t in timings)
    results = flaky.device_path(phone.results_dir)
    texts = [path.read_text() for path in results.glob("*.txt")]
    assert sum("latprof-retry=1" in text for text in texts) == 1  # only the failed one ran again


def test_a_loop_stuck_on_a_model_is_a_one_line_error_after_the_longest_a_model_may_take(phone_factory, stand_in,
                                                                                         op_models):
    """A benchmark_model that hangs does not hang latprof: with no new result for longer than a
    model may take (here 1 s of runs and 2 s to load, no cool-down), the run stops and says what
    to do; a binary that is merely slow is waited for."""
    stuck = phone_factory(env={"BENCHMARK_MODEL_HANG_SECONDS": "60"}).start()
    settings = dataclasses.replace(FAST, cool_timeout=0, max_secs=1.0, load_timeout=2)
    assert settings.model_timeout == 3.0
    started = time.monotonic()
    with pytest.raises(LatprofError, match=r"no result for 3 s, longer than a model may take .*re-run the same command"):
        device(stuck, stand_in, settings=settings).time_isolated(op_models[:1])
    assert time.monotonic() - started < 30
    slow = phone_factory(env={"BENCHMARK_MODEL_HANG_SECONDS": "1"}).start()
    assert device(slow, stand_in, settings=settings).time_isolated(op_models[:1])[0].latency_us > 0
