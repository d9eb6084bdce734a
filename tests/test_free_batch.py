"""Models converted as Keras converts by default, with a free batch dimension: each reshape
computes its target shape at run time (SHAPE, STRIDED_SLICE and PACK, then a RESHAPE that reads
the result), ops XNNPACK does not take, so LiteRT's interpreter runs them between XNNPACK's
partitions.  They decompose into keys of their own, are timed inside the network like every other
op, and are predicted from LUT rows of their kind.

Self-contained (a temporary folder is all it needs): one small network converted with
tf.lite.TFLiteConverter.from_keras_model, profiled by LiteRT for real.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latprof.attribution import INTERPRETER_NAME, attribute
from latprof.errors import LatprofError
from latprof.lut import LUT
from latprof.measurement import Provenance
from latprof.ops import OpSpec
from latprof.predict import predict_ops
from latprof.predictor import FLOOR_US, LatencyPredictor, fit_predictor
from latprof.tflite_file import decompose

# The network below, op by op: a squeeze-excite block whose vector is reshaped to 1x1x8 (as
# EfficientNet's are), a concatenation, and a Flatten head (as MobileNetV1's and V3's).
KEYS = [
    "CONV_2D|in=16x16x3|out=8x8x8|k=3|s=2|pad=SAME|act=RELU",
    "MEAN|in=8x8x8|out=8",
    "SHAPE|in=8|out=2",
    "STRIDED_SLICE|in=2|out=scalar",
    "PACK|in=scalar,cscalar,cscalar,cscalar|out=4",
    "RESHAPE|in=8,4|out=1x1x8",
    "CONV_2D|in=1x1x8|out=1x1x8|k=1|s=1|pad=VALID",
    "MUL|in=8x8x8,1x1x8|out=8x8x8",
    "CONCATENATION|in=8x8x8,8x8x8|out=8x8x16",
    "SHAPE|in=8x8x16|out=4",
    "STRIDED_SLICE|in=4|out=scalar",
    "PACK|in=scalar,cscalar|out=2",
    "RESHAPE|in=8x8x16,2|out=1024",
    "FULLY_CONNECTED|in=1024|out=10",
    "SOFTMAX|in=10|out=10",
]
SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE")
OVERHEAD_US = 0.5
PROVENANCE = Provenance("test-device", "test-cpu", "test-runtime", "0" * 64, 1, "xnnpack", "float32",
                        "in-network/1 (test)")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The network with Keras' default input (batch None), converted the way Keras documents."""
    import keras
    import tensorflow as tf
    from keras import layers as kl

    from latprof.native import quiet_native_output

    inputs = keras.Input((16, 16, 3))
    x = kl.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    gate = kl.Reshape((1, 1, 8))(kl.GlobalAveragePooling2D()(x))
    x = kl.Multiply()([x, kl.Conv2D(8, 1)(gate)])
    x = kl.Concatenate()([x, x])
    outputs = kl.Dense(10, activation="softmax")(kl.Flatten()(x))
    with quiet_native_output():
        data = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs)).convert()
    path = tmp_path_factory.mktemp("free_batch") / "se_flatten.tflite"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def profiled(model_file) -> tuple[list[OpSpec], list[list[tuple[str, float]]]]:
    """The model's ops and three runs' operators, from LiteRT's profiler."""
    from latprof.litert_profiler import ProfiledModel

    with ProfiledModel(model_file) as model:
        model.run()
        runs = model.operator_times(3)
    return list(decompose(model_file).ops), runs


def _lut(keys_us: dict[str, float]) -> LUT:
    rows = [{"key": key, "op": key.split("|")[0], "latency_us": us, "median_us": us, "p5_us": us, "p95_us": us,
             "runs": 3} for key, us in keys_us.items()]
    return LUT(provenance=PROVENANCE, table=pd.DataFrame(rows).set_index("key"), overhead_us=OVERHEAD_US)


def test_the_model_has_a_free_batch_dimension(model_file):
    from ai_edge_litert.interpreter import Interpreter

    (detail,) = Interpreter(model_path=str(model_file)).get_input_details()
    assert list(detail["shape_signature"]) == [-1, 16, 16, 3] and list(detail["shape"]) == [1, 16, 16, 3]


def test_decompose_gives_shape_ops_keys_of_their_own(model_file):
    ops = decompose(model_file).ops
    assert [op.key for op in ops] == KEYS
    assert all(OpSpec.from_key(op.key) == op for op in ops)
    # The RESHAPE reads its shape at run time: an input of its key, unlike a batch-1 model's.
    assert [op.inputs for op in ops if op.op == "RESHAPE"] == [((8,), (4,)), ((8, 8, 16), (2,))]


def test_profiler_reports_the_interpreters_ops_by_name(profiled):
    ops, runs = profiled
    assert len(runs) == 3  # a model with a signature def opens its runs with "Invoke" only
    for run in runs:
        assert [name for name, _ in run if INTERPRETER_NAME.fullmatch(name)] == [*SHAPE_OPS, *SHAPE_OPS]
        assert all(time >= 0 for _, time in run)


