"""Op keys of windows that are not square: a rectangular kernel, a dilated convolution or unequal
strides read from a real .tflite must never take the key of a square, undilated op (whose LUT row
would then price it), and latprof says in one line that it cannot time them.  Square ops keep the
keys they always had."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sysconfig

import numpy as np
import pandas as pd
import pytest

from latprof.errors import LatprofError
from latprof.lut import LUT
from latprof.measurement import Provenance
from latprof.ops import OpSpec
from latprof.predict import predict
from latprof.predictor import LatencyPredictor
from latprof.tflite_file import decompose

# name -> (Keras layer, the key of the op in the file, the key the op used to get: a square op's)
CASES = {
    "rect_1x7": (lambda kl: kl.Conv2D(8, (1, 7), padding="same"),
                 "CONV_2D|in=16x16x3|out=16x16x8|k=1x7|s=1|pad=SAME",
                 "CONV_2D|in=16x16x3|out=16x16x8|k=1|s=1|pad=VALID"),  # the key of a real 1x1 conv
    "dilated": (lambda kl: kl.Conv2D(8, 3, dilation_rate=2, padding="same"),
                "CONV_2D|in=16x16x3|out=16x16x8|k=3|s=1|pad=SAME|dil=2",
                "CONV_2D|in=16x16x3|out=16x16x8|k=3|s=1|pad=SAME"),
    "stride_2x1": (lambda kl: kl.Conv2D(8, 3, strides=(2, 1), padding="same"),
                   "CONV_2D|in=16x16x3|out=8x16x8|k=3|s=2x1|pad=SAME",
                   "CONV_2D|in=16x16x3|out=8x16x8|k=3|s=2|pad=SAME"),
    "depthwise_dilated": (lambda kl: kl.DepthwiseConv2D(3, dilation_rate=2, padding="same"),
                          "DEPTHWISE_CONV_2D|in=16x16x3|out=16x16x3|k=3|s=1|pad=SAME|dil=2",
                          "DEPTHWISE_CONV_2D|in=16x16x3|out=16x16x3|k=3|s=1|pad=SAME"),
    "avgpool_1x3": (lambda kl: kl.AveragePooling2D((1, 3), strides=1, padding="same"),
                    "AVERAGE_POOL_2D|in=16x16x3|out=16x16x3|k=1x3|s=1|pad=SAME",
                    "AVERAGE_POOL_2D|in=16x16x3|out=16x16x3|k=1|s=1|pad=VALID"),
    "maxpool_stride_2x1": (lambda kl: kl.MaxPooling2D(2, strides=(2, 1)),
                           "MAX_POOL_2D|in=16x16x3|out=8x15x3|k=2|s=2x1|pad=VALID",
                           "MAX_POOL_2D|in=16x16x3|out=8x15x3|k=2|s=2|pad=VALID"),
}
WHAT = {"rect_1x7": "CONV_2D with a 1x7 kernel", "dilated": "CONV_2D with a 3x3 kernel, dilation 2",
        "stride_2x1": "CONV_2D with a 3x3 kernel, stride 2x1",
        "depthwise_dilated": "DEPTHWISE_CONV_2D with a 3x3 kernel, dilation 2",
        "avgpool_1x3": "AVERAGE_POOL_2D with a 1x3 window", "maxpool_stride_2x1": "MAX_POOL_2D with a 2x2 window, stride 2x1"}
SQUARE_KEY = "CONV_2D|in=16x16x3|out=16x16x8|k=3|s=1|pad=SAME"
PROVENANCE = Provenance("test-device", "test-cpu", "test-runtime", "0" * 64, 1, "xnnpack", "float32", "test/1")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A one-layer .tflite per case, and the square control, converted as latprof converts."""
    import keras
    from keras import layers as kl

    from latprof.convert import convert_keras

    folder = tmp_path_factory.mktemp("windows")
    paths = {}
    for name, layer in {**{n: c[0] for n, c in CASES.items()}, "square": lambda kl: kl.Conv2D(8, 3, padding="same")}.items():
        inputs = keras.Input((16, 16, 3), batch_size=1)
        path = folder / f"{name}.tflite"
        path.write_bytes(convert_keras(keras.Model(inputs, layer(kl)(inputs))))
        paths[name] = path
    return paths


