"""Profiling runs on the host: the lines of each timing method, resuming, torn lines, provenance
checks, and the host's rounds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latprof.devices import DeviceConfig, HostDevice, HostSettings
from latprof.errors import LatprofError
from latprof.lut import CALIBRATED_SOURCE, IN_NETWORK_SOURCE, ISOLATED_SOURCE, build_lut
from latprof.measurement import Provenance, Timing, neighbour_pace, quantile_uncertainty_us
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.profiling import (
    CHUNK,
    ISOLATED_CONTEXT,
    MEASUREMENTS_FILE,
    OVERHEAD_SPEC,
    RESIDUAL_KEY,
    RUN_FILE,
    measuring_order,
    profile,
    read_run,
)
from latprof.reference import REFERENCE_FILE
from latprof.space import get_space
from latprof.timing import method_of

NEW_ADD = OpSpec("ADD", ((4, 4, 16), (4, 4, 16)), (4, 4, 16))


@pytest.fixture(scope="session")
def networks(tiny_arch, tiny_model):
    return {tiny_arch.to_string(): tiny_model}


def _kinds(records):
    overhead = [r for r in records if r["key"] == OVERHEAD_SPEC.key and "network" not in r and "context" not in r]
    shares = [r for r in records if "network" in r and r["key"] != RESIDUAL_KEY]
    residual = [r for r in records if r["key"] == RESIDUAL_KEY]
    alone = [r for r in records if r.get("context") == ISOLATED_CONTEXT]
    return overhead, shares, residual, alone


def test_an_in_network_run_has_a_line_per_op_of_its_network_and_one_for_its_residual(tiny_run, tiny_arch,
                                                                                    extra_specs):
    run_dir, summary = tiny_run
    run, records = read_run(run_dir)
    assert run["format"] == "latprof-run"
    assert run["requests"] and run["requests"][-1]["test"] == "tiny"
    overhead, shares, (residual,), alone = _kinds(records)
    network_ops = list(Network(tiny_arch).ops)
    assert len(overhead) == 1 and len(records) == 1 + len(shares) + 1 + len(alone)
    # the network: each op in order, then what the network took beyond their sum
    assert [r["key"] for r in shares] == [op.key for op in network_ops]
    assert {r["network"] for r in shares} == {residual["network"]} == {tiny_arch.to_string()}
    assert residual["network_us"] > 0
    assert residual["latency_us"] == pytest.approx(residual["network_us"] - sum(r["latency_us"] for r in shares),
                                                   abs=1e-3)
    for record in shares:
        assert record["latency_us"] >= 0 and record["runs"] == record["conditions"]["rounds"] >= 3
        assert record["op"] == record["key"].split("|")[0]
    # timed alone: the ops no network holds, and the network's own ops to calibrate them by
    assert {r["key"] for r in alone} == {op.key for op in network_ops} | {spec.key for spec in extra_specs}
    for record in [*overhead, *alone]:
        assert record["latency_us"] > 0 and record["runs"] >= 3
        assert record["p5_us"] <= record["median_us"] <= record["p95_us"]
    assert summary.requested == summary.measured_now == 1 + len(alone)  # the network, and the ops timed alone
    assert summary.already_measured == 0 and summary.unsupported == {} and summary.timed_alone == {}
    lines = (run_dir / MEASUREMENTS_FILE).read_text().splitlines()
    assert len(lines) == len(records) and all(json.loads(line) for line in lines)


def test_run_provenance_describes_the_device(tiny_run, host_device):
    run, _ = read_run(tiny_run[0])
    provenance = Provenance.from_dict(run["provenance"])
    assert provenance == host_device.provenance()
    assert (provenance.device, provenance.threads, provenance.delegate, provenance.dtype) == \
        ("host", 1, "xnnpack", "float32")
    assert provenance.method.startswith("in-network/1 (") and method_of(provenance.method) == "in-network"
    assert provenance.details["rounds"] == 3 and provenance.details["warmup_runs"] == 2
    assert len(provenance.details["profiler_sha256"]) == 64


def test_models_are_in_the_given_cache(tiny_run, profiled_specs, model_cache):
    assert model_cache.missing([OVERHEAD_SPEC, *profiled_specs], "float32") == []


def test_rerun_measures_nothing_new(run_copy, networks, extra_specs, host_device, model_cache):
    before = (run_copy / MEASUREMENTS_FILE).read_text()
    references = (run_copy / REFERENCE_FILE).read_text()
    summary = profile(host_device, run_copy, model_cache, networks=networks, specs=extra_specs,
                      request={"again": True})
    assert summary.measured_now == 0
    assert summary.already_measured == summary.requested == 1 + len(extra_specs)
    assert (run_copy / MEASUREMENTS_FILE).read_text() == before
    assert (run_copy / REFERENCE_FILE).read_text() == references  # nothing measured: the device state stands
    run, _ = read_run(run_copy)
    assert [r.get("again") for r in run["requests"]] == [None, True]


def test_rerun_measures_only_new_specs(run_copy, networks, extra_specs, host_device, model_cache):
    summary = profile(host_device, run_copy, model_cache, networks=networks, specs=[*extra_specs, NEW_ADD],
                      record_state=False)
    assert summary.measured_now == 1
    assert summary.already_measured == summary.requested - 1
    _, records = read_run(run_copy)
    (line,) = [r for r in records if r["key"] == NEW_ADD.key]
    assert line["context"] == ISOLATED_CONTEXT
    assert build_lut([run_copy]).table.loc[NEW_ADD.key, "source"] == CALIBRATED_SOURCE


def _tear_line(run_dir, index: int):
    """What a run killed while writing line ``index`` leaves behind: the lines before it and half
    of it, no newline."""
    path = run_dir / MEASUREMENTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    torn = json.loads(lines[index])
    path.write_text("".join(lines[:index]) + lines[index][: len(lines[index]) // 2])
    return torn


def test_torn_last_line_is_tolerated_and_remeasured(run_copy, networks, extra_specs, host_device, model_cache):
    lines = (run_copy / MEASUREMENTS_FILE).read_text().splitlines()
    torn = _tear_line(run_copy, len(lines) - 1)
    assert torn["context"] == ISOLATED_CONTEXT
    _, records = read_run(run_copy)
    assert torn["key"] not in {r["key"] for r in records if "network" not in r}
    summary = profile(host_device, run_copy, model_cache, networks=networks, specs=extra_specs, record_state=False)
    assert summary.measured_now == 1
    _, records = read_run(run_copy)
    assert [r["key"] for r in records if "network" not in r].count(torn["key"]) == 1
    assert profile(host_device, run_copy, model_cache, networks=networks, specs=extra_specs).measured_now == 0


def test_a_network_whose_lines_were_cut_short_is_profiled_again(run_copy, networks, host_device, model_cache):
    """A run killed while writing a network's lines leaves some of its ops and no residual line:
    the network is profiled again, and its LUT rows add up to the network again."""
    lines = [json.loads(line) for line in (run_copy / MEASUREMENTS_FILE).read_text().splitlines()]
    residual = next(i for i, r in enumerate(lines) if r["key"] == RESIDUAL_KEY)
    _tear_line(run_copy, residual)
    summary = profile(host_device, run_copy, model_cache, networks=networks, record_state=False)
    assert summary.measured_now == 1
    _, records = read_run(run_copy)
    assert len([r for r in records if r["key"] == RESIDUAL_KEY]) == 1
    assert {r["source"] for r in build_lut([run_copy]).table.to_dict("records")} >= {IN_NETWORK_SOURCE}
    assert profile(host_device, run_copy, model_cache, networks=networks).measured_now == 0


def test_corrupt_line_before_the_end_is_refused(run_copy):
    path = run_copy / MEASUREMENTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0][:10] + "\n" + "".join(lines[1:]))
    with pytest.raises(LatprofError, match=r"measurements.jsonl:1: corrupt"):
        read_run(run_copy)


def test_other_provenance_is_refused(run_copy, extra_specs, host_device, model_cache, edit_provenance):
    edit_provenance(run_copy, threads=4)
    before = (run_copy / MEASUREMENTS_FILE).read_text()
    with pytest.raises(LatprofError) as info:
        profile(host_device, run_copy, model_cache, specs=extra_specs)
    message = str(info.value)
    assert "provenance" in message and "threads: 4 vs 1" in message and "new folder" in message
    assert (run_copy / MEASUREMENTS_FILE).read_text() == before


def test_a_run_of_the_other_method_is_refused_in_the_same_folder(run_copy, extra_specs, isolated_device, model_cache):
    before = (run_copy / MEASUREMENTS_FILE).read_text()
    with pytest.raises(LatprofError) as info:
        profile(isolated_device, run_copy, model_cache, specs=extra_specs)
    message = str(info.value)
    assert "method: " in message and "in-network/1 (" in message and "isolated/1 (" in message
    assert "new folder" in message
    assert (run_copy / MEASUREMENTS_FILE).read_text() == before


def test_details_do_not_count_as_provenance(run_copy, networks, extra_specs, host_device, model_cache,
                                            edit_provenance):
    edit_provenance(run_copy, details={"hostname": "elsewhere"})
    assert profile(host_device, run_copy, model_cache, networks=networks, specs=extra_specs).measured_now == 0


def test_foreign_and_corrupt_folders_are_refused(tmp_path, extra_specs, host_device, model_cache):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(LatprofError, match="not a latprof run folder"):
        profile(host_device, occupied, model_cache, specs=extra_specs)
    with pytest.raises(LatprofError, match="no run.json"):
        read_run(occupied)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / RUN_FILE).write_text('{"provenance": ')
    with pytest.raises(LatprofError, match="corrupt run description"):
        read_run(broken)
    (broken / RUN_FILE).write_text('{"provenance": {"device": "host"}}')
    with pytest.raises(LatprofError, match="re-measure"):
        read_run(broken)


@pytest.fixture(scope="module")
def isolated_run(tmp_path_factory, tiny_arch, extra_specs, isolated_device, model_cache):
    """The shared run's ops, each timed alone (method isolated): no networks, no calibration."""
    specs = list(dict.fromkeys([*Network(tiny_arch).ops, *extra_specs]))
    run_dir = tmp_path_factory.mktemp("runs") / "isolated"
    return run_dir, specs, profile(isolated_device, run_dir, model_cache, specs=specs, record_state=False)


