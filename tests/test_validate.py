"""End-to-end validation on the host, kept to one tiny network: outputs, the device's drift from
its LUT (reference networks timed with the models; ops re-timed for an isolated LUT), bounded
re-measuring, resume, provenance checks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from latprof.arch import Architecture
from latprof.errors import LatprofError
from latprof.lut import LUT, build_lut
from latprof.network import Network
from latprof.profiling import OVERHEAD_SPEC, profile
from latprof.reference import REFERENCE_NETWORKS, pace_us, reference_models
from latprof.validate import (
    DEVICE_FILE,
    DISCARDED_FILE,
    DRIFT_WARNING_PCT,
    MAX_ATTEMPTS,
    MEASURED_FILE,
    metrics,
    reuse_measurements,
    validate,
)


@pytest.fixture(scope="module")
def lut(tiny_lut_path) -> LUT:
    return LUT.load(tiny_lut_path)


@pytest.fixture(scope="module")
def isolated_lut(tmp_path_factory, tiny_arch, isolated_device, model_cache) -> LUT:
    """The tiny arch's ops timed alone (method isolated), with no reference networks."""
    run_dir = tmp_path_factory.mktemp("runs") / "isolated"
    profile(isolated_device, run_dir, model_cache, specs=list(Network(tiny_arch).ops), record_state=False)
    return build_lut([run_dir])


@pytest.fixture(scope="module")
def archs(tiny_arch_text):
    return [Architecture.from_string(tiny_arch_text), Architecture.from_string("mobilenetv2")]


@pytest.fixture
def validated(tmp_path, archs, lut, host_device, model_cache):
    out = tmp_path / "validate"
    return out, validate(archs, lut, host_device, out, model_cache, settle_seconds=0)


