"""Reading .tflite files: validation and decomposition into op specs.

The file itself is read with LiteRT's generated flatbuffer schema, so any model decomposes,
whoever built it (keras.applications, a converter of another framework, latprof itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema

from latprof.errors import LatprofError
from latprof.native import quiet_native_output
from latprof.ops import WEIGHTED, OpSpec, constants_implied

_BUILTIN_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_ACTIVATION_NAMES = {value: name for name, value in vars(schema.ActivationFunctionType).items()
                     if not name.startswith("_")}
_TENSOR_TYPES = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
_PADDING = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}


@dataclass(frozen=True)
class ModelFile:
    """A parsed .tflite: its ops in execution order and its input/output dtypes."""

    path: str
    ops: tuple[OpSpec, ...]
    dtype: str

    @property
    def unsupported(self) -> dict[str, str]:
        """Ops latprof can neither microbenchmark nor predict (a 1x7 kernel, a dilated or unequally
        strided window), by key, each with its one-line reason.  They stay in ``ops`` under keys of
        their own, so a prediction reports them missing instead of summing the rest."""
        return {op.key: op.unsupported for op in self.ops if op.unsupported}


def read_model_bytes(path: str | Path) -> bytes:
    """The bytes of a .tflite file, refusing what is not one (missing, empty, wrong magic)."""
    path = Path(path)
    if not path.is_file():
        raise LatprofError(f"{path}: no such model file")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise LatprofError(f"{path}: not a TFLite model (no TFL3 identifier); pass a .tflite flatbuffer")
    return data


def verify(data: bytes, name: str) -> None:
    """Let the runtime's flatbuffer verifier judge the bytes: a truncated file fails here."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with quiet_native_output():
            Interpreter(model_content=data)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LatprofError(f"{name}: corrupt or truncated TFLite model ({first}); re-export it") from None


def decompose(path: str | Path) -> ModelFile:
    """Read a .tflite file into op specs (subgraph 0, execution order)."""
    data = read_model_bytes(path)
    verify(data, str(path))
    return decompose_bytes(data, str(path))


def decompose_bytes(data: bytes, name: str) -> ModelFile:
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # the generated reader raises anything from struct.error to IndexError
        raise LatprofError(f"{name}: cannot read the TFLite flatbuffer ({exc}); re-export the model") from None
    if not model.subgraphs or (model.subgraphs[0].operators and not model.operatorCodes):
        raise LatprofError(f"{name}: a TFLite flatbuffer without a graph; re-export the model")
    graph = model.subgraphs[0]
    ops = []
    for operator in graph.operators:
        code = model.operatorCodes[operator.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        op_name = _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if builtin == schema.BuiltinOperator.CUSTOM:
            op_name = "CUSTOM_" + (code.customCode or b"").decode(errors="replace")
        ops.append(_op_spec(model, graph, operator, op_name))
    input_type = graph.tensors[graph.inputs[0]].type if len(graph.inputs) else schema.TensorType.FLOAT32
    return ModelFile(path=name, ops=tuple(ops), dtype=_TENSOR_TYPES.get(input_type, "UNKNOWN").lower())


def _is_constant(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return buffer is not None and ((buffer.data is not None and len(buffer.data) > 0) or buffer.size > 0)


def _activation_shape(shape) -> tuple[int, ...]:
    """Drop the batch dimension of an activation shape: 1, also in a model with a free batch
    dimension, whose tensors hold 1 there in their shape and -1 only in their shape signature."""
    dims = tuple(int(d) for d in (shape if shape is not None else ()))
    return dims[1:] if len(dims) > 1 and dims[0] == 1 else dims


def _op_spec(model, graph, operator, op_name: str) -> OpSpec:
    tensors = [graph.tensors[i] if i >= 0 else None for i in operator.inputs]
    options = operator.builtinOptions
    inputs, const_positions = [], []
    for tensor in tensors:
        if tensor is None:
            continue
        constant = _is_constant(model, tensor)
        if constant and (op_name in WEIGHTED or constants_implied(op_name)):
            continue
        if constant:
            const_positions.append(len(inputs))
        inputs.append(_activation_shape(tensor.shape))
    output = _activation_shape(graph.tensors[operator.outputs[0]].shape)
    kernel = kernel_w = stride = stride_w = 0
    dilation = (1, 1)
    padding = ""
    if op_name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        kernel, kernel_w = int(tensors[1].shape[1]), int(tensors[1].shape[2])  # filter: [out|1, H, W, in|out]
        dilation = (int(options.dilationHFactor), int(options.dilationWFactor))
    elif op_name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kernel, kernel_w = int(options.filterHeight), int(options.filterWidth)
    if kernel:
        stride, stride_w = int(options.strideH), int(options.strideW)
        padding = _PADDING.get(options.padding, str(options.padding))
    activation = "NONE"
    fused = getattr(options, "fusedActivationFunction", None)
    if fused is not None:
        activation = _ACTIVATION_NAMES.get(fused, str(fused))
    # A rectangular, dilated or unequally strided window keeps all of it in its spec, so its key is
    # never a square op's (``OpSpec.window``; ``ModelFile.unsupported`` says why latprof cannot time it).
    return OpSpec(op_name, tuple(inputs), output, kernel, stride, padding, activation, tuple(const_positions),
                  kernel_w, stride_w, dilation)