def _lut(keys_us: dict[str, float], overhead_us: float = 2.0) -> LUT:
    rows = [{"key": key, "op": key.split("|")[0], "latency_us": us, "median_us": us, "p5_us": us, "p95_us": us,
             "runs": 10} for key, us in keys_us.items()]
    return LUT(provenance=PROVENANCE, table=pd.DataFrame(rows).set_index("key"), overhead_us=overhead_us)


def test_square_control_keeps_its_key(files):
    model = decompose(files["square"])
    assert [op.key for op in model.ops] == [SQUARE_KEY]
    assert model.unsupported == {}
    (op,) = model.ops
    assert op.window == "" and op.unsupported == "" and op.kernel_hw == (3, 3) and op.dilation == (1, 1)


@pytest.mark.parametrize("name", CASES)
def test_irregular_window_is_keyed_apart_and_named_unsupported(name, files):
    _, key, square_key = CASES[name]
    model = decompose(files[name])
    assert [op.key for op in model.ops] == [key]
    assert key != square_key
    (op,) = model.ops
    assert OpSpec.from_key(key) == op and OpSpec.from_key(key).key == key
    assert op.unsupported.startswith(WHAT[name] + ":")
    assert "\n" not in op.unsupported
    assert model.unsupported == {key: op.unsupported}


def test_legacy_keys_do_not_change():
    legacy = ["CONV_2D|in=56x56x24|out=56x56x144|k=1|s=1|pad=VALID|act=RELU",
              "DEPTHWISE_CONV_2D|in=16x16x8|out=8x8x8|k=3|s=2|pad=SAME|act=RELU",
              "AVERAGE_POOL_2D|in=16x16x8|out=8x8x8|k=2|s=2|pad=SAME", "MUL|in=8x8x16,cscalar|out=8x8x16",
              "FULLY_CONNECTED|in=64|out=10", "SOFTMAX|in=10|out=10"]
    for key in legacy:
        spec = OpSpec.from_key(key)
        assert spec.key == key and not spec.unsupported
    built = OpSpec("CONV_2D", ((16, 16, 8),), (16, 16, 16), 3, 1, "SAME", "RELU")
    assert built.key == "CONV_2D|in=16x16x8|out=16x16x16|k=3|s=1|pad=SAME|act=RELU"
    # a width and a horizontal stride equal to the height's are the square op, not another one
    assert OpSpec("CONV_2D", ((16, 16, 8),), (16, 16, 16), 3, 1, "SAME", "RELU", kernel_w=3, stride_w=1) == built
    # a 1x1 window pads nothing, a 1x7 one does
    assert OpSpec("CONV_2D", ((8, 8, 4),), (8, 8, 4), 1, 1, "SAME").padding == "VALID"
    assert OpSpec("CONV_2D", ((8, 8, 4),), (8, 8, 4), 1, 1, "SAME", kernel_w=7).padding == "SAME"


def test_rectangular_kernel_counts_its_whole_window(files):
    (op,) = decompose(files["rect_1x7"]).ops
    assert op.kernel_hw == (1, 7)
    assert op.macs == 16 * 16 * 8 * 7 * 3
    assert op.params == 7 * 3 * 8 + 8


@pytest.mark.parametrize("name", ["rect_1x7", "dilated", "maxpool_stride_2x1"])
def test_no_microbenchmark_is_built_for_an_irregular_window(name, files):
    from latprof.convert import microbenchmark

    (op,) = decompose(files[name]).ops
    with pytest.raises(LatprofError, match="no microbenchmark generator") as caught:
        microbenchmark(op, "float32")
    assert WHAT[name] in str(caught.value) and op.key in str(caught.value)


