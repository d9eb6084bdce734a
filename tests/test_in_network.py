"""Timing method in-network on the host: ops timed inside whole networks by LiteRT's profiler.

The attribution rules are checked on operator lists; the profiler, the host's rounds, the run
folder, the LUT and the CLI on real networks compiled and run by LiteRT.
"""

from __future__ import annotations

import pytest

from latprof.arch import Architecture
from latprof.attribution import attribute
from latprof.errors import LatprofError
from latprof.litert_profiler import ProfiledModel
from latprof.lut import IN_NETWORK_SOURCE, build_lut
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.predict import predict_ops
from latprof.profiling import MEASUREMENTS_FILE, OVERHEAD_SPEC, RESIDUAL_KEY, profile, read_run
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
    with ProfiledModel(se_model) as model:
        model.run()
        runs = model.operator_times(3)
    assert len(runs) == 3
    for run in runs:
        times = attribute(ops, run, str(se_model))
        assert len(times) == len(ops) and min(times) >= 0
        convolutions = [t for spec, t in zip(ops, times) if spec.op == "CONV_2D"]
        assert max(convolutions) >= 1  # whole microseconds: the largest convolution takes some


def test_host_profiles_networks_and_reports_the_ones_it_cannot(host_device, se_model, tmp_path):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(se_model.read_bytes()[:2000])
    ops = list(decompose(se_model).ops)
    profiles, failed = host_device.profile_networks([se_model, truncated], [ops, ops])
    (profiled,) = profiles
    assert profiled.model == str(se_model) and len(profiled.ops) == len(ops)
    assert profiled.latency.latency_us > 0 and all(op.latency_us >= 0 for op in profiled.ops)
    assert profiled.residual_us == pytest.approx(profiled.latency.latency_us - sum(op.latency_us for op in profiled.ops))
    # the whole network is timed as measure_models times it, its ops over rounds of their own
    assert min(profiled.latency.conditions["rounds"], profiled.ops[0].conditions["rounds"]) >= host_device.settings.rounds
    assert list(failed) == [str(truncated)] and "truncated" in failed[str(truncated)]


def test_an_in_network_run_resumes_and_builds_a_lut_that_adds_up(host_device, se_model, model_cache, tmp_path):
    run_dir = tmp_path / "run"
    summary = profile(host_device, run_dir, model_cache, networks={SE_ARCH: se_model}, record_state=False)
    assert (summary.requested, summary.measured_now, summary.timed_alone) == (1, 1, {})
    _, records = read_run(run_dir)
    residual = [r for r in records if r["key"] == RESIDUAL_KEY]
    (invoke,) = [r for r in records if r["key"] == OVERHEAD_SPEC.key and "network" not in r]
    shares = [r for r in records if "network" in r and r["key"] != RESIDUAL_KEY]
    ops = list(Network(Architecture.from_string(SE_ARCH)).ops)
    assert len(residual) == 1 and [r["key"] for r in shares] == [op.key for op in ops]
    assert {r["network"] for r in shares + residual} == {SE_ARCH} and len(records) == len(shares) + 2
    assert not any("context" in r for r in records)  # no specs: nothing timed alone, nothing to calibrate

    again = profile(host_device, run_dir, model_cache, networks={SE_ARCH: se_model}, record_state=False)
    assert (again.measured_now, again.already_measured) == (0, 1)
    assert len((run_dir / MEASUREMENTS_FILE).read_text().splitlines()) == len(records)
    lut = build_lut([run_dir])
    # One invoke of the tiny model; the rest of what the network took goes to its ops in proportion.
    assert lut.overhead_us == invoke["latency_us"] and lut.calibration == {}
    assert RESIDUAL_KEY not in lut.table.index
    assert set(lut.table.loc[[op.key for op in ops], "source"]) == {IN_NETWORK_SOURCE}
    # So the network's prediction is the network as profiled (predictions are in tenths of a microsecond).
    prediction = predict_ops(SE_ARCH, ops, lut)
    assert prediction.latency_ms * 1000 == pytest.approx(residual[0]["network_us"], abs=0.06)
