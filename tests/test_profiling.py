"""Profiling runs on the host: records, resuming, torn lines and provenance checks."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from latprof.convert import ensure_models
from latprof.devices.host import HostDevice, MeasureSettings
from latprof.errors import LatprofError
from latprof.host_methods import NETWORK_SAMPLES
from latprof.measurement import Provenance, Timing, quantile_uncertainty_us
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.profiling import CHUNK, MEASUREMENTS_FILE, OVERHEAD_SPEC, RUN_FILE, measuring_order, profile, read_run
from latprof.reference import REFERENCE_FILE
from latprof.space import get_space


def test_profile_records_every_spec(tiny_run, profiled_specs):
    run_dir, summary = tiny_run
    wanted = {OVERHEAD_SPEC.key} | {spec.key for spec in profiled_specs}
    assert 8 <= len(wanted) <= 12
    assert summary.requested == len(wanted)
    assert summary.measured_now == len(wanted) and summary.already_measured == 0
    assert summary.unsupported == {}
    run, records = read_run(run_dir)
    assert run["format"] == "latprof-run"
    assert run["requests"] and run["requests"][-1]["test"] == "tiny"
    assert [r["key"] for r in records] and {r["key"] for r in records} == wanted
    assert len(records) == len(wanted)
    for record in records:
        assert record["latency_us"] > 0 and record["median_us"] > 0 and record["runs"] >= 3
        assert record["p5_us"] <= record["median_us"] <= record["p95_us"]
        assert record["op"] == record["key"].split("|")[0]
    lines = (run_dir / MEASUREMENTS_FILE).read_text().splitlines()
    assert len(lines) == len(records) and all(json.loads(line) for line in lines)


def test_run_provenance_describes_the_device(tiny_run, host_device):
    run, _ = read_run(tiny_run[0])
    provenance = Provenance.from_dict(run["provenance"])
    assert provenance == host_device.provenance()
    assert (provenance.device, provenance.threads, provenance.delegate, provenance.dtype) == \
        ("host", 1, "xnnpack", "float32")
    assert provenance.details["rounds"] == 3 and provenance.details["warmup_runs"] == 2


def test_models_are_in_the_given_cache(tiny_run, profiled_specs, model_cache):
    assert model_cache.missing([OVERHEAD_SPEC, *profiled_specs], "float32") == []


def test_rerun_measures_nothing_new(run_copy, profiled_specs, host_device, model_cache):
    before = (run_copy / MEASUREMENTS_FILE).read_text()
    references = (run_copy / REFERENCE_FILE).read_text()
    summary = profile(profiled_specs, host_device, run_copy, model_cache, request={"again": True})
    assert summary.measured_now == 0
    assert summary.already_measured == summary.requested
    assert (run_copy / MEASUREMENTS_FILE).read_text() == before
    assert (run_copy / REFERENCE_FILE).read_text() == references  # nothing measured: the device state stands
    run, _ = read_run(run_copy)
    assert [r.get("again") for r in run["requests"]] == [None, True]


def test_rerun_measures_only_new_specs(run_copy, profiled_specs, host_device, model_cache):
    from latprof.ops import OpSpec

    new = OpSpec("ADD", ((4, 4, 16), (4, 4, 16)), (4, 4, 16))
    summary = profile([*profiled_specs, new], host_device, run_copy, model_cache)
    assert summary.measured_now == 1
    assert summary.already_measured == summary.requested - 1
    _, records = read_run(run_copy)
    assert [r["key"] for r in records].count(new.key) == 1


def _tear_last_line(run_dir):
    """What a run killed while writing its last line leaves behind: half a line, no newline."""
    path = run_dir / MEASUREMENTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    torn = json.loads(lines[-1])["key"]
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    return torn


def test_torn_last_line_is_tolerated_and_remeasured(run_copy, profiled_specs, host_device, model_cache):
    torn = _tear_last_line(run_copy)
    _, records = read_run(run_copy)
    assert torn not in {r["key"] for r in records}
    summary = profile(profiled_specs, host_device, run_copy, model_cache)
    assert summary.measured_now == 1
    assert summary.already_measured == summary.requested - 1


def test_torn_last_line_is_repaired_by_the_resume(run_copy, profiled_specs, host_device, model_cache):
    torn = _tear_last_line(run_copy)
    profile(profiled_specs, host_device, run_copy, model_cache)
    _, records = read_run(run_copy)
    assert torn in {r["key"] for r in records}
    assert profile(profiled_specs, host_device, run_copy, model_cache).measured_now == 0


def test_corrupt_line_before_the_end_is_refused(run_copy):
    path = run_copy / MEASUREMENTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0][:10] + "\n" + "".join(lines[1:]))
    with pytest.raises(LatprofError, match=r"measurements.jsonl:1: corrupt"):
        read_run(run_copy)


def test_other_provenance_is_refused(run_copy, profiled_specs, host_device, model_cache, edit_provenance):
    edit_provenance(run_copy, threads=4)
    before = (run_copy / MEASUREMENTS_FILE).read_text()
    with pytest.raises(LatprofError) as info:
        profile(profiled_specs, host_device, run_copy, model_cache)
    message = str(info.value)
    assert "provenance" in message and "threads: 4 vs 1" in message and "new folder" in message
    assert (run_copy / MEASUREMENTS_FILE).read_text() == before


def test_details_do_not_count_as_provenance(run_copy, profiled_specs, host_device, model_cache, edit_provenance):
    edit_provenance(run_copy, details={"hostname": "elsewhere"})
    assert profile(profiled_specs, host_device, run_copy, model_cache).measured_now == 0


def test_foreign_and_corrupt_folders_are_refused(tmp_path, profiled_specs, host_device, model_cache):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(LatprofError, match="not a latprof run folder"):
        profile(profiled_specs, host_device, occupied, model_cache)
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


def test_measure_models_and_ops(host_device, model_cache, tiny_run, profiled_specs):
    paths = [model_cache.path(spec, "float32") for spec in (OVERHEAD_SPEC, profiled_specs[0])]
    for timings in (host_device.measure_models(paths), host_device.measure_ops(paths)):
        assert len(timings) == 2
        for timing in timings:
            assert isinstance(timing, Timing)
            assert 0 < timing.latency_us < 1e6 and timing.runs >= 3
            assert timing.p5_us <= timing.median_us <= timing.p95_us


def test_measure_refuses_bad_files(host_device, model_cache, tiny_run, tmp_path):
    data = model_cache.path(OVERHEAD_SPEC, "float32").read_bytes()
    half = tmp_path / "half.tflite"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(LatprofError):
        host_device.measure_models([half])
    with pytest.raises(LatprofError, match="no such model file"):
        host_device.measure_models([tmp_path / "absent.tflite"])


def test_op_timing_method_is_provenance():
    """The op-timing methods time ops differently: their LUTs must not mix silently."""
    v4, v3, v5, v9 = (HostDevice(MeasureSettings(sample_eviction=e)).provenance()
                      for e in ("l2", "none", "llc", "network"))
    assert "/v9 " in v9.method and len({v9.method, v4.method, v3.method, v5.method}) == 4
    assert any(d.startswith("method") for d in v4.differences(v3))
    with pytest.raises(LatprofError, match="method"):
        v9.require_same(v4, "the LUT", "profile again")
    five_samples = HostDevice(MeasureSettings(op_burst_us=0)).provenance()
    assert any(d.startswith("method") for d in v4.differences(five_samples))
    assert v3.details["sample_eviction_bytes"] == 0
    assert 2 * 32 << 10 <= v4.details["sample_eviction_bytes"] < v5.details["sample_eviction_bytes"] \
        < v9.details["sample_eviction_bytes"]
    with pytest.raises(LatprofError, match="sample_eviction"):
        MeasureSettings(sample_eviction="l3")
    with pytest.raises(LatprofError, match="op_burst_us"):
        MeasureSettings(op_burst_us=-1)


def test_measure_settings_are_checked():
    with pytest.raises(LatprofError):
        MeasureSettings(threads=0)
    with pytest.raises(LatprofError):
        MeasureSettings(delegate="gpu")
    with pytest.raises(LatprofError, match="threads asked for"):
        HostDevice(MeasureSettings(threads=10_000))
    with pytest.raises(LatprofError, match="max_rounds"):
        MeasureSettings(rounds=10, max_rounds=5)


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
    device = HostDevice(MeasureSettings(rounds=3, max_rounds=6, min_seconds=0.0, warmup_runs=1, stable_pct=stable_pct))
    biggest = max(profiled_specs, key=lambda spec: spec.macs)
    (timing,) = device.measure_ops([model_cache.path(biggest, "float32")])
    assert timing.conditions["rounds"] == rounds and timing.runs % rounds == 0
    assert timing.conditions["uncertainty_us"] >= 0


def test_an_op_round_times_at_least_200_us_of_the_op(model_cache, tiny_run):
    """v6: an op of a microsecond or two gets a burst long enough to leave the transient after the
    cache eviction (5 samples would all fall inside it)."""
    settings = MeasureSettings(rounds=3, max_rounds=3, min_seconds=0.0, warmup_runs=1, sample_eviction="l2")
    path = model_cache.path(OVERHEAD_SPEC, "float32")
    (timing,) = HostDevice(settings).measure_ops([path])
    assert timing.latency_us < 20 and timing.runs >= 3 * 10
    assert timing.runs * timing.median_us >= 3 * 100
    (five,) = HostDevice(replace(settings, op_burst_us=0)).measure_ops([path])
    assert five.runs == 3 * 5


def test_timing_refuses_invalid_samples():
    with pytest.raises(LatprofError):
        Timing.from_rounds([], [], 0.1)
    with pytest.raises(LatprofError):
        Timing.from_rounds([1.0], [1.0, 0.0], 0.1)
    timing = Timing.from_rounds([3.0, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0], 0.0)
    assert timing.latency_us == 1.0 and timing.runs == 4


def test_v9_times_an_op_with_its_weights_in_memory(model_cache):
    """v9 times single invokes with the op's weights in memory, as a whole network's are between
    two inferences; v6 times bursts whose weights sit in the last-level cache.  MobileNetV2's
    classifier (5 MB of weights, one multiply-add each) shows the difference: 2.7x on this host."""
    classifier = OpSpec("FULLY_CONNECTED", ((1280,),), (1000,))
    ensure_models([classifier], "float32", model_cache)
    settings = MeasureSettings(rounds=3, max_rounds=3, min_seconds=0.0, warmup_runs=1, sample_eviction="network")
    path = model_cache.path(classifier, "float32")
    (v9,) = HostDevice(settings).measure_ops([path])
    (v6,) = HostDevice(replace(settings, sample_eviction="l2")).measure_ops([path])
    assert v9.runs == 3 * NETWORK_SAMPLES and v9.conditions["rounds"] == 3
    assert v9.latency_us > 1.3 * v6.latency_us


def test_ops_are_measured_in_an_order_that_spreads_each_network_over_the_chunks(tiny_run, profiled_specs):
    """Chunks are timed at different moments, so a network's ops must not share one: measured
    network by network, a chunk's state became a network's error (sd 5.3% on the host)."""
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
    run_dir, _ = tiny_run  # and the profiler measures in that order, the overhead first
    _, records = read_run(run_dir)
    assert [r["key"] for r in records] == [s.key for s in measuring_order([OVERHEAD_SPEC, *profiled_specs])]
    assert records[0]["key"] == OVERHEAD_SPEC.key
