"""Float32 single-op models written directly as TFLite flatbuffers, without TensorFlow.

TensorFlow's converter takes 0.5 to 1.4 s per single-op model, over half an hour for the 7,742
ops of the MnasNet space; writing the flatbuffer with LiteRT's schema takes milliseconds.  The
file is what the converter writes for the Keras model ``latprof.builder.build_op_model`` makes:
the same tensors with the same shapes and types, the weights in the converter's layouts, the same
builtin options and operator version, so the runtime runs the same kernel on the same data sizes.
What cannot change the op's speed is left out or differs: tensor names, the converter's metadata,
the weights' values (seeded random numbers).

Forms this module does not know raise LatprofError; ``latprof.convert.microbenchmark`` then
converts the Keras model, as it always does for int8.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from latprof.errors import LatprofError
from latprof.network import same_out
from latprof.ops import OpSpec, Shape

DESCRIPTION = "latprof.op_models"  # the model's description: which files were written here
_T = TypeVar("_T")
_FUSED = {"NONE": schema.ActivationFunctionType.NONE, "RELU": schema.ActivationFunctionType.RELU,
          "RELU6": schema.ActivationFunctionType.RELU6}
_PADDING = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}
_BINARY = {"ADD": schema.AddOptionsT, "SUB": schema.SubOptionsT, "MUL": schema.MulOptionsT}
_UNARY = ("LOGISTIC", "RELU", "RELU6", "HARD_SWISH")
_BUFFER_ALIGN = 16  # the schema's force_align for buffer data, which the converter honours


class _AlignedBuffer(schema.BufferT):
    """A constant's buffer whose bytes start on a 16-byte boundary, as the converter writes them;
    the generated ``BufferT.Pack`` aligns a byte vector to one byte only."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data = bytes(self.data)
        builder.StartVector(1, len(data), _BUFFER_ALIGN)
        builder.head -= len(data)
        builder.Bytes[builder.head:builder.head + len(data)] = data
        vector = builder.EndVector()
        schema.BufferStart(builder)
        schema.BufferAddData(builder, vector)
        return schema.BufferEnd(builder)


@dataclass
class _Graph:
    """The tensors and buffers of a one-op subgraph: each tensor has a buffer of its own, empty
    unless the tensor is constant, after the empty buffer 0 every TFLite model starts with."""

    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    tensors: list[schema.TensorT] = field(default_factory=list)
    buffers: list[schema.BufferT] = field(default_factory=lambda: [schema.BufferT()])

    def _add(self, shape: Shape, buffer: schema.BufferT, kind: int = schema.TensorType.FLOAT32) -> int:
        tensor = schema.TensorT()
        tensor.shape, tensor.type, tensor.hasRank = list(shape), kind, True
        tensor.buffer, tensor.name = len(self.buffers), f"t{len(self.tensors)}"
        self.buffers.append(buffer)
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def activation(self, shape: Shape) -> int:
        """A tensor the op reads or writes at run time, with the batch of one in front."""
        return self._add((1, *shape), schema.BufferT())

    def weights(self, shape: Shape, fan_in: int) -> int:
        """Random float32 constants, uniform of variance 1 / fan_in as Keras initializes them: the
        values do not change a float kernel's speed, but NaNs and denormals could."""
        limit = np.float32(math.sqrt(3 / max(1, fan_in)))
        return self.constant((self.rng.random(shape, dtype=np.float32) * 2 - 1) * limit)

    def constant(self, values: np.ndarray) -> int:
        """A constant tensor (float32 or int32) holding ``values``."""
        buffer = _AlignedBuffer()
        buffer.data = values.astype(values.dtype.newbyteorder("<")).tobytes()
        kind = schema.TensorType.INT32 if values.dtype == np.int32 else schema.TensorType.FLOAT32
        return self._add(values.shape, buffer, kind)


@dataclass
class _Op:
    """What an op form adds to the graph: its input tensors in the operator's order (-1 for an
    absent optional input), its builtin options and its operator version."""

    inputs: list[int]
    options: object | None = None
    version: int = 1


def _refuse(spec: OpSpec, reason: str) -> LatprofError:
    return LatprofError(f"no direct float32 model for {spec.key} ({reason})")


def _require(condition: bool, spec: OpSpec, reason: str) -> None:
    if not condition:
        raise _refuse(spec, reason)


