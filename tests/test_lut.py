"""LUTs: building from run folders (in-network shares, isolated times and their calibration), the
file format, provenance checks, and prediction."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latprof.arch import Architecture
from latprof.devices import DeviceConfig
from latprof.errors import LatprofError
from latprof.jsonl import append_jsonl
from latprof.lut import (
    CALIBRATED_SOURCE,
    COLUMNS,
    FORMAT,
    IN_NETWORK_SOURCE,
    ISOLATED_SOURCE,
    LUT,
    MIN_CALIBRATION_PAIRS,
    UNCERTAINTY,
    VERSION,
    build_lut,
    calibrate,
    table_from_records,
)
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.predict import predict, predict_ops
from latprof.profiling import ISOLATED_CONTEXT, OVERHEAD_SPEC, RESIDUAL_KEY, read_run
from latprof.reference import REFERENCE_FILE, REFERENCE_NETWORKS, pace_us, read_references


@pytest.fixture(scope="module")
def lut(tiny_lut_path) -> LUT:
    return LUT.load(tiny_lut_path)


def _by_kind(records):
    """The lines of an in-network run: the overhead, the networks' op shares, their residual lines
    and the ops timed alone."""
    overhead = [r for r in records if r["key"] == OVERHEAD_SPEC.key and "network" not in r]
    shares = [r for r in records if "network" in r and r["key"] != RESIDUAL_KEY]
    residual = [r for r in records if r["key"] == RESIDUAL_KEY]
    alone = [r for r in records if r.get("context") == ISOLATED_CONTEXT]
    return overhead, shares, residual, alone


def test_build_lut_from_an_in_network_run(tiny_run, tiny_arch, extra_specs):
    """The tiny network's ops keep their time inside it (with the network's residual spread over
    them); the ops no network held are their isolated time, calibrated; the ops timed both ways
    are what the calibration learns from."""
    run_dir, _ = tiny_run
    run, records = read_run(run_dir)
    built = build_lut([run_dir])
    (invoke,), shares, (residual,), alone = _by_kind(records)
    network_keys, extra_keys = {op.key for op in Network(tiny_arch).ops}, {spec.key for spec in extra_specs}
    assert set(built.table.index) == network_keys | extra_keys | {OVERHEAD_SPEC.key}
    assert RESIDUAL_KEY not in built.table.index
    assert built.overhead_us == invoke["latency_us"] > 0
    # The network's lines are put on the LUT's pace (the reference networks timed beside it).
    assert {line["pace_us"] for line in shares} == {residual["pace_us"]}
    pace = pace_us(built.reference_us) / residual["pace_us"]
    network_us, beyond_ops_us = pace * residual["network_us"], pace * residual["latency_us"]
    scale = (network_us - invoke["latency_us"]) / (network_us - beyond_ops_us)
    for line in shares:
        row = built.table.loc[line["key"]]
        assert row["source"] == IN_NETWORK_SOURCE
        assert row["latency_us"] == pytest.approx(built.overhead_us + scale * pace * line["latency_us"])
    # every op of the network was timed alone too: they are the calibration's pairs
    assert {r["key"] for r in alone} == network_keys | extra_keys
    # (an op whose time alone is within the invoke adds nothing to scale, so it is no pair)
    pairs = {r["key"] for r in alone if r["key"] in network_keys and r["latency_us"] > built.overhead_us}
    assert built.calibration["*"]["pairs"] == len(pairs) >= len(network_keys) - 2
    for line in alone:
        if line["key"] in extra_keys:
            row = built.table.loc[line["key"]]
            ratio = built.calibration.get(line["op"], built.calibration["*"])["ratio"]
            assert row["source"] == CALIBRATED_SOURCE
            assert row["latency_us"] == pytest.approx(
                built.overhead_us + ratio * max(0.0, line["latency_us"] - built.overhead_us))
    assert built.table.loc[OVERHEAD_SPEC.key, "source"] == ISOLATED_SOURCE
    assert built.provenance.to_dict() == run["provenance"]
    assert built.sources == [str(run_dir)] and built.mixed == []


def test_a_lut_of_one_network_predicts_the_network_as_profiled(tiny_run, tiny_arch_text, lut):
    """The overhead plus the ops' rows less the overhead is the network's whole time, timed in the
    same rounds as its ops, on the LUT's pace (predictions are in whole tenths of a microsecond)."""
    _, records = read_run(tiny_run[0])
    (residual,) = [r for r in records if r["key"] == RESIDUAL_KEY]
    network_us = residual["network_us"] * pace_us(lut.reference_us) / residual["pace_us"]
    assert predict(tiny_arch_text, lut).latency_ms * 1000 == pytest.approx(network_us, abs=0.06)


