"""The ``latprof`` console script, run for real: exit codes, one-line errors, JSON output; and the
device options: ``--method`` reaches the device, and validate, export and search take the
configuration from the LUT, refusing an option that contradicts it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from latprof.cli import main
from latprof.profiling import MEASUREMENTS_FILE, OVERHEAD_SPEC, RESIDUAL_KEY, RUN_FILE
from latprof.reference import REFERENCE_FILE, read_references


def assert_one_line_error(result, *hints: str, code: int = 2) -> str:
    """The CLI's contract for expected failures: one line on stderr, no traceback, non-zero exit."""
    lines = result.stderr.splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("latprof: error: "), result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for hint in hints:
        assert hint in lines[0], lines[0]
    return lines[0]


def invoke(*args):
    """The CLI in this process, for failures that stop before anything is measured: what
    ``run_cli`` returns, without a new interpreter per call."""
    result = CliRunner().invoke(main, [str(a) for a in args], prog_name="latprof")
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def read_lines(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / MEASUREMENTS_FILE).read_text().splitlines() if line.strip()]


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


def test_a_mixed_lut_is_refused_downstream_unless_the_flag_is_given_there(run_cli, tiny_run, run_copy, edit_provenance,
                                                                           tmp_path, tiny_arch_text):
    edit_provenance(run_copy, threads=4)
    out = tmp_path / "mixed.json"
    assert run_cli("lut", "build", tiny_run[0], run_copy, "-o", out, "--allow-mixed").returncode == 0
    shown = run_cli("lut", "show", out, "--json")
    assert shown.returncode == 0 and "threads" in json.loads(shown.stdout)["mixed_provenance"][0]
    assert "mixed provenance (only with --allow-mixed)" in run_cli("lut", "show", out).stdout
    assert_one_line_error(run_cli("predict", tiny_arch_text, "--lut", out), "mixes runs of different provenance",
                          "--allow-mixed")
    assert_one_line_error(run_cli("predictor", "train", out, "-o", tmp_path / "p.json"), "--allow-mixed")
    allowed = run_cli("predict", tiny_arch_text, "--lut", out, "--allow-mixed", "--json")
    assert allowed.returncode == 0, allowed.stderr


def test_a_lut_with_a_nonsense_value_is_a_one_line_error(run_cli, tiny_lut_path, tmp_path, tiny_arch_text):
    """It loads, then printed inf ms before; now every command refuses it (the values: test_lut)."""
    document = json.loads(Path(tiny_lut_path).read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**document, "overhead_us": float("inf")}))
    for command in (("predict", tiny_arch_text, "--lut", bad), ("lut", "show", bad)):
        assert_one_line_error(run_cli(*command), "corrupt or foreign LUT", "overhead_us")


def test_lut_build_warns_when_its_runs_saw_the_device_in_different_states(run_cli, tiny_run, run_copy, tmp_path):
    """The second run's reference networks ran twice as slow: the LUT is built (the ops are what
    they are) and says so."""
    slow = [{**record, "latency_us": 2 * record["latency_us"]} for record in read_references(run_copy)]
    (run_copy / REFERENCE_FILE).write_text("".join(json.dumps(record) + "\n" for record in slow))
    built = run_cli("lut", "build", tiny_run[0], run_copy, "-o", tmp_path / "lut.json")
    assert built.returncode == 0, built.stderr
    spread = re.search(r"warning: the reference networks ran ([\d.]+)% apart", built.stdout)
    assert spread and float(spread.group(1)) >= 100, built.stdout
    first = {record["target"]: record["latency_us"] for record in reversed(read_references(tiny_run[0]))}
    steady = [{**record, "latency_us": first[record["target"]]} for record in read_references(tiny_run[0])]
    (run_copy / REFERENCE_FILE).write_text("".join(json.dumps(record) + "\n" for record in steady))
    quiet = run_cli("lut", "build", run_copy, run_copy, "-o", tmp_path / "quiet.json")
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