def _window_size(size: int, kernel: int, stride: int, padding: str) -> int:
    return same_out(size, stride) if padding == "SAME" else max(0, (size - kernel) // stride + 1)


def _check_window(spec: OpSpec) -> None:
    """A window op maps one H x W x C map to another whose size the window determines; the file
    must say so, since the runtime would silently resize an output the options contradict."""
    _require(len(spec.inputs) == 1 and len(spec.inputs[0]) == 3 and len(spec.output) == 3, spec,
             "a window op on anything but one H x W x C map")
    _require(spec.padding in _PADDING and spec.kernel > 0 and spec.stride > 0, spec, "no window")
    (h, w, _), (oh, ow, _) = spec.inputs[0], spec.output
    expected = tuple(_window_size(n, spec.kernel, spec.stride, spec.padding) for n in (h, w))
    _require(expected == (oh, ow) and oh > 0, spec, f"the window gives a {expected[0]}x{expected[1]} output")


def _window_options(options: _T, spec: OpSpec) -> _T:
    """Padding and strides, which convolution and pooling options share."""
    options.padding, options.strideH, options.strideW = _PADDING[spec.padding], spec.stride, spec.stride
    return options


def _conv(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    """Filter [out, kh, kw, in] and bias [out], as the converter lays out a Conv2D."""
    _check_window(spec)
    c_in, c_out, k = spec.inputs[0][-1], spec.output[-1], spec.kernel
    weights = graph.weights((c_out, k, k, c_in), k * k * c_in)
    bias = graph.weights((c_out,), k * k * c_in)
    return _Op([*inputs, weights, bias], _window_options(schema.Conv2DOptionsT(), spec))


def _depthwise(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    """Filter [1, kh, kw, out] and bias [out]; out is a multiple of in (the depth multiplier)."""
    _check_window(spec)
    c_in, c_out, k = spec.inputs[0][-1], spec.output[-1], spec.kernel
    _require(c_out % c_in == 0, spec, "output channels not a multiple of the input's")
    weights = graph.weights((1, k, k, c_out), k * k)
    bias = graph.weights((c_out,), k * k)
    options = _window_options(schema.DepthwiseConv2DOptionsT(), spec)
    options.depthMultiplier = c_out // c_in
    return _Op([*inputs, weights, bias], options)


def _pool(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    _check_window(spec)
    _require(spec.inputs[0][-1] == spec.output[-1], spec, "a pool that changes the channels")
    options = _window_options(schema.Pool2DOptionsT(), spec)
    options.filterHeight = options.filterWidth = spec.kernel
    return _Op(inputs, options)


def _fully_connected(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    """Weights [out, in] and no bias, as the converter writes the builder's Dense layer (whose bias
    is zero).  On more than one dimension the converter keeps the leading ones (keep_num_dims),
    which takes operator version 5."""
    (shape,), out = spec.inputs, spec.output
    _require(shape[:-1] == out[:-1] and len(out) == len(shape), spec,
             "an output whose leading dimensions are not the input's")
    options = schema.FullyConnectedOptionsT()
    options.keepNumDims = len(shape) > 1
    return _Op([*inputs, graph.weights((out[-1], shape[-1]), shape[-1]), -1], options, 5 if options.keepNumDims else 1)


def _mean(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    """Global average pooling: the mean over H and W (axis constant [1, 2], int32), keeping them
    as 1x1 or not."""
    (shape,), out = spec.inputs, spec.output
    _require(len(shape) == 3 and out in ((1, 1, shape[-1]), (shape[-1],)), spec,
             "a mean over anything but the height and width of a map")
    options = schema.ReducerOptionsT()
    options.keepDims = len(out) == 3
    return _Op([*inputs, graph.constant(np.array([1, 2], dtype=np.int32))], options)


def _pad(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    """Zero padding of a map's height and width, the odd row or column after (as Keras splits
    it); paddings int32 [4, 2]."""
    (shape,), out = spec.inputs, spec.output
    _require(len(shape) == 3 == len(out) and out[2] == shape[2] and out[0] >= shape[0] and out[1] >= shape[1], spec,
             "padding of anything but a map's height and width")
    grow = (0, out[0] - shape[0], out[1] - shape[1], 0)
    paddings = np.array([[d // 2, d - d // 2] for d in grow], dtype=np.int32)
    return _Op([*inputs, graph.constant(paddings)], schema.PadOptionsT())


def _reshape(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    """The new shape as an int32 constant input, and no options, as the converter writes it."""
    _require(math.prod(spec.inputs[0]) == math.prod(spec.output), spec, "a reshape that changes the size")
    return _Op([*inputs, graph.constant(np.array((1, *spec.output), dtype=np.int32))])


def _concatenation(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    out = spec.output
    _require(len(spec.inputs) >= 2 and all(s[:-1] == out[:-1] and len(s) == len(out) for s in spec.inputs)
             and sum(s[-1] for s in spec.inputs) == out[-1], spec, "not a concatenation along the last axis")
    options = schema.ConcatenationOptionsT()
    options.axis = -1
    return _Op(inputs, options)


def _binary(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
    """Two operands, broadcast as numpy does; a constant one is written with the shape its key
    gives (a batch of one in front only where the key's shape starts with a 1 of its own)."""
    _require(len(spec.inputs) == 2 and len(spec.activation_inputs) >= 1, spec,
             "not two operands of which at least one is an activation")
    try:
        shape = np.broadcast_shapes(*(graph.tensors[i].shape for i in inputs))
    except ValueError:
        shape = None
    _require(shape == (1, *spec.output), spec, "operands that do not broadcast to the output")
    return _Op(inputs, _BINARY[spec.op]())


def _same_shape(options: Callable[[], object | None]) -> Callable[[OpSpec, _Graph, list[int]], _Op]:
    """An op of one input whose output has the input's shape (activations, softmax)."""

    def make(spec: OpSpec, graph: _Graph, inputs: list[int]) -> _Op:
        _require(spec.inputs == (spec.output,), spec, "an output of another shape than the input")
        return _Op(inputs, options())

    return make


def _softmax_options() -> schema.SoftmaxOptionsT:
    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    return options


_FORMS: dict[str, Callable[[OpSpec, _Graph, list[int]], _Op]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool,
    "FULLY_CONNECTED": _fully_connected, "MEAN": _mean, "PAD": _pad, "RESHAPE": _reshape,
    "CONCATENATION": _concatenation, "SOFTMAX": _same_shape(_softmax_options),
    **{op: _binary for op in _BINARY}, **{op: _same_shape(lambda: None) for op in _UNARY},
}


def _constant_shape(shape: Shape) -> Shape:
    """The tensor shape of a constant operand that decomposes back to ``shape``: the reader drops
    a leading 1 of a tensor of two or more dimensions as the batch."""
    return (1, *shape) if len(shape) > 1 and shape[0] == 1 else shape


def _check_spec(spec: OpSpec) -> None:
    """What no form handles: windows latprof does not build, other activations, constant operands
    outside the binary ops, several inputs to an op of one (a reshape to a computed shape), scalar
    activations (a tensor of one value that reads back as 1)."""
    _require(spec.op in _FORMS, spec, f"op {spec.op}")
    _require(not spec.unsupported, spec, spec.unsupported)
    _require(spec.activation in _FUSED, spec, f"activation {spec.activation}")
    _require(not spec.const_inputs or spec.op in _BINARY, spec, "constant operand")
    _require(len(spec.inputs) == 1 or spec.op in (*_BINARY, "CONCATENATION"), spec, f"{len(spec.inputs)} inputs")
    _require(all(spec.activation_inputs) and spec.output, spec, "a scalar activation")


def _operator(spec: OpSpec, op: _Op, output: int) -> schema.OperatorT:
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, op.inputs, [output]
    if op.options is not None:
        operator.builtinOptionsType = getattr(schema.BuiltinOptions, type(op.options).__name__.removesuffix("T"))
        operator.builtinOptions = op.options
    if spec.activation != "NONE":
        _require(hasattr(op.options, "fusedActivationFunction"), spec, f"{spec.op} has no fused activation")
        op.options.fusedActivationFunction = _FUSED[spec.activation]
    return operator


def _model(spec: OpSpec, graph: _Graph, operator: schema.OperatorT, inputs: list[int], version: int) -> schema.ModelT:
    code = schema.OperatorCodeT()
    code.builtinCode = getattr(schema.BuiltinOperator, spec.op)
    code.deprecatedBuiltinCode = min(code.builtinCode, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = version
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators, subgraph.name = graph.tensors, [operator], "main"
    subgraph.inputs, subgraph.outputs = inputs, operator.outputs
    model = schema.ModelT()
    model.version, model.description = 3, DESCRIPTION
    model.operatorCodes, model.subgraphs, model.buffers = [code], [subgraph], graph.buffers
    return model


def op_model_bytes(spec: OpSpec) -> bytes:
    """The float32 .tflite holding exactly ``spec``'s op; raises LatprofError (one line) for forms
    it does not know, which the converter may still make."""
    _check_spec(spec)
    graph = _Graph()
    inputs = [graph.weights(_constant_shape(shape), 1)
              if i in spec.const_inputs else graph.activation(shape) for i, shape in enumerate(spec.inputs)]
    op = _FORMS[spec.op](spec, graph, inputs)
    operator = _operator(spec, op, graph.activation(spec.output))
    activations = [tensor for i, tensor in enumerate(inputs) if i not in spec.const_inputs]
    model = _model(spec, graph, operator, activations, op.version)
    builder = flatbuffers.Builder(1024 + sum(len(b.data) for b in graph.buffers if b.data is not None))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