def test_an_isolated_run_times_each_op_alone(isolated_run, isolated_device, model_cache):
    run_dir, specs, summary = isolated_run
    assert summary.requested == summary.measured_now == len(specs) and summary.unsupported == {}
    run, records = read_run(run_dir)
    assert Provenance.from_dict(run["provenance"]) == isolated_device.provenance()
    assert run["provenance"]["method"].startswith("isolated/1 (")
    assert "profiler_sha256" not in run["provenance"]["details"]
    assert {r["key"] for r in records} == {OVERHEAD_SPEC.key} | {spec.key for spec in specs}
    assert len(records) == 1 + len(specs)
    assert not any("network" in r or "context" in r for r in records)
    assert all(r["latency_us"] > 0 and r["runs"] >= 3 for r in records)
    assert not (run_dir / REFERENCE_FILE).exists()  # record_state=False
    built = build_lut([run_dir])
    assert set(built.table["source"]) == {ISOLATED_SOURCE} and built.calibration == {}
    assert built.table["latency_us"].to_dict() == pytest.approx({r["key"]: r["latency_us"] for r in records})
    assert built.device_config() == DeviceConfig(method="isolated")
    assert profile(isolated_device, run_dir, model_cache, specs=specs, record_state=False).measured_now == 0


def test_an_isolated_run_takes_no_networks(isolated_run, isolated_device, tiny_arch, tiny_model, model_cache):
    run_dir, _, _ = isolated_run
    before = (run_dir / MEASUREMENTS_FILE).read_text()
    with pytest.raises(LatprofError, match="isolated timing times single-op models"):
        profile(isolated_device, run_dir, model_cache, networks={tiny_arch.to_string(): tiny_model})
    assert (run_dir / MEASUREMENTS_FILE).read_text() == before