def _records(rows) -> pd.DataFrame:
    """Measurement lines as a run writes them, every statistic the latency."""
    return pd.DataFrame(rows).assign(median_us=lambda d: d["latency_us"], p5_us=lambda d: d["latency_us"],
                                     p95_us=lambda d: d["latency_us"], runs=1)


INVOKE = {"key": OVERHEAD_SPEC.key, "op": "ADD", "latency_us": 2.0}


def _calibration_records(conv_pairs: int) -> pd.DataFrame:
    """One network (its residual is one invoke, so its shares are not scaled) of five 1x1
    convolutions and a depthwise one, of which ``conv_pairs`` convolutions and the depthwise one
    were timed alone too, at (time in the network - invoke) / (time alone - invoke) = 2, 2, 2.5,
    4, 5 and 4; and three ops timed alone only."""
    shares = {"c1": 10.0, "c2": 20.0, "c3": 30.0, "c4": 40.0, "c5": 50.0, "d1": 8.0}
    alone = {"c1": 7.0, "c2": 12.0, "c3": 14.0, "c4": 12.0, "c5": 12.0, "d1": 4.0}
    op = {"c": "CONV_2D", "d": "DEPTHWISE_CONV_2D"}
    rows = [INVOKE]
    rows += [{"key": key, "op": op[key[0]], "latency_us": share, "network": "n"} for key, share in shares.items()]
    rows.append({"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": 2.0, "network_us": 160.0, "network": "n"})
    paired = [f"c{i}" for i in range(1, conv_pairs + 1)] + ["d1"]
    rows += [{"key": key, "op": op[key[0]], "latency_us": alone[key], "context": ISOLATED_CONTEXT} for key in paired]
    rows += [{"key": "x", "op": "CONV_2D", "latency_us": 12.0, "context": ISOLATED_CONTEXT},
             {"key": "y", "op": "DEPTHWISE_CONV_2D", "latency_us": 6.0, "context": ISOLATED_CONTEXT},
             {"key": "z", "op": "SOFTMAX", "latency_us": 1.5, "context": ISOLATED_CONTEXT}]
    return _records(rows)


def test_calibration_maps_ops_timed_alone_to_their_time_in_a_network():
    assert MIN_CALIBRATION_PAIRS == 5  # the records below have exactly that many convolutions
    table, overhead, calibration = table_from_records(_calibration_records(conv_pairs=5))
    assert overhead == 2.0
    # CONV_2D: the median of 2, 2, 2.5, 4, 5; all types: of those and the depthwise's 4
    assert calibration == {"*": {"ratio": 3.25, "pairs": 6}, "CONV_2D": {"ratio": 2.5, "pairs": 5}}
    latency, source = table["latency_us"].to_dict(), table["source"].to_dict()
    # ops timed both ways keep their time in the network (plus the invoke, the residual being one)
    assert {key: latency[key] for key in ("c1", "c5", "d1")} == {"c1": 12.0, "c5": 52.0, "d1": 10.0}
    assert {source[key] for key in ("c1", "c2", "c3", "c4", "c5", "d1")} == {IN_NETWORK_SOURCE}
    # ops timed alone only: invoke + ratio x (alone - invoke), by their type's ratio or all types'
    assert latency["x"] == 2.0 + 2.5 * 10.0 == 27.0
    assert latency["y"] == 2.0 + 3.25 * 4.0 == 15.0
    assert latency["z"] == 2.0  # faster alone than an invoke: it adds nothing
    assert table.loc["x", "p95_us"] == 27.0 and table.loc["y", "median_us"] == 15.0
    assert {source[key] for key in ("x", "y", "z")} == {CALIBRATED_SOURCE}
    assert source[OVERHEAD_SPEC.key] == ISOLATED_SOURCE and len(table) == 10


