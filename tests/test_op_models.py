"""Float32 single-op models written without TensorFlow: they hold exactly their op, LiteRT runs
them, they match what the converter writes for the same op in everything that sets the op's
speed, and what they do not know still goes through the converter."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from latprof import op_models
from latprof.convert import ModelCache, ensure_models, microbenchmark
from latprof.errors import LatprofError
from latprof.kernels import sample_kernels
from latprof.native import quiet_native_output
from latprof.op_models import DESCRIPTION, op_model_bytes
from latprof.ops import OpSpec
from latprof.space import get_space
from latprof.tflite_file import decompose_bytes

# Forms neither the space nor the kernel sample holds.
EXTRA_KEYS = [
    "DEPTHWISE_CONV_2D|in=14x14x16|out=7x7x32|k=3|s=2|pad=SAME|act=RELU6",  # depth multiplier 2
    "DEPTHWISE_CONV_2D|in=9x9x8|out=5x5x8|k=5|s=1|pad=VALID",
    "CONV_2D|in=9x9x8|out=9x9x16|k=3|s=1|pad=SAME|act=RELU6",
    "FULLY_CONNECTED|in=64|out=10|act=RELU",
    "FULLY_CONNECTED|in=7x7x32|out=7x7x16|act=RELU6",  # keep_num_dims
    "MAX_POOL_2D|in=8x8x16|out=4x4x16|k=2|s=2|pad=VALID",
    "MAX_POOL_2D|in=7x7x16|out=4x4x16|k=3|s=2|pad=SAME",
    "ADD|in=6x6x8,cscalar|out=6x6x8|act=RELU6",  # hard-swish's x + 3, ReLU6 fused
    "MUL|in=6x6x8,cscalar|out=6x6x8",
    "SUB|in=6x6x8,c6x6x8|out=6x6x8",
    "MUL|in=6x6x8,c1x1x8|out=6x6x8|act=RELU",  # a constant whose key starts with a 1
    "SUB|in=cscalar,6x6x8|out=6x6x8",  # the constant first
    "ADD|in=6x6x8,1x1x8|out=6x6x8",
    "SUB|in=6x6x8,6x6x8|out=6x6x8",
    "RELU|in=6x6x8|out=6x6x8",
    "RELU6|in=6x6x8|out=6x6x8",
    "HARD_SWISH|in=6x6x8|out=6x6x8",
    "LOGISTIC|in=1x1x8|out=1x1x8",
    "SOFTMAX|in=10|out=10",
    "PAD|in=6x6x8|out=9x9x8",
    "RESHAPE|in=6x6x8|out=288",
    "CONCATENATION|in=6x6x8,6x6x4|out=6x6x12",
    "MEAN|in=6x6x8|out=1x1x8",
    "MEAN|in=6x6x8|out=8",
]

# Specs the converter makes too, compared field by field with its file.
CONVERTER_KEYS = [
    "CONV_2D|in=14x14x8|out=7x7x16|k=3|s=2|pad=SAME|act=RELU",
    "DEPTHWISE_CONV_2D|in=14x14x16|out=7x7x32|k=3|s=2|pad=SAME|act=RELU6",
    "FULLY_CONNECTED|in=7x7x32|out=7x7x16|act=RELU6",
    "FULLY_CONNECTED|in=64|out=10",
    "ADD|in=6x6x8,cscalar|out=6x6x8|act=RELU6",
    "MEAN|in=6x6x8|out=1x1x8",
    "PAD|in=6x6x8|out=9x9x8",
]

UNSUPPORTED_KEYS = {
    "TANH|in=6x6x8|out=6x6x8": "op TANH",
    "CONV_2D|in=14x14x8|out=14x8x16|k=1x7|s=1|pad=SAME": "1x7 kernel",
    "CONV_2D|in=14x14x8|out=7x7x16|k=3|s=2|pad=SAME|act=TANH": "activation TANH",
    "CONV_2D|in=14x14x8|out=9x9x16|k=3|s=2|pad=SAME": "output",
    "LOGISTIC|in=6x6x8|out=6x6x8|act=RELU": "no fused activation",
    "ADD|in=6x6x8,6x6x4|out=6x6x8": "broadcast",
    "MEAN|in=6x6x8|out=6x8": "mean",
    "RESHAPE|in=6x6x8,2|out=288": "2 inputs",
}


def _smallest_of_each_form(specs) -> list[OpSpec]:
    """One spec per op and option combination, the one of the fewest values (quick to load)."""
    forms: dict[tuple, OpSpec] = {}
    for spec in sorted(specs, key=lambda s: (s.params + sum(np.prod(x) for x in s.inputs), s.key)):
        form = (spec.op, spec.activation, spec.padding, spec.stride, spec.kernel, spec.const_inputs,
                len(spec.output), len(spec.inputs))
        forms.setdefault(form, spec)
    return list(forms.values())


SAMPLE = _smallest_of_each_form([*get_space("mnasnet").unique_ops(), *sample_kernels(200)]) + \
    [OpSpec.from_key(key) for key in EXTRA_KEYS]


def _interpreter(data: bytes):
    """LiteRT's interpreter with its default XNNPACK delegate, tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_native_output():
        interpreter = Interpreter(model_content=data)
        interpreter.allocate_tensors()
    return interpreter