def test_an_in_network_run_of_specs_alone_profiles_networks_to_calibrate_by(tmp_path, tiny_arch, tiny_model,
                                                                             extra_specs, host_device, model_cache,
                                                                             monkeypatch):
    """Ops no network holds (--all, --kernels) cannot be calibrated without networks: a run that
    has none profiles a sample of the space first (``calibration_networks``; here the tiny arch
    stands in for it, which keeps the test off 224x224 networks), and only once."""
    asked = []

    def calibration_networks(dtype, cache, progress):
        asked.append(dtype)
        return {tiny_arch.to_string(): tiny_model}

    monkeypatch.setattr("latprof.profiling.calibration_networks", calibration_networks)
    run_dir = tmp_path / "run"
    profile(host_device, run_dir, model_cache, specs=extra_specs, record_state=False)
    assert asked == ["float32"]
    _, records = read_run(run_dir)
    _, shares, residual, alone = _kinds(records)
    assert {r["network"] for r in shares + residual} == {tiny_arch.to_string()} and len(residual) == 1
    assert {r["key"] for r in alone} == {r["key"] for r in shares} | {spec.key for spec in extra_specs}
    built = build_lut([run_dir])
    assert set(built.table.loc[[spec.key for spec in extra_specs], "source"]) == {CALIBRATED_SOURCE}
    assert profile(host_device, run_dir, model_cache, specs=[*extra_specs, NEW_ADD], record_state=False).measured_now == 1
    assert asked == ["float32"]


