"""Host method v10: ops timed inside whole networks by LiteRT's profiler, for real.

The attribution rules are checked on operator lists; the profiler, the host's rounds, the run
folder, the LUT and the CLI on real networks compiled and run by LiteRT.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_cli import assert_one_line_error

from latprof.arch import Architecture
from latprof.attribution import attribute
from latprof.devices import HostDevice, MeasureSettings
from latprof.errors import LatprofError
from latprof.litert_profiler import ProfiledModel
from latprof.lut import LUT, build_lut
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.predict import predict_ops
from latprof.profiling import OVERHEAD_SPEC, RESIDUAL_KEY, profile_networks
from latprof.tflite_file import decompose

# Squeeze-excite and an inverted residual with a skip: MEAN, LOGISTIC, MUL and ADD among the ops.
SE_ARCH = "res64_w0.5:r1_k3_s11_e1_i32_o16,r2_k5_s22_e6_i16_o24_se0.25"


def _spec(op: str) -> OpSpec:
    shape = (4, 4, 8)
    return OpSpec(op, (shape, shape) if op in ("ADD", "MUL") else (shape,), shape)


def test_attribution_follows_the_ops_and_gives_helpers_to_the_next_op():
    ops = [_spec("CONV_2D"), _spec("DEPTHWISE_CONV_2D"), _spec("MEAN"), _spec("FULLY_CONNECTED"), _spec("SOFTMAX")]
    operators = [("Convolution (NHWC, F32) IGEMM", 10.0), ("Convolution (NHWC, F32) DWConv", 5.0),
                 ("Mean (ND) Reduce2", 2.0), ("Static Reshape (NC)", 1.0), ("Fully Connected (NC, F32) GEMM", 7.0),
                 ("Softmax (NC, F32)", 3.0)]
    assert attribute(ops, operators) == [10.0, 5.0, 2.0, 8.0, 3.0]


@pytest.mark.parametrize("operators", [
    [("Convolution (NHWC, F32) IGEMM", 10.0), ("Add (ND)", 1.0)],  # ADD where the MEAN should be
    [("Convolution (NHWC, F32) IGEMM", 10.0)],  # the MEAN never ran
    [("Convolution (NHWC, F32) IGEMM", 10.0), ("Mean (ND) Reduce2", 2.0), ("Multiply (ND)", 1.0)],  # one too many
])
def test_attribution_refuses_operators_that_are_not_the_ops(operators):
    with pytest.raises(LatprofError, match="cannot be timed inside it"):
        attribute([_spec("CONV_2D"), _spec("MEAN")], operators, "net.tflite")


def test_attribution_gives_a_fused_pad_no_time_and_its_operator_to_the_next_op():
    ops = [_spec("CONV_2D"), _spec("PAD"), _spec("DEPTHWISE_CONV_2D"), _spec("PAD"), _spec("CONV_2D")]
    operators = [("Fully Connected (NC, F32) GEMM", 4.0), ("Copy (NC, X32)", 1.0),
                 ("Convolution (NHWC, F32) DWConv", 6.0), ("Constant Pad (ND, X32)", 2.0),
                 ("Convolution (NHWC, F32) IGEMM", 9.0)]
    assert attribute(ops, operators) == [4.0, 0.0, 7.0, 2.0, 9.0]  # the first PAD fused, the second ran


def test_profiler_splits_a_network_whose_pad_xnnpack_fused_into_the_convolution(tmp_path):
    """MobileNetV1 pads an odd map before a VALID stride-2 depthwise convolution; XNNPACK runs both
    as one operator."""
    import keras

    from latprof.convert import convert_keras

    inputs = keras.Input((11, 11, 16), batch_size=1)
    padded = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(keras.layers.Conv2D(16, 1)(inputs))
    path = tmp_path / "pad.tflite"
    path.write_bytes(convert_keras(keras.Model(inputs, keras.layers.DepthwiseConv2D(3, strides=2)(padded))))
    ops = decompose(path).ops
    assert [op.op for op in ops] == ["CONV_2D", "PAD", "DEPTHWISE_CONV_2D"]
    model = ProfiledModel(path)
    try:
        model.run()
        (run,) = model.operator_times(1)
    finally:
        model.close()
    assert len(run) == 2 and run[1][0].startswith("Convolution")
    assert attribute(ops, run, str(path))[1] == 0.0


@pytest.fixture(scope="module")
def se_model(model_cache, tmp_path_factory):
    from latprof.convert import ensure_architectures

    arch = Architecture.from_string(SE_ARCH)
    return ensure_architectures([arch], "float32", model_cache)[arch.to_string()]


def test_profiler_times_every_op_of_a_real_network(se_model):
    ops = decompose(se_model).ops
    assert {"MEAN", "LOGISTIC", "MUL", "ADD", "FULLY_CONNECTED"} <= {op.op for op in ops}
    model = ProfiledModel(se_model)
    try:
        model.run()
        runs = model.operator_times(3)
    finally:
        model.close()
    assert len(runs) == 3
    for run in runs:
        times = attribute(ops, run, str(se_model))
        assert len(times) == len(ops) and min(times) >= 0
        convolutions = [t for spec, t in zip(ops, times) if spec.op == "CONV_2D"]
        assert max(convolutions) >= 1  # whole microseconds: the largest convolution takes some


@pytest.fixture(scope="module")
def v10_device(fast_settings) -> HostDevice:
    return HostDevice(MeasureSettings(**{**fast_settings.__dict__, "sample_eviction": "in-network"}))


def test_host_profiles_networks_and_reports_the_ones_it_cannot(v10_device, se_model, model_cache, tmp_path):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(se_model.read_bytes()[:2000])
    ops = list(decompose(se_model).ops)
    profiles, failed = v10_device.profile_networks([se_model, truncated], [ops, ops])
    (profile,) = profiles
    assert profile.model == str(se_model) and len(profile.ops) == len(ops)
    assert profile.latency.latency_us > sum(t.latency_us for t in profile.ops) * 0.5
    assert profile.latency.conditions["rounds"] >= v10_device.settings.rounds
    assert list(failed) == [str(truncated)] and "truncated" in failed[str(truncated)]
    with pytest.raises(LatprofError, match="--op-method v9"):
        v10_device.measure_ops([se_model])


def test_profile_networks_run_resumes_and_builds_a_lut_that_adds_up(v10_device, se_model, model_cache, tmp_path):
    run_dir = tmp_path / "run"
    summary = profile_networks({SE_ARCH: se_model}, v10_device, run_dir, model_cache, record_state=False)
    assert (summary.requested, summary.measured_now, summary.unit) == (1, 1, "networks")
    records = [json.loads(line) for line in (run_dir / "measurements.jsonl").read_text().splitlines()]
    residual = [r for r in records if r["key"] == RESIDUAL_KEY]
    (invoke,) = [r for r in records if r["key"] == OVERHEAD_SPEC.key and "network" not in r]
    shares = [r for r in records if "network" in r and r["key"] != RESIDUAL_KEY]
    assert len(residual) == 1 and len(shares) == len(Network(Architecture.from_string(SE_ARCH)).ops)
    assert {r["network"] for r in shares + residual} == {SE_ARCH} and len(records) == len(shares) + 2

    again = profile_networks({SE_ARCH: se_model}, v10_device, run_dir, model_cache, record_state=False)
    assert (again.measured_now, again.already_measured) == (0, 1)
    assert len((run_dir / "measurements.jsonl").read_text().splitlines()) == len(records)
    lut = build_lut([run_dir])
    # One invoke of the tiny model; the rest of what the network took goes to its ops in proportion.
    assert lut.overhead_us == pytest.approx(invoke["latency_us"])
    assert RESIDUAL_KEY not in lut.table.index
    # So the network's prediction is the network as profiled.
    ops = list(Network(Architecture.from_string(SE_ARCH)).ops)
    prediction = predict_ops(SE_ARCH, ops, lut)
    assert prediction.latency_ms * 1000 == pytest.approx(residual[0]["network_us"], rel=1e-3, abs=0.5)


def test_a_v10_lut_gives_what_networks_take_beyond_their_ops_to_the_ops_in_proportion():
    """Two networks that took 2% more than their ops: the rows carry that 2%, the overhead stays one invoke."""
    from latprof.lut import table_from_records

    records = pd.DataFrame([
        {"key": OVERHEAD_SPEC.key, "op": "ADD", "latency_us": 1.0, "network": None},
        {"key": "a", "op": "CONV_2D", "latency_us": 100.0, "network": "small"},
        {"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": 3.0, "network_us": 103.0, "network": "small"},
        {"key": "a", "op": "CONV_2D", "latency_us": 100.0, "network": "large"},
        {"key": "b", "op": "CONV_2D", "latency_us": 9900.0, "network": "large"},
        {"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": 201.0, "network_us": 10201.0, "network": "large"},
    ]).assign(median_us=lambda d: d["latency_us"], p5_us=lambda d: d["latency_us"], p95_us=lambda d: d["latency_us"],
              runs=1)
    table, overhead = table_from_records(records)
    assert overhead == 1.0
    assert table.loc["a", "latency_us"] == pytest.approx(1.0 + 1.02 * 100.0)
    assert table.loc["b", "latency_us"] == pytest.approx(1.0 + 1.02 * 9900.0)
    assert RESIDUAL_KEY not in table.index


def test_cli_profiles_networks_with_v10_and_refuses_single_op_requests(run_cli, tmp_path):
    assert_one_line_error(run_cli("profile", "--op-method", "v10", "--all", "-o", tmp_path / "all"),
                          "--op-method v9")
    run = tmp_path / "run"
    result = run_cli("profile", "--op-method", "v10", "--models", _tiny_model(tmp_path), "-o", run, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["unit"] == "networks" and summary["measured_now"] == 1
    lut = tmp_path / "lut.json"
    assert run_cli("lut", "build", run, "-o", lut).returncode == 0
    assert "v10" in LUT.load(lut).provenance.method
    result = run_cli("validate", "--lut", lut, "--models", _tiny_model(tmp_path), "--settle-timeout", "0",
                     "-o", tmp_path / "val", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["models"] == 1 and "lut_drift_pct" not in metrics  # no microbenchmarks to re-measure


def _tiny_model(folder):
    from latprof.builder import build_model
    from latprof.convert import convert_keras

    path = folder / "se.tflite"
    if not path.is_file():
        path.write_bytes(convert_keras(build_model(Architecture.from_string(SE_ARCH))))
    return path


def test_demo_times_ops_inside_networks_and_resumes(run_cli, tmp_path):
    """The Quickstart's main job, for real: v10 profile, LUT, predictions, and a validation whose
    prediction comes from the networks' own ops."""
    out = tmp_path / "demo"
    result = run_cli("demo", "--sample", "1", "-o", out, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "3 networks profiled now" in result.stdout and "4/4" in result.stdout
    lut = LUT.load(out / "lut.json")
    assert "v10" in lut.provenance.method and len(lut.reference_us) == 2
    summary = json.loads((out / "validate-v10" / "summary.json").read_text())
    assert summary["metrics"]["models"] == 1 and summary["metrics"]["mape_pct"] < 50
    again = run_cli("demo", "--sample", "1", "-o", out, timeout=600)
    assert again.returncode == 0 and "0 networks profiled now, 3 already" in again.stdout