def test_a_type_with_too_few_pairs_takes_the_ratio_of_all_types():
    table, _, calibration = table_from_records(_calibration_records(conv_pairs=4))
    # 2, 2, 2.5, 4 and the depthwise's 4
    assert calibration == {"*": {"ratio": 2.5, "pairs": 5}}
    assert table.loc["x", "latency_us"] == 2.0 + 2.5 * 10.0
    assert table.loc["c5", "source"] == IN_NETWORK_SOURCE  # timed in the network, not alone: no pair


def test_calibrate_needs_ops_timed_both_ways():
    alone = pd.DataFrame({"op": ["CONV_2D", "CONV_2D"], "latency_us": [12.0, 1.0]}, index=["a", "b"])
    assert calibrate(alone, pd.Series({"c": 30.0}), 2.0) == {}
    # an op faster alone than an invoke gives no ratio
    assert calibrate(alone, pd.Series({"b": 30.0}), 2.0) == {}
    assert calibrate(alone, pd.Series({"a": 32.0, "b": 30.0}), 2.0) == {"*": {"ratio": 3.0, "pairs": 1}}
    # a run that timed ops alone but none of its networks' ops so
    records = _calibration_records(conv_pairs=5)
    only_network_ops = records[~(records["context"].eq(ISOLATED_CONTEXT) & ~records["key"].isin(["x", "y", "z"]))]
    with pytest.raises(LatprofError, match="nothing to map"):
        table_from_records(only_network_ops)


def test_a_network_is_shared_over_its_ops_in_proportion():
    """Two networks that took 2% more than their ops beyond an invoke: the rows carry that 2%,
    the overhead stays one invoke."""
    table, overhead, calibration = table_from_records(_records([
        {**INVOKE, "latency_us": 1.0},
        {"key": "a", "op": "CONV_2D", "latency_us": 100.0, "network": "small"},
        {"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": 3.0, "network_us": 103.0, "network": "small"},
        {"key": "a", "op": "CONV_2D", "latency_us": 100.0, "network": "large"},
        {"key": "b", "op": "CONV_2D", "latency_us": 9900.0, "network": "large"},
        {"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": 201.0, "network_us": 10201.0, "network": "large"},
    ]))
    assert overhead == 1.0 and calibration == {}
    assert table.loc["a", "latency_us"] == pytest.approx(1.0 + 1.02 * 100.0)
    assert table.loc["b", "latency_us"] == pytest.approx(1.0 + 1.02 * 9900.0)
    assert list(table.loc[["a", "b"], "runs"]) == [2, 1]
    assert RESIDUAL_KEY not in table.index and set(table["source"]) == {IN_NETWORK_SOURCE, ISOLATED_SOURCE}


def test_each_network_adds_up_to_its_own_whole_time():
    """Networks whose whole time exceeds their ops by different shares (one even took less than
    them) each get their own scale: a network's rows add up to its whole time, an op shared by
    two takes the median of its scaled shares, and the lines of a network cut short before its
    residual line (a killed run) are left out."""
    table, overhead, _ = table_from_records(_records([
        {**INVOKE, "latency_us": 1.0},
        {"key": "a", "op": "CONV_2D", "latency_us": 100.0, "network": "slow"},
        {"key": "b", "op": "CONV_2D", "latency_us": 100.0, "network": "slow"},
        {"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": 21.0, "network_us": 221.0, "network": "slow"},
        {"key": "c", "op": "CONV_2D", "latency_us": 1.0e6, "network": "killed"},
        {"key": "a", "op": "CONV_2D", "latency_us": 100.0, "network": "fast"},
        {"key": "d", "op": "CONV_2D", "latency_us": 300.0, "network": "fast"},
        {"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": -19.0, "network_us": 381.0, "network": "fast"},
    ]))
    shares = table["latency_us"] - overhead
    assert shares["b"] == pytest.approx(1.10 * 100.0)
    assert shares["d"] == pytest.approx(0.95 * 300.0)
    assert shares["a"] == pytest.approx((1.10 * 100.0 + 0.95 * 100.0) / 2)
    assert "c" not in table.index