def test_prediction_reports_irregular_ops_missing_not_a_square_ops_number(files):
    """The LUT holds the square ops each irregular one used to be keyed as: the old code priced the
    1x7 kernel as that 1x1 conv.  Now each is missing, with its reason."""
    lut = _lut({**{square: 50.0 for _, _, square in CASES.values()}, SQUARE_KEY: 40.0})
    control = predict(str(files["square"]), lut)
    assert control.latency_ms == pytest.approx(0.04) and not control.missing
    for name, (_, key, _) in CASES.items():
        result = predict(str(files[name]), lut)
        assert result.latency_ms is None, name
        assert result.missing == [key]
        assert result.to_dict()["unsupported"] == {key: decompose(files[name]).ops[0].unsupported}
    assert "unsupported" not in control.to_dict()


def _convs(count: int) -> list[OpSpec]:
    rng = np.random.default_rng(0)
    specs = []
    for _ in range(count):
        size, c_in, c_out = (int(rng.choice(v)) for v in ((8, 16, 32), (8, 16, 24, 32), (8, 16, 32, 48)))
        kernel = int(rng.choice((1, 3, 5)))
        specs.append(OpSpec("CONV_2D", ((size, size, c_in),), (size, size, c_out), kernel, 1, "SAME"))
    return sorted(set(specs))


def test_predictor_does_not_estimate_an_irregular_window(files):
    regular = _convs(80)
    cost = [2.0 + spec.macs / 1e4 for spec in regular]
    model = LatencyPredictor(n_estimators=20, overhead_us=2.0).fit(regular, cost)
    (rect,) = decompose(files["rect_1x7"]).ops
    (square,) = decompose(files["square"]).ops
    estimates = model.predict([rect, square])
    assert np.isnan(estimates[0]) and np.isfinite(estimates[1])
    # an irregular row in the training data (a LUT timed in networks) is left out, not learned as square
    polluted = LatencyPredictor(n_estimators=20, overhead_us=2.0).fit([*regular, rect], [*cost, 1e6])
    np.testing.assert_allclose(polluted.predict(regular), model.predict(regular))
    # and with the predictor the prediction of the file is still missing, not a number
    result = predict(str(files["rect_1x7"]), _lut({SQUARE_KEY: 40.0}), model)
    assert result.latency_ms is None and result.predicted_ops == 0 and result.missing == [rect.key]
    assert math.isfinite(predict(str(files["square"]), _lut({"ADD|in=4x4x8,4x4x8|out=4x4x8": 3.0}), model).latency_ms)


def _latprof() -> str:
    found = shutil.which("latprof", path=os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))
    assert found, "the latprof console script is not installed (pip install -e .)"
    return found


def test_cli_predict_says_missing_and_exits_nonzero(files, tmp_path):
    lut_path = tmp_path / "lut.json"
    _lut({**{square: 50.0 for _, _, square in CASES.values()}, SQUARE_KEY: 40.0}).save(lut_path)
    env = {**os.environ, "LATPROF_CACHE": str(tmp_path / "cache")}
    run = [_latprof(), "predict", str(files["rect_1x7"]), str(files["square"]), "--lut", str(lut_path)]
    done = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"{files['rect_1x7']}: incomplete, 1 of 1 ops") for line in lines), done.stdout
    assert f"  missing {CASES['rect_1x7'][1]}" in lines
    assert any(line.startswith(f"{files['square']}: 0.040 ms") for line in lines), done.stdout
    as_json = subprocess.run([*run, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert as_json.returncode == 1 and "Traceback" not in as_json.stderr
    rect, square = json.loads(as_json.stdout)
    assert rect["latency_ms"] is None and rect["missing"] == [CASES["rect_1x7"][1]]
    assert rect["unsupported"][CASES["rect_1x7"][1]].startswith("CONV_2D with a 1x7 kernel:")
    assert square["latency_ms"] == pytest.approx(0.04)
