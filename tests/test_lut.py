"""LUTs: building from run folders, the file format, provenance checks, and prediction."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from latprof.arch import Architecture
from latprof.errors import LatprofError
from latprof.jsonl import append_jsonl
from latprof.lut import COLUMNS, FORMAT, LUT, UNCERTAINTY, build_lut
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.predict import predict, predict_ops
from latprof.profiling import OVERHEAD_SPEC, read_run
from latprof.reference import REFERENCE_FILE, REFERENCE_NETWORKS, read_references


@pytest.fixture(scope="module")
def lut(tiny_lut_path) -> LUT:
    return LUT.load(tiny_lut_path)


def test_build_lut_from_run(tiny_run):
    run_dir, _ = tiny_run
    run, records = read_run(run_dir)
    table = build_lut([run_dir])
    assert len(table) == len(records)
    assert set(table.table.index) == {r["key"] for r in records}
    by_key = {r["key"]: r for r in records}
    for key, row in table.table.iterrows():
        assert row["latency_us"] == pytest.approx(by_key[key]["latency_us"])
        assert row["op"] == by_key[key]["op"]
    assert table.overhead_us == pytest.approx(by_key[OVERHEAD_SPEC.key]["latency_us"])
    assert table.overhead_us > 0
    assert table.provenance.to_dict() == run["provenance"]
    assert table.sources == [str(run_dir)] and table.mixed == []


def test_lut_keeps_the_median_reference_latency_of_its_runs(tiny_run, run_copy):
    """The reference networks timed after each profiling call record the device's state; a LUT
    keeps, per network, the median over its runs' timings."""
    run_dir, _ = tiny_run
    recorded = read_references(run_dir)
    assert {r["target"] for r in recorded} == set(REFERENCE_NETWORKS) and all(r["latency_us"] > 0 for r in recorded)
    append_jsonl(run_copy / REFERENCE_FILE, [{"target": REFERENCE_NETWORKS[0], "latency_us": 1.0},
                                             {"target": REFERENCE_NETWORKS[0], "latency_us": 1e9}])
    once, merged = build_lut([run_dir]), build_lut([run_dir, run_copy])
    first = {r["target"]: r["latency_us"] for r in recorded}
    assert once.reference_us == pytest.approx(first, abs=1e-3)
    # four timings of the first network: its two copies and the two extremes; the median is the copies'
    assert merged.reference_us[REFERENCE_NETWORKS[0]] == pytest.approx(first[REFERENCE_NETWORKS[0]], abs=1e-3)
    # one timing per network says nothing of the spread; the extremes set it
    assert once.reference_spread_pct is None and merged.reference_spread_pct == pytest.approx(1e11 - 100, rel=1e-6)


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
    document = json.loads(path.read_text())
    assert document["format"] == FORMAT and document["version"] == 1
    assert document["columns"] == COLUMNS + [UNCERTAINTY] and len(document["rows"]) == len(built)
    assert not list(path.parent.glob("*.tmp"))
    # saving what was loaded gives the same document
    again = tmp_path / "again.json"
    loaded.save(again)
    assert json.loads(again.read_text()) == document


def test_lut_keeps_how_sure_each_host_latency_is(tiny_run, run_copy):
    """Host runs record each op's uncertainty; the LUT keeps the least sure of its runs, and a
    LUT of runs without it (a phone's, an older host's) has no such column."""
    run_dir, _ = tiny_run
    records = [json.loads(line) for line in (run_dir / "measurements.jsonl").read_text().splitlines()]
    recorded = {r["key"]: r["conditions"][UNCERTAINTY] for r in records}
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
    assert LUT.load(tmp_path / "mixed.json").mixed == mixed.mixed


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
    (lambda d: d.update(version=2), "version"),
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