def test_an_isolated_run_is_its_times():
    table, overhead, calibration = table_from_records(_records([
        INVOKE, {"key": "a", "op": "CONV_2D", "latency_us": 12.0}, {"key": "a", "op": "CONV_2D", "latency_us": 16.0}]))
    assert overhead == 2.0 and calibration == {}
    assert table["latency_us"].to_dict() == {OVERHEAD_SPEC.key: 2.0, "a": 14.0}
    assert set(table["source"]) == {ISOLATED_SOURCE}


def test_lut_keeps_the_median_reference_latency_of_its_runs(tiny_run, run_copy):
    """The reference networks, timed beside the profiled networks and after the ops timed alone,
    record the device's states; a LUT keeps, per network, the median over its runs' timings."""
    run_dir, _ = tiny_run
    recorded = read_references(run_dir)
    assert all(r["latency_us"] > 0 for r in recorded)
    timings = {target: [r["latency_us"] for r in recorded if r["target"] == target] for target in REFERENCE_NETWORKS}
    # one timing in the network's rounds, one after the ops timed alone
    assert all(len(values) == 2 for values in timings.values()) and len(recorded) == 4
    append_jsonl(run_copy / REFERENCE_FILE, [{"target": REFERENCE_NETWORKS[0], "latency_us": 1.0},
                                             {"target": REFERENCE_NETWORKS[0], "latency_us": 1e9}])
    once, merged = build_lut([run_dir]), build_lut([run_dir, run_copy])
    medians = {target: float(np.median(values)) for target, values in timings.items()}
    assert once.reference_us == pytest.approx(medians, abs=1e-3)
    # six timings of the first network: its two timings twice and the two extremes; the median is theirs
    assert merged.reference_us[REFERENCE_NETWORKS[0]] == pytest.approx(medians[REFERENCE_NETWORKS[0]], abs=1e-3)
    spread = max(100 * (max(values) / min(values) - 1) for values in timings.values())
    assert once.reference_spread_pct == pytest.approx(spread, abs=0.06)
    assert merged.reference_spread_pct == pytest.approx(1e11 - 100, rel=1e-6)


def test_save_load_round_trip(tiny_run, tmp_path):
    built = build_lut([tiny_run[0]])
    path = tmp_path / "sub" / "lut.json"
    built.save(path)
    loaded = LUT.load(path)
    pd.testing.assert_frame_equal(loaded.table.sort_index(), built.table.sort_index(), check_dtype=False)
    assert loaded.provenance == built.provenance
    assert loaded.provenance.to_dict() == built.provenance.to_dict()
    assert loaded.overhead_us == built.overhead_us
    assert loaded.sources == built.sources and loaded.mixed == built.mixed
    assert loaded.reference_us == built.reference_us and len(loaded.reference_us) == 2
    assert loaded.reference_spread_pct == built.reference_spread_pct
    assert loaded.calibration == built.calibration and set(built.calibration) >= {"*"}
    assert set(loaded.table["source"]) == {IN_NETWORK_SOURCE, CALIBRATED_SOURCE, ISOLATED_SOURCE}
    document = json.loads(path.read_text())
    assert document["format"] == FORMAT and document["version"] == VERSION == 2
    assert document["columns"] == COLUMNS + [UNCERTAINTY] and len(document["rows"]) == len(built)
    assert not list(path.parent.glob("*.tmp"))
    # saving what was loaded gives the same document
    again = tmp_path / "again.json"
    loaded.save(again)
    assert json.loads(again.read_text()) == document