def test_attribute_times_every_op_shape_ops_included(profiled):
    ops, runs = profiled
    shape_positions = [i for i, op in enumerate(ops) if op.op in SHAPE_OPS]
    assert len(shape_positions) == 8
    for run in runs:
        times = attribute(ops, run, "se_flatten.tflite")
        assert len(times) == len(ops)
        assert sum(times) == pytest.approx(sum(time for _, time in run))  # every operator's time is an op's
        interpreter = [time for name, time in run if INTERPRETER_NAME.fullmatch(name)]
        assert [times[i] for i in shape_positions] == interpreter


def test_concatenation_runs_as_an_xnnpack_copy():
    shape = (4, 4, 8)
    ops = [OpSpec("CONV_2D", (shape,), shape, 1, 1, "VALID"), OpSpec("CONCATENATION", (shape, shape), (4, 4, 16)),
           OpSpec("FULLY_CONNECTED", ((256,),), (10,))]
    operators = [("Fully Connected (NC, F32) GEMM", 3.0), ("Copy (NC, X32)", 1.0), ("Static Reshape (NC)", 0.5),
                 ("Fully Connected (NC, F32) GEMM", 2.0)]
    assert attribute(ops, operators) == [3.0, 1.0, 2.5]


def test_ops_run_out_of_the_models_order_are_refused_not_misattributed():
    """Two branches, each flattened: LiteRT runs both convolutions (one XNNPACK partition) before
    the first branch's shape ops, so the operator where the SHAPE should be is a convolution."""
    keys = ["CONV_2D|in=8x8x4|out=8x8x4|k=1|s=1|pad=VALID", "SHAPE|in=8x8x4|out=4", "STRIDED_SLICE|in=4|out=scalar",
            "PACK|in=scalar,cscalar|out=2", "RESHAPE|in=8x8x4,2|out=256", "CONV_2D|in=8x8x4|out=8x8x2|k=1|s=1|pad=VALID",
            "RESHAPE|in=8x8x2|out=128", "CONCATENATION|in=256,128|out=384"]
    operators = [("Fully Connected (NC, F32) GEMM", 1.0), ("Fully Connected (NC, F32) GEMM", 1.0), ("SHAPE", 0.0),
                 ("STRIDED_SLICE", 1.0), ("PACK", 2.0), ("RESHAPE", 1.0), ("Static Reshape (NC)", 0.0),
                 ("Copy (NC, X32)", 0.0)]
    with pytest.raises(LatprofError, match=r"op 1 \(SHAPE\) ran as 'Fully Connected.*another order.*--method isolated"):
        attribute([OpSpec.from_key(key) for key in keys], operators, "branches.tflite")


def test_shape_only_op_types_are_predicted_as_their_median():
    """What SHAPE, STRIDED_SLICE and PACK take does not follow their sizes: an op of such a type
    gets the median of its type's rows, whatever its sizes; other types still scale."""
    rows = {"SHAPE|in=8|out=2": 1.0, "SHAPE|in=1x1x1000|out=4": 2.0, "SHAPE|in=96|out=2": 7.0,
            "PACK|in=scalar,cscalar|out=2": 3.0, "ADD|in=8x8x8,8x8x8|out=8x8x8": 1.0,
            "ADD|in=32x32x8,32x32x8|out=32x32x8": 16.0}
    model = LatencyPredictor(overhead_us=OVERHEAD_US).fit(list(rows), [us + OVERHEAD_US for us in rows.values()])
    shape, pack, add, gather = model.predict(["SHAPE|in=7x7x576|out=4", "PACK|in=scalar,cscalar,cscalar|out=3",
                                              "ADD|in=16x16x8,16x16x8|out=16x16x8", "GATHER|in=10,scalar|out=scalar"])
    assert shape == pytest.approx(2.0 + OVERHEAD_US) and pack == pytest.approx(3.0 + OVERHEAD_US)
    assert 1.0 + OVERHEAD_US < add < 16.0 + OVERHEAD_US
    assert math.isnan(gather)  # a type it never saw stays unknown


def test_a_lut_of_profiled_rows_predicts_the_shape_ops_it_lacks(profiled):
    """A LUT built from the profiled network lacks one of its shape ops; a predictor trained on it
    fills that op in from the rows of its type, and the network gets a latency."""
    ops, runs = profiled
    times = np.median([attribute(ops, run) for run in runs], axis=0)
    rows = {op.key: float(time) + OVERHEAD_US for op, time in zip(ops, times)}
    lacking = "PACK|in=scalar,cscalar|out=2"
    lut = _lut({key: us for key, us in rows.items() if key != lacking})
    assert predict_ops("se_flatten", ops, lut).missing == [lacking]
    predictor = fit_predictor(lut)
    assert {"SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"} <= set(predictor.op_types_)
    prediction = predict_ops("se_flatten", ops, lut, predictor)
    assert prediction.missing == [] and prediction.predicted_ops == 1 and prediction.latency_ms is not None
    (estimate,) = predictor.predict([lacking])
    other = rows["PACK|in=scalar,cscalar,cscalar,cscalar|out=4"]  # the type's one row (a 0 us time: the floor)
    assert estimate == pytest.approx(max(other, OVERHEAD_US + FLOOR_US))
