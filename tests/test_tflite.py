"""The .tflite side: what latprof predicts a network converts to is what the converter writes, any
model decomposes, microbenchmarks hold exactly their op, and broken files are refused clearly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from latprof.arch import Architecture
from latprof.errors import LatprofError
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.space import SearchSpace
from latprof.tflite_file import decompose, decompose_bytes

# Two small architectures that use every choice of the space: regular convs, pool shortcuts
# (with and without stride), SE, identity and no shortcut.
SEARCH_CHOICES = [
    "res128_w0.5:r1_k3_s11_e1_i32_o16_conv,r2_k5_s22_e3_i16_o24_poolskip_se0.25,"
    "r2_k3_s11_e1_i24_o24_conv_poolskip,r1_k3_s22_e6_i24_o40_noskip",
    "res96_w1.0:r1_k5_s11_e1_i32_o32_conv_poolskip,r2_k3_s22_e6_i32_o32_poolskip,"
    "r2_k3_s11_e3_i32_o48_se0.25,r1_k5_s22_e1_i48_o48_conv_se0.25_poolskip",
]


def convert_arch(text: str, folder: Path) -> Path:
    from latprof.builder import build_model
    from latprof.convert import convert_keras

    path = folder / "model.tflite"
    path.write_bytes(convert_keras(build_model(Architecture.from_string(text))))
    return path


@pytest.fixture(scope="module")
def a1_file(tmp_path_factory) -> Path:
    return convert_arch("mnasnet-a1", tmp_path_factory.mktemp("a1"))


def _assert_same_ops(arch: Architecture, path: Path) -> None:
    expected = Counter(op.key for op in Network(arch).ops)
    found = Counter(op.key for op in decompose(path).ops)
    assert found == expected, (f"converter wrote ops latprof does not predict: {dict(found - expected)}; "
                               f"latprof predicts ops the converter did not write: {dict(expected - found)}")


def test_mnasnet_a1_converts_to_the_predicted_ops(a1_file):
    arch = Architecture.from_string("mnasnet-a1")
    _assert_same_ops(arch, a1_file)
    model = decompose(a1_file)
    assert model.dtype == "float32"
    assert {"LOGISTIC", "MUL", "MEAN"} <= {op.op for op in model.ops}
    # execution order too, not only the multiset
    assert [op.key for op in model.ops][0] == Network(arch).ops[0].key
    assert [op.op for op in model.ops][-3:] == ["MEAN", "FULLY_CONNECTED", "SOFTMAX"]


@pytest.mark.parametrize("text", SEARCH_CHOICES)
def test_search_space_choices_convert_to_the_predicted_ops(text, tmp_path):
    arch = Architecture.from_string(text)
    blocks = [block.to_string() for block in arch.blocks]
    assert any("poolskip" in b for b in blocks) and any("conv" in b for b in blocks)
    kinds = {op.op for op in Network(arch).ops}
    assert {"AVERAGE_POOL_2D", "ADD", "LOGISTIC"} <= kinds
    _assert_same_ops(arch, convert_arch(text, tmp_path))


def test_foreign_keras_application_decomposes(tmp_path):
    """A model latprof never built: keras.applications.MobileNetV2."""
    import keras

    from latprof.convert import convert_keras

    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35)
    path = tmp_path / "mobilenetv2_keras.tflite"
    path.write_bytes(convert_keras(model))
    ops = decompose(path).ops
    kinds = Counter((op.op, op.activation) for op in ops)
    names = {op.op for op in ops}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= names
    assert kinds[("CONV_2D", "RELU6")] > 0 and kinds[("DEPTHWISE_CONV_2D", "RELU6")] == 17
    assert kinds[("ADD", "NONE")] == 10
    # Keras pads explicitly before its four stride-2 depthwise convs.  Either the PAD ops survive
    # or the converter folds them into SAME padding: the decomposition must show one of the two.
    strided = [op for op in ops if op.op == "DEPTHWISE_CONV_2D" and op.stride == 2]
    assert len(strided) == 4
    pads = [op for op in ops if op.op == "PAD"]
    assert len(pads) == 4 or all(op.padding == "SAME" for op in strided)
    assert ops[0].inputs == ((96, 96, 3),) and ops[-1].output == (1000,)
    for op in ops:
        assert OpSpec.from_key(op.key) == op


MICROBENCHMARKS = [
    OpSpec("CONV_2D", ((16, 16, 8),), (16, 16, 16), 3, 1, "SAME", "RELU"),
    OpSpec("CONV_2D", ((8, 8, 16),), (8, 8, 24), 1, 1, "VALID", "NONE"),
    OpSpec("DEPTHWISE_CONV_2D", ((16, 16, 8),), (8, 8, 8), 3, 2, "SAME", "RELU"),
    OpSpec("DEPTHWISE_CONV_2D", ((15, 15, 8),), (8, 8, 8), 5, 2, "SAME", "RELU"),
    OpSpec("MEAN", ((8, 8, 16),), (1, 1, 16)),
    OpSpec("MEAN", ((8, 8, 16),), (16,)),
    OpSpec("MUL", ((8, 8, 16), (1, 1, 16)), (8, 8, 16)),
    OpSpec("LOGISTIC", ((1, 1, 16),), (1, 1, 16)),
    OpSpec("ADD", ((8, 8, 16), (8, 8, 16)), (8, 8, 16)),
    OpSpec("AVERAGE_POOL_2D", ((16, 16, 8),), (8, 8, 8), 2, 2, "SAME"),
    OpSpec("AVERAGE_POOL_2D", ((16, 16, 8),), (16, 16, 8), 3, 1, "SAME"),
    OpSpec("FULLY_CONNECTED", ((64,),), (10,)),
    OpSpec("SOFTMAX", ((10,),), (10,)),
    OpSpec("PAD", ((15, 15, 8),), (17, 17, 8)),
    OpSpec.from_key("MUL|in=8x8x16,cscalar|out=8x8x16"),  # hard-swish pieces of MobileNetV3
    OpSpec("ADD", ((4, 4, 8), (8,)), (4, 4, 8), const_inputs=(1,)),
]


@pytest.mark.parametrize("spec", MICROBENCHMARKS, ids=lambda spec: spec.key)
def test_microbenchmark_holds_exactly_its_op(spec, tmp_path):
    from latprof.convert import microbenchmark

    data = microbenchmark(spec, "float32")
    path = tmp_path / "op.tflite"
    path.write_bytes(data)
    model = decompose(path)
    assert list(model.ops) == [spec]
    assert model.dtype == "float32"


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")
def test_int8_microbenchmark(tmp_path):
    from latprof.convert import microbenchmark

    spec = MICROBENCHMARKS[0]
    path = tmp_path / "op_int8.tflite"
    path.write_bytes(microbenchmark(spec, "int8"))
    model = decompose(path)
    assert model.dtype == "int8"
    assert list(model.ops) == [spec]


def test_unknown_dtype_is_refused():
    from latprof.convert import microbenchmark

    with pytest.raises(LatprofError, match="dtype"):
        microbenchmark(MICROBENCHMARKS[0], "float16")


def test_op_without_generator_is_refused():
    from latprof.builder import build_op_model

    with pytest.raises(LatprofError, match="no microbenchmark generator"):
        build_op_model(OpSpec("GATHER", ((10, 4),), (3, 4)))
    with pytest.raises(LatprofError, match="constant operand"):
        build_op_model(OpSpec("DIV", ((4, 4, 8), (8,)), (4, 4, 8), const_inputs=(1,)))


def test_model_cache_paths_and_writes(tmp_path):
    from latprof.convert import ModelCache

    cache = ModelCache(tmp_path)
    spec, other = MICROBENCHMARKS[0], MICROBENCHMARKS[1]
    assert cache.path(spec, "float32") == cache.path(OpSpec.from_key(spec.key), "float32")
    assert cache.path(spec, "float32") != cache.path(spec, "int8")
    assert cache.path(spec, "float32") != cache.path(other, "float32")
    assert cache.missing([spec, other], "float32") == [spec, other]
    written = cache.write(spec, "float32", b"data")
    assert written == cache.path(spec, "float32") and written.read_bytes() == b"data"
    assert cache.missing([spec, other], "float32") == [other]
    assert not list(tmp_path.rglob("*.part"))


def test_truncated_file_is_refused(a1_file, tmp_path):
    data = a1_file.read_bytes()
    half = tmp_path / "half.tflite"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(LatprofError) as info:
        decompose(half)
    assert str(half) in str(info.value) and "\n" not in str(info.value)


def test_slightly_truncated_file_is_refused(tmp_path):
    from latprof.convert import microbenchmark

    data = microbenchmark(MICROBENCHMARKS[0], "float32")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[:-64])
    with pytest.raises(LatprofError):
        decompose(cut)


def test_text_file_is_refused(tmp_path):
    fake = tmp_path / "notes.tflite"
    fake.write_text("this is a text file, renamed\n" * 10)
    with pytest.raises(LatprofError, match="not a TFLite model"):
        decompose(fake)


def test_missing_and_empty_files_are_refused(tmp_path):
    with pytest.raises(LatprofError, match="no such model file"):
        decompose(tmp_path / "absent.tflite")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(LatprofError):
        decompose(empty)


def test_garbage_with_tflite_identifier_is_refused(tmp_path):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00\x00\x00\x00TFL3" + b"\xff" * 40)
    with pytest.raises(LatprofError, match="corrupt or truncated"):
        decompose(garbage)


def test_decompose_bytes_reads_converter_output(a1_file):
    model = decompose_bytes(a1_file.read_bytes(), "in-memory")
    assert model.path == "in-memory"
    assert list(model.ops) == list(decompose(a1_file).ops)


@pytest.mark.parametrize("name", ["mnasnet-a1", "mnasnet-small", "mobilenetv2:res96_w0.5"])
def test_op_key_round_trip_for_reference_networks(name):
    for op in Network(Architecture.from_string(name)).ops:
        assert OpSpec.from_key(op.key) == op
        assert OpSpec.from_key(op.key).key == op.key


def test_op_key_round_trip_for_sampled_networks():
    for arch in SearchSpace().sample_many(5, seed=5):
        for op in Network(arch).ops:
            assert OpSpec.from_key(op.key) == op


def test_op_key_details():
    const = OpSpec("ADD", ((4, 4, 8), (8,)), (4, 4, 8), const_inputs=(1,))
    assert const.key == "ADD|in=4x4x8,c8|out=4x4x8"
    assert OpSpec.from_key(const.key) == const
    # a 1x1 window pads nothing: SAME and VALID are one key
    same = OpSpec("CONV_2D", ((8, 8, 4),), (8, 8, 4), 1, 1, "SAME", "RELU")
    valid = OpSpec("CONV_2D", ((8, 8, 4),), (8, 8, 4), 1, 1, "VALID", "RELU")
    assert same == valid and same.key == valid.key
    for bad in ("", "conv|in=1|out=1", "CONV_2D|out=4", "CONV_2D|in=4"):
        with pytest.raises(LatprofError, match="not an op key"):
            OpSpec.from_key(bad)