def test_lut_keeps_how_sure_each_host_latency_is(tiny_run, run_copy):
    """Host runs record each op's uncertainty; the LUT keeps the least sure of the lines it keeps
    (an op's share of its network, else its time alone), and a LUT of runs without it (a
    phone's) has no such column."""
    run_dir, _ = tiny_run
    records = [json.loads(line) for line in (run_dir / "measurements.jsonl").read_text().splitlines()]
    held = {r["key"] for r in records if "network" in r}
    recorded = {r["key"]: r["conditions"][UNCERTAINTY] for r in records
                if r["key"] != RESIDUAL_KEY and ("network" in r or r["key"] not in held)}
    built = build_lut([run_dir])
    assert built.table[UNCERTAINTY].to_dict() == pytest.approx(recorded)
    summary = built.uncertainty_summary()
    assert summary["ops"] == len(built) and 0 <= summary["within"] <= summary["ops"] and summary["median_pct"] >= 0

    lines = (run_copy / "measurements.jsonl").read_text().splitlines()
    bare = [{k: v for k, v in json.loads(line).items() if k != "conditions"} for line in lines]
    (run_copy / "measurements.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bare))
    without = build_lut([run_copy])
    assert UNCERTAINTY not in without.table.columns and without.uncertainty_summary() is None
    # Merged, every op keeps the uncertainty its host run recorded.
    assert build_lut([run_dir, run_copy]).table[UNCERTAINTY].to_dict() == pytest.approx(recorded)


def test_same_run_twice_keeps_latencies(tiny_run):
    once, twice = build_lut([tiny_run[0]]), build_lut([tiny_run[0], tiny_run[0]])
    pd.testing.assert_series_equal(once.table["latency_us"], twice.table["latency_us"])
    assert (twice.table["runs"] == 2 * once.table["runs"]).all()


def test_mixed_provenance_is_refused_unless_allowed(tiny_run, run_copy, edit_provenance):
    edit_provenance(run_copy, threads=4)
    with pytest.raises(LatprofError) as info:
        build_lut([tiny_run[0], run_copy])
    message = str(info.value)
    assert "provenance" in message and "threads" in message and "--allow-mixed" in message
    mixed = build_lut([tiny_run[0], run_copy], allow_mixed=True)
    assert len(mixed.mixed) == 1 and "threads" in mixed.mixed[0] and str(run_copy) in mixed.mixed[0]
    assert mixed.provenance.threads == 1
    assert len(mixed) == len(build_lut([tiny_run[0]]))


def test_mixed_lut_round_trip_keeps_the_differences(tiny_run, run_copy, edit_provenance, tmp_path):
    edit_provenance(run_copy, dtype="int8")
    mixed = build_lut([tiny_run[0], run_copy], allow_mixed=True)
    mixed.save(tmp_path / "mixed.json")
    assert LUT.load(tmp_path / "mixed.json", allow_mixed=True).mixed == mixed.mixed
    with pytest.raises(LatprofError, match="mixes runs of different provenance.*dtype.*pass --allow-mixed"):
        LUT.load(tmp_path / "mixed.json")


def test_a_lut_gives_the_configuration_it_was_measured_in(lut, tmp_path):
    assert lut.device_config() == DeviceConfig(method="in-network", threads=1, delegate="xnnpack", dtype="float32")
    other = dataclasses.replace(lut, provenance=dataclasses.replace(
        lut.provenance, method=lut.provenance.method.replace("in-network", "isolated"), threads=2, dtype="int8"))
    assert other.device_config() == DeviceConfig(method="isolated", threads=2, dtype="int8")
    # a table no timing method of this latprof measured: imported, or timed by an older one
    for method in ("proxylessnas-yaml import", "litert-interleaved/v9 (x)", "in-network/0 (x)"):
        old = dataclasses.replace(lut, provenance=dataclasses.replace(lut.provenance, method=method))
        assert old.device_config() is None


@pytest.mark.parametrize("method", ["litert-interleaved/v9 (x)", "in-network/0 (an older version)"])
def test_build_lut_refuses_runs_of_a_method_latprof_no_longer_has(run_copy, edit_provenance, run_cli, tmp_path,
                                                                  method):
    from test_cli import assert_one_line_error

    edit_provenance(run_copy, method=method)
    with pytest.raises(LatprofError, match="does not have.*profile the device again"):
        build_lut([run_copy])
    if method.startswith("litert"):
        assert_one_line_error(run_cli("lut", "build", run_copy, "-o", tmp_path / "lut.json"), "v9", "profile")
        assert not (tmp_path / "lut.json").exists()


def test_a_lut_of_format_1_is_refused_with_one_line(tiny_lut_path, tmp_path, run_cli):
    """Format 1 held the times of the host's old methods (v6-v10): they mean something else."""
    from test_cli import assert_one_line_error

    path = _corrupt(tiny_lut_path, tmp_path, lambda d: d.update(version=1))
    with pytest.raises(LatprofError) as info:
        LUT.load(path)
    message = str(info.value)
    assert "format 1" in message and "latprof profile" in message and "\n" not in message
    assert_one_line_error(run_cli("lut", "show", path), "format 1", "profile")


def test_build_lut_refuses_empty_input(tmp_path, tiny_run):
    with pytest.raises(LatprofError, match="no run folders"):
        build_lut([])
    with pytest.raises(LatprofError, match="not a latprof run folder"):
        build_lut([tmp_path])
    empty = tmp_path / "empty_run"
    empty.mkdir()
    shutil.copy(tiny_run[0] / "run.json", empty / "run.json")
    with pytest.raises(LatprofError, match="no measurements"):
        build_lut([empty])


def test_build_lut_needs_the_overhead(run_copy):
    path = run_copy / "measurements.jsonl"
    lines = [line for line in path.read_text().splitlines() if json.loads(line)["key"] != OVERHEAD_SPEC.key]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LatprofError, match="overhead"):
        build_lut([run_copy])