def test_the_sample_covers_every_form():
    ops = {spec.op for spec in SAMPLE}
    assert ops == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "SUB", "MEAN", "AVERAGE_POOL_2D",
                   "MAX_POOL_2D", "LOGISTIC", "HARD_SWISH", "RELU", "RELU6", "SOFTMAX", "PAD", "RESHAPE",
                   "CONCATENATION"}
    assert {spec.activation for spec in SAMPLE} == {"NONE", "RELU", "RELU6"}
    assert {spec.padding for spec in SAMPLE if spec.kernel} == {"SAME", "VALID"}
    assert {spec.stride for spec in SAMPLE if spec.kernel} == {1, 2}


@pytest.mark.parametrize("spec", SAMPLE, ids=lambda spec: spec.key)
def test_direct_model_holds_its_op_and_runs(spec):
    data = op_model_bytes(spec)
    assert [op.key for op in decompose_bytes(data, spec.key).ops] == [spec.key]
    interpreter = _interpreter(data)
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], rng.standard_normal(detail["shape"]).astype(np.float32))
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert output.shape == (1, *spec.output) and output.dtype == np.float32
    assert np.isfinite(output).all()


def test_direct_models_are_the_same_every_time():
    spec = OpSpec.from_key(CONVERTER_KEYS[0])
    assert op_model_bytes(spec) == op_model_bytes(spec)


def _operator_view(data: bytes) -> dict:
    """What sets an op's speed in a one-op file: opcode and version, each operand's shape, type and
    constness in the operator's order, and the builtin options."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    (operator,) = graph.operators
    code = model.operatorCodes[operator.opcodeIndex]

    def tensor(index: int):
        if index < 0:
            return None
        t = graph.tensors[index]
        buffer = model.buffers[t.buffer]
        return (tuple(int(d) for d in t.shape), t.type, buffer.data is not None and len(buffer.data) > 0)

    options = operator.builtinOptions
    return {"opcode": (code.builtinCode, code.deprecatedBuiltinCode, code.version),
            "inputs": [tensor(i) for i in operator.inputs], "outputs": [tensor(i) for i in operator.outputs],
            "graph_inputs": [tensor(i) for i in graph.inputs], "graph_outputs": [tensor(i) for i in graph.outputs],
            "options_type": operator.builtinOptionsType, "options": None if options is None else vars(options)}


@pytest.mark.parametrize("key", CONVERTER_KEYS)
def test_direct_model_matches_the_converters(key):
    from latprof.builder import build_op_model
    from latprof.convert import convert_keras

    spec = OpSpec.from_key(key)
    direct, converted = op_model_bytes(spec), convert_keras(build_op_model(spec))
    assert [op.key for op in decompose_bytes(direct, key).ops] == [op.key for op in decompose_bytes(converted, key).ops]
    assert _operator_view(direct) == _operator_view(converted)
    # and LiteRT hands both to the same kernels (XNNPACK's delegate node, or none)
    assert [op["op_name"] for op in _interpreter(direct)._get_ops_details()] == \
        [op["op_name"] for op in _interpreter(converted)._get_ops_details()]


@pytest.mark.parametrize("key,reason", UNSUPPORTED_KEYS.items())
def test_unknown_forms_are_refused_in_one_line(key, reason):
    with pytest.raises(LatprofError, match="no direct float32 model for") as caught:
        op_model_bytes(OpSpec.from_key(key))
    message = str(caught.value)
    assert "\n" not in message and key in message and reason in message


def test_microbenchmark_converts_what_is_not_written_directly(monkeypatch):
    spec = OpSpec.from_key("ADD|in=6x6x8,cscalar|out=6x6x8|act=RELU6")
    assert schema.ModelT.InitFromPackedBuf(microbenchmark(spec, "float32"), 0).description.decode() == DESCRIPTION

    def refuse(spec):
        raise LatprofError(f"no direct float32 model for {spec.key} (refused by the test)")

    monkeypatch.setattr(op_models, "op_model_bytes", refuse)
    data = microbenchmark(spec, "float32")
    assert schema.ModelT.InitFromPackedBuf(data, 0).description.decode() != DESCRIPTION
    assert [op.key for op in decompose_bytes(data, spec.key).ops] == [spec.key]


def test_int8_microbenchmarks_are_always_converted(monkeypatch):
    def fail(spec):
        raise AssertionError("an int8 model must not be written directly")

    monkeypatch.setattr(op_models, "op_model_bytes", fail)
    spec = OpSpec.from_key("ADD|in=6x6x8,6x6x8|out=6x6x8")
    model = decompose_bytes(microbenchmark(spec, "int8"), spec.key)
    assert model.dtype == "int8" and spec.key in [op.key for op in model.ops]


def test_ensure_models_writes_directly_and_reports_what_neither_way_makes(tmp_path):
    cache = ModelCache(tmp_path)
    specs = [OpSpec.from_key(key) for key in EXTRA_KEYS[:4]]
    tanh = OpSpec.from_key("TANH|in=6x6x8|out=6x6x8")
    seen: list[int] = []
    failed = ensure_models([*specs, tanh], "float32", cache, workers=1, progress=seen.append)
    assert list(failed) == [tanh] and "TANH" in failed[tanh]
    for spec in specs:
        data = cache.path(spec, "float32").read_bytes()
        assert schema.ModelT.InitFromPackedBuf(data, 0).description.decode() == DESCRIPTION
    assert seen[-1] == len(specs) + 1