@pytest.fixture(scope="module")
def unsplittable_model(tmp_path_factory):
    """A network the runtime cannot split into its ops: two Flatten layers side by side, with a
    free batch dimension, whose shape ops the interpreter runs where XNNPACK's operators are in
    the model's order (``latprof.attribution``)."""
    import keras

    from latprof.convert import convert_keras

    inputs = keras.Input((8, 8, 4))
    left = keras.layers.Flatten()(keras.layers.Conv2D(4, 1)(inputs))
    right = keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))
    path = tmp_path_factory.mktemp("models") / "two flattens.tflite"
    path.write_bytes(convert_keras(keras.Model(inputs, keras.layers.Concatenate()([left, right]))))
    return path


def test_a_network_the_runtime_cannot_split_has_its_ops_timed_alone(run_copy, unsplittable_model, host_device,
                                                                   model_cache):
    from latprof.tflite_file import decompose

    ops = decompose(unsplittable_model).ops
    summary = profile(host_device, run_copy, model_cache, networks={"flattens": unsplittable_model}, record_state=False)
    assert list(summary.timed_alone) == ["flattens"]
    assert "cannot be timed inside it" in summary.timed_alone["flattens"]
    assert "--method isolated" in summary.timed_alone["flattens"]
    # its shape arithmetic has no single-op model; its convolutions and concatenation are timed alone
    timed = {op.key for op in ops if op.op in ("CONV_2D", "CONCATENATION")}
    assert len(timed) == 3 and set(summary.unsupported) == {op.key for op in ops} - timed
    _, records = read_run(run_copy)
    assert not any(r.get("network") == "flattens" for r in records)
    assert timed <= {r["key"] for r in records if r.get("context") == ISOLATED_CONTEXT}
    assert set(build_lut([run_copy]).table.loc[sorted(timed), "source"]) == {CALIBRATED_SOURCE}