def _corrupt(tiny_lut_path, tmp_path, change):
    document = json.loads(tiny_lut_path.read_text())
    change(document)
    path = tmp_path / "corrupt.json"
    path.write_text(json.dumps(document))
    return path


def _negative(document):
    document["rows"][0][COLUMNS.index("latency_us")] = -3.0


def _zero(document):
    document["rows"][-1][COLUMNS.index("latency_us")] = 0


def _null(document):
    document["rows"][0][COLUMNS.index("latency_us")] = None


def _negative_uncertainty(document):
    document["rows"][0][document["columns"].index(UNCERTAINTY)] = -1.0


@pytest.mark.parametrize("change, hint", [
    (lambda d: d.update(format="something-else"), "format"),
    (lambda d: d.pop("format"), "format"),
    (lambda d: d.update(version=3), "version"),
    (lambda d: d.update(calibration={"*": {"ratio": 1.0}}), "pairs"),
    (_negative, "positive latency"),
    (_zero, "positive latency"),
    (_null, "positive latency"),
    (_negative_uncertainty, UNCERTAINTY),
    (lambda d: d.pop("rows"), "rows"),
    (lambda d: d.pop("overhead_us"), "overhead_us"),
    (lambda d: d["provenance"].pop("threads"), "threads"),
    (lambda d: d.update(columns=["key", "op"]), "corrupt"),
    (lambda d: d.update(reference_us={"mobilenetv2": -1.0}), "reference_us"),
    (lambda d: d.update(reference_us=[1.0]), "corrupt"),
])
def test_corrupt_lut_is_refused(tiny_lut_path, tmp_path, change, hint):
    path = _corrupt(tiny_lut_path, tmp_path, change)
    with pytest.raises(LatprofError) as info:
        LUT.load(path)
    assert hint in str(info.value)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "not json at all"])
def test_unreadable_lut_is_refused(tmp_path, tiny_lut_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LatprofError, match="corrupt or foreign LUT"):
        LUT.load(path)


def test_truncated_lut_is_refused(tiny_lut_path, tmp_path):
    text = tiny_lut_path.read_text()
    path = tmp_path / "truncated.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(LatprofError, match="rebuild"):
        LUT.load(path)


def test_missing_lut_is_refused(tmp_path):
    with pytest.raises(LatprofError, match="no such LUT"):
        LUT.load(tmp_path / "absent.json")


