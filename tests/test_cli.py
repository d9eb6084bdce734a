"""The ``latprof`` console script, run for real: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import subprocess

import pytest

from latprof.devices import HostDevice, MeasureSettings
from latprof.profiling import OVERHEAD_SPEC
from latprof.reference import REFERENCE_FILE, read_references


def assert_one_line_error(result: subprocess.CompletedProcess, *hints: str, code: int = 2) -> str:
    """The CLI's contract for expected failures: one line on stderr, no traceback, non-zero exit."""
    lines = result.stderr.splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("latprof: error: "), result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for hint in hints:
        assert hint in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def truncated_tflite(tmp_path_factory, model_cache, tiny_run):
    data = model_cache.path(OVERHEAD_SPEC, "float32").read_bytes()
    path = tmp_path_factory.mktemp("bad-models") / "truncated.tflite"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="module")
def corrupt_lut(tmp_path_factory, tiny_lut_path):
    text = tiny_lut_path.read_text()
    path = tmp_path_factory.mktemp("bad-luts") / "corrupt.json"
    path.write_text(text[: len(text) // 3])
    return path


def test_help(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for verb in ("profile", "lut", "predict", "measure", "validate", "demo"):
        assert verb in result.stdout
    assert run_cli("predict", "--help").returncode == 0


def test_cli_module_does_not_import_tensorflow(python_executable, cli_env):
    code = "import latprof.cli, sys; assert 'tensorflow' not in sys.modules; assert 'keras' not in sys.modules"
    result = subprocess.run([python_executable, "-c", code], capture_output=True, text=True, env=cli_env, timeout=120)
    assert result.returncode == 0, result.stderr


def test_predict_typo(run_cli, tiny_lut_path):
    assert_one_line_error(run_cli("predict", "r1_k3_s11_e1_i32_o16_nosip", "--lut", tiny_lut_path), "nosip")


def test_predict_missing_lut(run_cli, tmp_path):
    absent = tmp_path / "absent.json"
    assert_one_line_error(run_cli("predict", "mobilenetv2", "--lut", absent), "no such LUT", str(absent))


def test_predict_corrupt_lut(run_cli, corrupt_lut):
    assert_one_line_error(run_cli("predict", "mobilenetv2", "--lut", corrupt_lut), "corrupt", str(corrupt_lut))


def test_lut_show_corrupt_lut(run_cli, corrupt_lut):
    assert_one_line_error(run_cli("lut", "show", corrupt_lut), "corrupt")


def test_predict_truncated_tflite(run_cli, tiny_lut_path, truncated_tflite):
    assert_one_line_error(run_cli("predict", truncated_tflite, "--lut", tiny_lut_path), str(truncated_tflite))


def test_measure_truncated_tflite(run_cli, truncated_tflite):
    assert_one_line_error(run_cli("measure", truncated_tflite), str(truncated_tflite))


def test_measure_text_file(run_cli, tmp_path):
    fake = tmp_path / "fake.tflite"
    fake.write_text("hello\n")
    assert_one_line_error(run_cli("measure", fake), "not a TFLite model")


def test_lut_build_of_a_plain_folder(run_cli, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("not a run")
    out = tmp_path / "out.json"
    assert_one_line_error(run_cli("lut", "build", plain, "-o", out), "not a latprof run folder")
    assert not out.exists()


def test_lut_build_of_mixed_provenance(run_cli, tiny_run, run_copy, edit_provenance, tmp_path):
    edit_provenance(run_copy, threads=4)
    out = tmp_path / "mixed.json"
    assert_one_line_error(run_cli("lut", "build", tiny_run[0], run_copy, "-o", out), "provenance", "threads")
    assert not out.exists()
    allowed = run_cli("lut", "build", tiny_run[0], run_copy, "-o", out, "--allow-mixed", "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["ops"] > 0 and out.is_file()


def test_lut_build_warns_when_its_runs_saw_the_device_in_different_states(run_cli, tiny_run, run_copy, tmp_path):
    """The second run's reference networks ran twice as slow: the LUT is built (the ops are what
    they are) and says so."""
    slow = [{**record, "latency_us": 2 * record["latency_us"]} for record in read_references(run_copy)]
    (run_copy / REFERENCE_FILE).write_text("".join(json.dumps(record) + "\n" for record in slow))
    built = run_cli("lut", "build", tiny_run[0], run_copy, "-o", tmp_path / "lut.json")
    assert built.returncode == 0, built.stderr
    assert "warning: the reference networks ran 100.0% apart" in built.stdout
    quiet = run_cli("lut", "build", tiny_run[0], tiny_run[0], "-o", tmp_path / "quiet.json")
    assert quiet.returncode == 0 and "warning" not in quiet.stdout


def test_lut_build_and_show(run_cli, tiny_run, tmp_path):
    out = tmp_path / "lut.json"
    built = run_cli("lut", "build", tiny_run[0], "-o", out, "--json")
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert summary["ops"] == tiny_run[1].requested == len(json.loads(out.read_text())["rows"])
    assert summary["overhead_us"] > 0 and summary["provenance"]["device"] == "host"
    shown = run_cli("lut", "show", out, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["ops"] == summary["ops"] and data["provenance"] == summary["provenance"]
    assert data["reference_us"] == summary["reference_us"] and len(data["reference_us"]) == 2
    assert data["uncertainty"]["ops"] == summary["ops"]
    text = run_cli("lut", "show", out).stdout
    assert "reference network mobilenetv2: " in text and "reference network mnasnet-a1: " in text
    assert f"ops known within ±2% (or 0.5 us): {data['uncertainty']['within']} of {summary['ops']} " in text


def test_profile_with_nothing_to_profile(run_cli, tmp_path):
    out = tmp_path / "run"
    assert_one_line_error(run_cli("profile", "-o", out), "--sample")
    assert not (out / "run.json").exists()


def test_predict_incomplete_json(run_cli, tiny_lut_path):
    result = run_cli("predict", "mobilenetv2", "--lut", tiny_lut_path, "--json")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, list) and len(data) == 1
    (row,) = data
    assert row["target"] == "mobilenetv2"
    assert row["latency_ms"] is None
    assert isinstance(row["missing"], list) and row["missing"]
    assert row["ops"] >= len(row["missing"]) == len(set(row["missing"]))
    assert all(key.split("|")[0] in {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
               for key in row["missing"])


def test_predict_incomplete_text(run_cli, tiny_lut_path):
    result = run_cli("predict", "mobilenetv2", "--lut", tiny_lut_path)
    assert result.returncode == 1
    assert "incomplete" in result.stdout and "missing" in result.stdout


def test_predict_happy_path(tiny_arch_text, run_cli, tiny_lut_path):
    result = run_cli("predict", tiny_arch_text, "--lut", tiny_lut_path, "--json", "--breakdown")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["target"] == tiny_arch_text and row["missing"] == []
    assert row["latency_ms"] > 0 and row["ops"] == 7 and len(row["breakdown"]) == 7
    text = run_cli("predict", tiny_arch_text, "--lut", tiny_lut_path)
    assert text.returncode == 0 and f"{tiny_arch_text}: " in text.stdout and " ms " in text.stdout


def test_predict_several_targets_one_incomplete(tiny_arch_text, run_cli, tiny_lut_path):
    result = run_cli("predict", tiny_arch_text, "mobilenetv2", "--lut", tiny_lut_path, "--json")
    assert result.returncode == 1
    first, second = json.loads(result.stdout)
    assert first["latency_ms"] > 0 and second["latency_ms"] is None


@pytest.fixture(scope="module")
def tiny_tflite(tiny_arch_text, tmp_path_factory):
    from latprof.arch import Architecture
    from latprof.builder import build_model
    from latprof.convert import convert_keras

    path = tmp_path_factory.mktemp("models") / "tiny.tflite"
    path.write_bytes(convert_keras(build_model(Architecture.from_string(tiny_arch_text))))
    return path


def test_predict_tflite_file(run_cli, tiny_lut_path, tiny_tflite):
    result = run_cli("predict", tiny_tflite, "--lut", tiny_lut_path, "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["target"] == str(tiny_tflite) and row["latency_ms"] > 0 and row["ops"] == 7


def test_profile_models_resumes_an_existing_run(run_cli, run_copy, tiny_tflite):
    """Every op of the model is in the run already: the CLI measures nothing and says so."""
    before = (run_copy / "measurements.jsonl").read_text()
    result = run_cli("profile", "--models", tiny_tflite, "-o", run_copy, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["measured_now"] == 0 and summary["requested"] == 8 and summary["already_measured"] == 8
    assert (run_copy / "measurements.jsonl").read_text() == before


def test_profile_of_a_missing_model(run_cli, tmp_path):
    assert_one_line_error(run_cli("profile", "--models", tmp_path / "absent.tflite", "-o", tmp_path / "run"),
                          "no such model file")


def test_profile_into_other_provenance(run_cli, run_copy, tiny_tflite, edit_provenance):
    edit_provenance(run_copy, delegate="none")
    assert_one_line_error(run_cli("profile", "--models", tiny_tflite, "-o", run_copy), "provenance", "delegate")


def test_op_method_reaches_the_device_and_validate_takes_the_luts(run_cli, run_copy, tiny_tflite, edit_provenance,
                                                                 tmp_path):
    """``--op-method v6`` times ops another way, so a run of the default (v9) refuses it;
    validating a v6 LUT measures with the LUT's method without being told."""
    assert_one_line_error(run_cli("profile", "--models", tiny_tflite, "--op-method", "v6", "-o", run_copy),
                          "provenance", "method")
    v6 = HostDevice(MeasureSettings(sample_eviction="l2")).provenance().method
    edit_provenance(run_copy, method=v6)
    lut = tmp_path / "v6.json"
    assert run_cli("lut", "build", run_copy, "-o", lut).returncode == 0
    result = run_cli("validate", "--lut", lut, "--models", tiny_tflite, "--settle-timeout", "0",
                     "-o", tmp_path / "val", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "val" / "device.json").read_text())["provenance"]["method"] == v6


def test_measure_good_then_truncated_tflite(run_cli, model_cache, tiny_run, truncated_tflite):
    good = model_cache.path(OVERHEAD_SPEC, "float32")
    assert_one_line_error(run_cli("measure", good, truncated_tflite), str(truncated_tflite))


def test_lut_build_of_a_binary_run_json(run_cli, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_bytes(b"\xff\xfe\x00 not json")
    assert_one_line_error(run_cli("lut", "build", broken, "-o", tmp_path / "out.json"), "corrupt")


def test_measure_happy_path(run_cli, model_cache, tiny_run):
    good = model_cache.path(OVERHEAD_SPEC, "float32")
    result = run_cli("measure", good, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (row,) = data["models"]
    assert row["model"] == str(good) and row["latency_ms"] > 0 and row["runs"] > 0
    assert data["provenance"]["device"] == "host"