def test_time_isolated_and_measure_models(host_device, model_cache, tiny_run, profiled_specs):
    paths = [model_cache.path(spec, "float32") for spec in (OVERHEAD_SPEC, profiled_specs[0])]
    for timings in (host_device.measure_models(paths), host_device.time_isolated(paths)):
        assert len(timings) == 2
        for timing in timings:
            assert isinstance(timing, Timing)
            assert timing.latency_us > 0 and timing.runs >= 3
            assert timing.p5_us <= timing.median_us <= timing.p95_us


def test_measure_refuses_bad_files(host_device, model_cache, tiny_run, tmp_path):
    data = model_cache.path(OVERHEAD_SPEC, "float32").read_bytes()
    half = tmp_path / "half.tflite"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(LatprofError):
        host_device.measure_models([half])
    with pytest.raises(LatprofError, match="no such model file"):
        host_device.measure_models([tmp_path / "absent.tflite"])


def test_the_timing_method_is_provenance(host_device, isolated_device):
    """The two methods time ops differently: their runs and LUTs must not mix silently."""
    in_network, isolated = host_device.provenance(), isolated_device.provenance()
    assert (method_of(in_network.method), method_of(isolated.method)) == ("in-network", "isolated")
    assert [d for d in in_network.differences(isolated) if d.startswith("method")]
    assert not [d for d in in_network.differences(isolated) if not d.startswith("method")]
    with pytest.raises(LatprofError, match="method"):
        isolated.require_same(in_network, "the LUT", "profile again")


def test_device_configurations_are_checked():
    with pytest.raises(LatprofError, match="unknown timing method 'v9'"):
        DeviceConfig(method="v9")
    with pytest.raises(LatprofError, match="threads"):
        DeviceConfig(threads=0)
    with pytest.raises(LatprofError, match="dtype"):
        DeviceConfig(dtype="float16")
    for delegate in ("gpu", "nnapi"):  # phones' accelerators; the host is a CPU
        with pytest.raises(LatprofError, match=f"host .* has no {delegate.upper()} delegate: .* on a phone"):
            HostDevice(DeviceConfig(method="isolated", delegate=delegate))
    with pytest.raises(LatprofError, match="delegate 'hexagon'"):
        HostDevice(DeviceConfig(method="isolated", delegate="hexagon"))
    with pytest.raises(LatprofError, match="--method isolated"):  # in networks, the host reads XNNPACK's times
        HostDevice(DeviceConfig(delegate="none"))
    assert HostDevice(DeviceConfig(method="isolated", delegate="none")).provenance().delegate == "none"
    with pytest.raises(LatprofError, match="threads asked for"):
        HostDevice(DeviceConfig(threads=10_000))
    with pytest.raises(LatprofError, match="max_rounds"):
        HostSettings(rounds=10, max_rounds=5)


def test_quantile_uncertainty_is_half_the_interval_of_order_statistics():
    # 100 values 1..100, quartile: rank 25 +- sqrt(100 * 0.25 * 0.75) = 4.33 -> sorted[20] and sorted[30].
    assert quantile_uncertainty_us(range(100, 0, -1), 0.25) == (31 - 21) / 2
    assert quantile_uncertainty_us([5.0] * 10, 0.25) == 0.0
    # Two levels, the quartile on the step between them: as wide as the step.
    assert quantile_uncertainty_us([10.0] * 3 + [13.0] * 7, 0.25) == 1.5