def test_predict_tflite_file(run_cli, tiny_lut_path, tiny_model):
    result = run_cli("predict", tiny_model, "--lut", tiny_lut_path, "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["target"] == str(tiny_model) and row["latency_ms"] > 0 and row["ops"] == 7


def test_profile_of_a_missing_model(run_cli, tmp_path):
    assert_one_line_error(run_cli("profile", "--models", tmp_path / "absent.tflite", "-o", tmp_path / "run"),
                          "no such model file")


def test_profile_into_other_provenance(run_cli, run_copy, tiny_model, edit_provenance):
    edit_provenance(run_copy, delegate="none")
    before = (run_copy / MEASUREMENTS_FILE).read_text()
    assert_one_line_error(run_cli("profile", "--models", tiny_model, "-o", run_copy), "provenance", "delegate")
    assert (run_copy / MEASUREMENTS_FILE).read_text() == before


# ---- the timing method and the configuration a LUT decides ----

@pytest.fixture(scope="module")
def in_network_run(run_cli, tiny_model, tmp_path_factory):
    """The tiny model profiled by the CLI with the default method, and its JSON summary."""
    run_dir = tmp_path_factory.mktemp("cli-runs") / "in-network"
    done = run_cli("profile", "--models", tiny_model, "-o", run_dir, "--json")
    assert done.returncode == 0, done.stderr
    return run_dir, json.loads(done.stdout)


@pytest.fixture(scope="module")
def isolated_run(run_cli, tiny_model, tmp_path_factory):
    """The tiny model's ops profiled by the CLI with ``--method isolated``, and its JSON summary."""
    run_dir = tmp_path_factory.mktemp("cli-runs") / "isolated"
    done = run_cli("profile", "--models", tiny_model, "--method", "isolated", "-o", run_dir, "--json")
    assert done.returncode == 0, done.stderr
    return run_dir, json.loads(done.stdout)


@pytest.fixture(scope="module")
def isolated_lut(run_cli, isolated_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-luts") / "isolated.json"
    done = run_cli("lut", "build", isolated_run[0], "-o", path)
    assert done.returncode == 0, done.stderr
    return path


def test_profile_help_names_the_methods_and_no_versions(run_cli):
    done = run_cli("profile", "--help")
    assert done.returncode == 0, done.stderr
    assert "--method [in-network|isolated]" in done.stdout
    assert not re.search(r"v6|v7|v8|v9|v10|sample_eviction|op-method", done.stdout), done.stdout


@pytest.mark.parametrize("command", [["profile", "--sample", "1"], ["measure", "MODEL"],
                                     ["validate", "--lut", "LUT", "--random", "1"],
                                     ["search", "--target-ms", "5", "--lut", "LUT"]])
def test_the_old_op_method_option_is_a_usage_error(command, tmp_path, tiny_lut_path, tiny_model):
    args = [{"LUT": tiny_lut_path, "MODEL": tiny_model}.get(arg, arg) for arg in command]
    line = assert_one_line_error(invoke(*args, "--op-method", "v9", "-o", tmp_path / "out"), "--op-method")
    assert f"(see 'latprof {command[0]} --help')" in line
    assert not (tmp_path / "out").exists()


def test_the_method_reaches_the_device(in_network_run, isolated_run, tiny_model, tiny_arch):
    """The default times the model whole, each op inside it; --method isolated times each op as a
    model of its own.  Each run's provenance names its method."""
    from latprof.network import Network

    keys = [op.key for op in Network(tiny_arch).ops]
    (in_network, summary), (isolated, isolated_summary) = in_network_run, isolated_run
    assert json.loads((in_network / RUN_FILE).read_text())["provenance"]["method"].startswith("in-network/")
    assert json.loads((isolated / RUN_FILE).read_text())["provenance"]["method"].startswith("isolated/")

    lines = read_lines(in_network)
    assert {line["network"] for line in lines if "network" in line} == {str(tiny_model)}
    assert sorted(line["key"] for line in lines if "network" in line) == sorted([*keys, RESIDUAL_KEY])
    assert [line["key"] for line in lines if "network" not in line] == [OVERHEAD_SPEC.key]
    assert (summary["requested"], summary["measured_now"], summary["timed_alone"]) == (1, 1, {})

    lines = read_lines(isolated)
    assert not any("network" in line or "context" in line for line in lines)
    assert sorted(line["key"] for line in lines) == sorted({*keys, OVERHEAD_SPEC.key})
    assert isolated_summary["measured_now"] == len(set(keys))
    assert len(read_references(in_network)) == len(read_references(isolated)) == 2


def test_profile_resumes_an_existing_run(run_cli, in_network_run, tiny_model):
    """The same command again: the model is in the run already, so nothing is measured (not even
    the reference networks) and the CLI says so."""
    run_dir, _ = in_network_run
    before = [(run_dir / name).read_text() for name in (MEASUREMENTS_FILE, REFERENCE_FILE)]
    result = run_cli("profile", "--models", tiny_model, "-o", run_dir, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["requested"], summary["measured_now"], summary["already_measured"]) == (1, 0, 1)
    assert [(run_dir / name).read_text() for name in (MEASUREMENTS_FILE, REFERENCE_FILE)] == before


def test_profile_with_another_method_into_a_run_is_refused(run_cli, in_network_run, tiny_model):
    run_dir, _ = in_network_run
    before = [(run_dir / name).read_text() for name in (RUN_FILE, MEASUREMENTS_FILE)]
    assert_one_line_error(run_cli("profile", "--models", tiny_model, "--method", "isolated", "-o", run_dir),
                          "provenance", "method", "isolated/")
    assert [(run_dir / name).read_text() for name in (RUN_FILE, MEASUREMENTS_FILE)] == before


def test_validate_takes_the_method_from_the_lut(run_cli, isolated_lut, tiny_model, tmp_path):
    """No device option: an isolated LUT is validated by a device timing with method isolated."""
    result = run_cli("validate", "--lut", isolated_lut, "--settle-timeout", "0", "-o", tmp_path / "val", "--json",
                     "--models", tiny_model)
    assert result.returncode == 0, result.stderr
    method = json.loads((tmp_path / "val" / "device.json").read_text())["provenance"]["method"]
    assert method.startswith("isolated/")
    assert method == json.loads(isolated_lut.read_text())["provenance"]["method"]
    data = json.loads(result.stdout)
    assert data["metrics"]["models"] == 1 and data["models"][0]["measured_ms"] > 0


def test_export_takes_the_configuration_from_the_lut(run_cli, isolated_lut, tiny_arch_text, tmp_path):
    """Options may repeat what the LUT says.  The LUT's latency source takes only a device of the
    LUT's provenance, so a default (in-network) device would have been refused."""
    output = tmp_path / "tiny.tflite"
    done = run_cli("export", tiny_arch_text, "-o", output, "--lut", isolated_lut, "--method", "isolated",
                   "--threads", "1", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert output.stat().st_size > 0 and result["prediction"] == "lut"
    assert result["measured_ms"] > 0 and result["predicted_ms"] > 0


CONTRADICTIONS = [("method", "in-network", "isolated"), ("threads", "2", "1"), ("delegate", "none", "xnnpack"),
                  ("dtype", "int8", "float32")]


def _command(name: str, lut, tiny_model, tiny_arch_text, out) -> list:
    return {"validate": ["validate", "--lut", lut, "--models", tiny_model, "--settle-timeout", "0", "-o", out],
            "export": ["export", tiny_arch_text, "--lut", lut, "-o", out],
            "search": ["search", "--target-ms", "5", "--lut", lut, "--budget", "1", "-o", out]}[name]


@pytest.mark.parametrize("command", ["validate", "export", "search"])
@pytest.mark.parametrize("option, value, recorded", CONTRADICTIONS)
def test_an_option_contradicting_the_lut_is_one_line(command, option, value, recorded, isolated_lut, tiny_model,
                                                     tiny_arch_text, tmp_path):
    out = tmp_path / "out"
    result = invoke(*_command(command, isolated_lut, tiny_model, tiny_arch_text, out), f"--{option}", value)
    assert_one_line_error(result, f"--{option} {value} contradicts the LUT {isolated_lut}, measured with {option} "
                                  f"{recorded}; drop --{option}")
    assert not out.exists()


def test_the_console_script_refuses_another_method_than_the_luts(run_cli, tiny_lut_path, tiny_model, tmp_path):
    """The same through the installed script, with the in-network LUT of the shared run."""
    result = run_cli("validate", "--lut", tiny_lut_path, "--models", tiny_model, "--method", "isolated",
                     "-o", tmp_path / "val")
    assert_one_line_error(result, f"--method isolated contradicts the LUT {tiny_lut_path}, measured with method "
                                  "in-network; drop --method")
    assert not (tmp_path / "val").exists()


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
    result = run_cli("measure", good, "--method", "isolated", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (row,) = data["models"]
    assert row["model"] == str(good) and row["latency_ms"] > 0 and row["runs"] > 0
    assert data["provenance"]["device"] == "host" and data["provenance"]["method"].startswith("isolated/")