def test_validate_measures_complete_architectures(validated, archs, lut):
    out, result = validated
    assert list(result.table["target"]) == [archs[0].to_string()]
    row = result.table.iloc[0]
    assert row["measured_ms"] > 0 and row["predicted_ms"] > 0
    assert row["error_pct"] == pytest.approx(100 * (row["predicted_now_ms"] - row["measured_ms"]) / row["measured_ms"],
                                             abs=0.01)
    assert row["unpaced_error_pct"] == pytest.approx(
        100 * (row["predicted_ms"] - row["measured_ms"]) / row["measured_ms"], abs=0.01)
    # The prediction is put on the pace the references ran at in the models' rounds.
    measured = [json.loads(line) for line in (out / "measured.jsonl").read_text().splitlines()]
    drift = measured[0]["pace_us"] / pace_us(lut.reference_us)
    assert row["predicted_now_ms"] == pytest.approx(row["predicted_ms"] * drift, rel=1e-3)
    assert 100 * (drift - 1) == pytest.approx(result.metrics["reference_drift_pct"], abs=0.06)
    assert result.metrics["unpaced"]["models"] == 1
    assert result.incomplete == [archs[1].to_string()]
    assert result.metrics["models"] == 1
    assert (out / "validation.csv").is_file() and (out / "predicted_vs_measured.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["incomplete"] == result.incomplete


def test_an_in_network_lut_is_checked_by_its_reference_networks_alone(validated, lut):
    """Its rows are ops timed inside networks (or calibrated): there is no single-op model whose
    time the LUT holds to re-time."""
    _, result = validated
    assert set(lut.table.loc[lut.table.index != OVERHEAD_SPEC.key, "source"]) <= {"in-network", "calibrated"}
    assert not any(key.startswith("lut_drift") for key in result.metrics)
    assert result.metrics["reference_networks"] == 2 and isinstance(result.metrics["reference_drift_pct"], float)


def test_validate_times_the_reference_networks_in_the_same_rounds_as_the_models(tmp_path, archs, lut, host_device,
                                                                                model_cache, monkeypatch):
    """The LUT carries the reference networks' profile-time latency; validate times them again in
    the one call that times the models (so that both see the device in the same state)."""
    calls = []
    measure = host_device.measure_models

    def recording(models, progress=lambda done: None):
        calls.append([str(m) for m in models])
        return measure(models, progress)

    monkeypatch.setattr(host_device, "measure_models", recording)
    result = validate(archs, lut, host_device, tmp_path / "v", model_cache, settle_seconds=0)
    assert set(lut.reference_us) == set(REFERENCE_NETWORKS)
    references = reference_models(REFERENCE_NETWORKS, "float32", model_cache)
    (call,) = calls
    assert len(call) == 3 and call[1:] == [str(references[t]) for t in lut.reference_us]
    assert result.metrics["reference_networks"] == 2 and result.metrics["measure_attempts"] == 1


def test_an_isolated_lut_is_checked_by_re_timing_its_ops(tmp_path, archs, isolated_lut, isolated_device, model_cache):
    """An isolated LUT holds each op's single-op model time: the tiny network's seven ops are
    timed again, and their drift reported (without reference networks, it is the state's)."""
    result = validate(archs, isolated_lut, isolated_device, tmp_path / "v", model_cache, settle_seconds=0)
    m = result.metrics
    assert m["lut_drift_ops"] == 7 and "reference_drift_pct" not in m
    low, high = m["lut_drift_iqr_pct"]
    assert low <= m["lut_drift_pct"] <= high
    assert result.table["measured_ms"].gt(0).all() and list(result.table["target"]) == [archs[0].to_string()]


def test_a_lut_is_validated_on_a_device_of_its_method_only(tmp_path, archs, isolated_lut, host_device, model_cache):
    with pytest.raises(LatprofError, match="method"):
        validate(archs, isolated_lut, host_device, tmp_path / "v", model_cache, settle_seconds=0)


@pytest.mark.parametrize("probe", ["reference networks", "ops, for a LUT without references"])
def test_models_measured_while_the_device_runs_off_its_lut_speed_are_set_aside(probe, tmp_path, archs, lut,
                                                                            isolated_lut, host_device,
                                                                            isolated_device, model_cache):
    """A LUT whose probe (its reference networks, or, for an isolated LUT without them, its ops)
    is at a quarter of the latency this device gives: every check says the device runs far off
    (about +300%), so the models are measured again until the settle time is up; each set-aside
    attempt is kept with the drift that set it aside, and only the last one counts."""
    if probe == "reference networks":
        busy_lut = dataclasses.replace(lut, reference_us={t: v / 4 for t, v in lut.reference_us.items()})
        device, drift_key = host_device, "reference_drift_pct"
    else:
        assert isolated_lut.reference_us == {}
        busy_lut = dataclasses.replace(isolated_lut, table=isolated_lut.table.assign(
            latency_us=isolated_lut.table["latency_us"] / 4))
        device, drift_key = isolated_device, "lut_drift_pct"
    out = tmp_path / "busy"
    result = validate(archs, busy_lut, device, out, model_cache, settle_seconds=1.0)
    attempts = result.metrics["measure_attempts"]
    assert 2 <= attempts <= MAX_ATTEMPTS and result.metrics[drift_key] > DRIFT_WARNING_PCT
    discarded = [json.loads(line) for line in (out / DISCARDED_FILE).read_text().splitlines()]
    assert len(discarded) == attempts - 1
    assert all(row[drift_key] > DRIFT_WARNING_PCT for row in discarded)
    assert len((out / MEASURED_FILE).read_text().splitlines()) == 1
    quiet = validate(archs, busy_lut, device, tmp_path / "no-settle", model_cache, settle_seconds=0)
    assert quiet.metrics["measure_attempts"] == 1 and not (tmp_path / "no-settle" / DISCARDED_FILE).exists()


def test_validation_on_a_device_that_stays_off_its_lut_speed_ends_after_a_few_attempts(tmp_path, archs, lut,
                                                                                   host_device, model_cache):
    """However long the settle time, a device that keeps running off the LUT's speed (here the
    reference networks are recorded at a quarter of their latency) is measured MAX_ATTEMPTS times,
    then the validation ends with its result and the drift beside it."""
    busy_lut = dataclasses.replace(lut, reference_us={t: v / 4 for t, v in lut.reference_us.items()})
    result = validate(archs, busy_lut, host_device, tmp_path / "v", model_cache, settle_seconds=3600)
    assert result.metrics["measure_attempts"] == MAX_ATTEMPTS == 3
    assert result.metrics["reference_drift_pct"] > DRIFT_WARNING_PCT
    discarded = (tmp_path / "v" / DISCARDED_FILE).read_text().splitlines()
    assert len(discarded) == MAX_ATTEMPTS - 1
    assert len(result.table) == 1 and result.table["measured_ms"].gt(0).all()


def test_validate_resumes(validated, archs, lut, host_device, model_cache):
    out, first = validated
    before = (out / MEASURED_FILE).read_text()
    again = validate(archs, lut, host_device, out, model_cache, settle_seconds=0)
    assert (out / MEASURED_FILE).read_text() == before
    assert list(again.table["measured_ms"]) == list(first.table["measured_ms"])


def test_validate_resumes_after_a_torn_line(validated, archs, lut, host_device, model_cache):
    out, _ = validated
    path = out / MEASURED_FILE
    line = path.read_text()
    path.write_text(line[: len(line) // 2])
    validate(archs, lut, host_device, out, model_cache, settle_seconds=0)
    result = validate(archs, lut, host_device, out, model_cache, settle_seconds=0)
    assert len(result.table) == 1


def test_validate_refuses_to_resume_measurements_of_other_provenance(validated, archs, lut, host_device, model_cache,
                                                                  run_cli, tiny_lut_path):
    """A folder measured with one configuration is not resumed with another: the CLI says what
    differs in one line and nothing is lost."""
    from test_cli import assert_one_line_error

    out, _ = validated
    before = (out / MEASURED_FILE).read_text()
    document = json.loads((out / DEVICE_FILE).read_text())
    document["provenance"]["threads"] = 4
    (out / DEVICE_FILE).write_text(json.dumps(document))
    with pytest.raises(LatprofError, match="threads"):
        validate(archs, lut, host_device, out, model_cache, settle_seconds=0)
    assert_one_line_error(run_cli("validate", "--lut", tiny_lut_path, "--random", "1", "-o", out), "threads", "-o")
    (out / DEVICE_FILE).unlink()  # a folder whose measurements lost their provenance
    with pytest.raises(LatprofError, match="without their provenance"):
        validate(archs, lut, host_device, out, model_cache, settle_seconds=0)
    assert (out / MEASURED_FILE).read_text() == before


def test_reused_measurements_score_other_predictions_without_measuring_again(validated, archs, lut, host_device,
                                                                           model_cache, tmp_path):
    out, first = validated
    reuse_measurements(out, tmp_path / "again")
    again = validate(archs, lut, host_device, tmp_path / "again", model_cache, settle_seconds=0)
    assert (tmp_path / "again" / MEASURED_FILE).read_text() == (out / MEASURED_FILE).read_text()
    assert list(again.table["measured_ms"]) == list(first.table["measured_ms"])
    with pytest.raises(LatprofError, match="already"):
        reuse_measurements(out, tmp_path / "again")


def test_validate_refuses_a_lut_of_other_provenance(tmp_path, archs, tiny_lut_path, host_device, model_cache):
    document = json.loads(tiny_lut_path.read_text())
    document["provenance"]["delegate"] = "none"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(document))
    with pytest.raises(LatprofError, match="delegate"):
        validate(archs, LUT.load(other), host_device, tmp_path / "out", model_cache, settle_seconds=0)


def test_metrics():
    import numpy as np

    result = metrics(np.array([1.0, 2.15, 2.9, 5.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert result["models"] == 4
    assert result["mape_pct"] == pytest.approx(100 * (0 + 0.075 + 1 / 30 + 0.25) / 4, abs=0.01)
    assert result["within_5_pct"] == 50.0 and result["within_10_pct"] == 75.0
    assert result["spearman"] == 1.0


def test_validate_takes_model_files_and_measures_the_file_itself(tmp_path, tiny_arch_text, lut, host_device, model_cache):
    from latprof.convert import ensure_architectures
    from latprof.predict import predict

    arch = Architecture.from_string(tiny_arch_text)
    path = ensure_architectures([arch], "float32", model_cache)[arch.to_string()]
    model = tmp_path / "given model.tflite"
    model.write_bytes(path.read_bytes())
    result = validate([], lut, host_device, tmp_path / "v", model_cache, models=[model], settle_seconds=0)
    [row] = result.table.to_dict("records")
    assert row["target"] == str(model) and row["measured_ms"] > 0
    assert row["predicted_ms"] == predict(str(model), lut).latency_ms == predict(tiny_arch_text, lut).latency_ms


def test_cli_validate_models_from_a_folder_and_its_errors(run_cli, tmp_path, tiny_arch_text, tiny_lut_path, model_cache):
    from test_cli import assert_one_line_error

    from latprof.convert import ensure_architectures

    folder = tmp_path / "models"
    folder.mkdir()
    arch = Architecture.from_string(tiny_arch_text)
    path = ensure_architectures([arch], "float32", model_cache)[arch.to_string()]
    (folder / "tiny.tflite").write_bytes(path.read_bytes())
    result = run_cli("validate", "--lut", tiny_lut_path, "--models", folder, "-o", tmp_path / "out", "--json",
                     "--settle-timeout", "0")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["models"]
    assert row["target"] == str(folder / "tiny.tflite") and row["measured_ms"] > 0
    assert_one_line_error(run_cli("validate", "--lut", tiny_lut_path, "-o", tmp_path / "o2"), "--random", "--models")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("validate", "--lut", tiny_lut_path, "--models", tmp_path / "empty", "-o",
                                  tmp_path / "o3"), "no .tflite files")