@pytest.mark.parametrize("stable_pct, rounds", [(1e9, 3), (0.0, 6)])
def test_a_model_is_timed_until_its_estimate_is_stable_or_the_cap(model_cache, tiny_run, profiled_specs, monkeypatch,
                                                                   stable_pct, rounds):
    """Anything passes a huge tolerance: timing stops after ``rounds``.  With no tolerance and no
    floor only identical round values would pass, which real timings never are: the cap stops it."""
    monkeypatch.setattr("latprof.measurement.STABLE_FLOOR_US", 0.0)
    settings = HostSettings(rounds=3, max_rounds=6, min_seconds=0.0, warmup_runs=1, stable_pct=stable_pct)
    biggest = max(profiled_specs, key=lambda spec: spec.macs)
    (timing,) = HostDevice(DeviceConfig(method="isolated"), settings).time_isolated([model_cache.path(biggest, "float32")])
    assert timing.conditions["rounds"] == rounds and timing.runs % rounds == 0
    assert timing.conditions["uncertainty_us"] >= 0


def test_timing_refuses_invalid_samples():
    with pytest.raises(LatprofError):
        Timing.from_rounds([], [], 0.1)
    with pytest.raises(LatprofError):
        Timing.from_rounds([1.0], [1.0, 0.0], 0.1)
    timing = Timing.from_rounds([3.0, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0], 0.0)
    assert timing.latency_us == 1.0 and timing.runs == 4
    # an op's whole-microsecond time inside a network may be zero
    assert Timing.from_rounds([0.0, 1.0], [0.0, 1.0], 0.0, positive=False).latency_us == 0.0


def test_ops_are_measured_in_an_order_that_spreads_each_network_over_the_chunks(tiny_run):
    """Chunks of ops timed alone are timed at different moments, so a network's ops must not
    share one: measured network by network, a chunk's state became a network's error."""
    nets = [list(dict.fromkeys(Network(arch).ops)) for arch in get_space("mnasnet").sample_many(10, 3)]
    specs = list(dict.fromkeys(op for ops in nets for op in ops))
    order = measuring_order(specs)
    assert measuring_order(specs[::-1]) == order and sorted(order, key=specs.index) == specs
    chunk = {spec: position // CHUNK for position, spec in enumerate(order)}
    chunks = len(set(chunk.values()))
    assert chunks >= 4
    for ops in nets:
        counts = np.bincount([chunk[op] for op in ops], minlength=chunks)
        assert counts.min() > 0 and counts.max() <= 0.4 * len(ops), counts
    # and the run times the overhead first, the ops it times alone in that order
    _, records = read_run(tiny_run[0])
    assert records[0]["key"] == OVERHEAD_SPEC.key and "context" not in records[0]
    alone = [OpSpec.from_key(r["key"]) for r in records if r.get("context") == ISOLATED_CONTEXT]
    assert alone == measuring_order(alone)


def test_neighbour_pace_takes_a_spell_of_contention_out_of_every_model():
    """Five models interleaved in random order while the machine runs 1.5x and 1.3x slower in
    spells: each round value divided by its pace is the model's time at the call's usual speed,
    whatever spell its round fell in, where the raw values spread by the spells."""
    rng = np.random.default_rng(0)
    latencies = np.array([1.0, 2.0, 3.0, 5.0, 8.0])
    slowdown = np.repeat([1.0, 1.5, 1.0, 1.3], 60)
    order = np.concatenate([rng.permutation(5) for _ in range(48)])
    bursts = [(int(model), latencies[model] * slowdown[position] * (1 + 0.01 * rng.standard_normal()))
              for position, model in enumerate(order)]
    pace = neighbour_pace(bursts)
    models = np.array([model for model, _ in bursts])
    paced = np.array([value for _, value in bursts]) / pace
    raw = np.array([value for _, value in bursts])
    for model, latency in enumerate(latencies):
        assert np.std(raw[models == model] / latency) > 0.15
        spread = paced[models == model] / np.median(paced[models == model])
        assert np.percentile(np.abs(spread - 1), 90) < 0.05


def test_neighbour_pace_is_one_without_other_models_or_drift():
    assert neighbour_pace([(0, 5.0), (0, 7.0), (0, 6.0)]).tolist() == [1.0, 1.0, 1.0]
    steady = [(model, 1.0 + model) for _ in range(10) for model in range(4)]
    assert np.allclose(neighbour_pace(steady), 1.0)