def test_prediction_of_a_covered_architecture(tiny_arch_text, lut):
    prediction = predict(tiny_arch_text, lut)
    ops = Network(Architecture.from_string(tiny_arch_text)).ops
    expected_us = lut.overhead_us + sum(max(0.0, lut.table.at[op.key, "latency_us"] - lut.overhead_us) for op in ops)
    assert prediction.missing == []
    assert prediction.ops == len(ops) == 7
    assert prediction.latency_ms == pytest.approx(expected_us / 1000, abs=1e-4)
    assert prediction.latency_ms > 0
    assert prediction.known_ms == pytest.approx(expected_us / 1000)
    assert [row["key"] for row in prediction.breakdown] == [op.key for op in ops]
    assert all(row["latency_us"] >= 0 for row in prediction.breakdown)
    data = prediction.to_dict(breakdown=True)
    assert data["latency_ms"] == prediction.latency_ms and len(data["breakdown"]) == 7


def test_op_latency_is_net_of_the_overhead(lut):
    for key, row in lut.table.iterrows():
        assert lut.op_latency_us(OpSpec.from_key(key)) == pytest.approx(max(0.0, row["latency_us"] - lut.overhead_us))
    assert lut.op_latency_us(OVERHEAD_SPEC) == 0.0


def test_prediction_with_missing_ops(lut):
    prediction = predict("mobilenetv2", lut)
    ops = Network(Architecture.from_string("mobilenetv2")).ops
    absent = [op.key for op in ops if op.key not in lut.table.index]
    assert prediction.latency_ms is None
    assert prediction.missing == list(dict.fromkeys(absent))
    assert prediction.missing and len(prediction.missing) == len(set(prediction.missing))
    assert all(key not in lut.table.index for key in prediction.missing)
    assert prediction.ops == len(ops)
    assert prediction.to_dict()["latency_ms"] is None


def test_prediction_of_an_empty_op_list_is_the_overhead(lut):
    prediction = predict_ops("nothing", [], lut)
    assert prediction.latency_ms == pytest.approx(lut.overhead_us / 1000, abs=1e-4)


def test_prediction_from_a_tflite_file_equals_the_architecture(tiny_arch_text, lut, tmp_path):
    from latprof.builder import build_model
    from latprof.convert import convert_keras

    path = tmp_path / "tiny.tflite"
    path.write_bytes(convert_keras(build_model(Architecture.from_string(tiny_arch_text))))
    from_file, from_arch = predict(str(path), lut), predict(tiny_arch_text, lut)
    assert from_file.latency_ms is not None
    assert from_file.latency_ms == from_arch.latency_ms
    assert from_file.target == str(path)


def test_prediction_of_a_typo_is_refused(lut):
    with pytest.raises(LatprofError, match="nosip"):
        predict("r1_k3_s11_e1_i32_o16_nosip", lut)


@pytest.mark.parametrize("field, value", [("overhead_us", float("inf")), ("overhead_us", -1.0), ("overhead_us", 1e300),
                                          ("overhead_us", float("nan")), ("overhead_us", [1]), ("latency_us", float("inf")),
                                          ("latency_us", 1e300), ("latency_us", "fast"), ("latency_us", None),
                                          ("median_us", -3.0), ("reference_us", -5.0), ("reference_us", float("nan")),
                                          ("calibration", float("inf")), ("calibration", -1.0)])
def test_a_lut_with_a_nonsense_value_is_refused_at_load(tiny_lut_path, tmp_path, field, value):
    """Every value is checked for type, finiteness and range, so a LUT that loads never prints
    inf or nan ms, or crashes a command later."""
    document = json.loads(Path(tiny_lut_path).read_text())
    if field in ("latency_us", "median_us"):
        document["rows"][1][document["columns"].index(field)] = value
    elif field == "reference_us":
        document["reference_us"] = {target: value for target in document["reference_us"]}
    elif field == "calibration":
        document["calibration"] = {"*": {"ratio": value, "pairs": 5}}
    else:
        document[field] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))  # Python writes inf and nan as JSON's Infinity and NaN
    with pytest.raises(LatprofError, match=f"corrupt or foreign LUT.*{field if field != 'calibration' else 'ratio'}"):
        LUT.load(bad)
