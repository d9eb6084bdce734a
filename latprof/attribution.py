"""Which of a model's ops each operator the runtime profiled belongs to.

XNNPACK turns each TFLite op of a model into one operator, in the model's order, with names of
its own ("Fully Connected (NC, F32) GEMM" for a 1x1 CONV_2D, "Sigmoid (NC)" for LOGISTIC, "Copy
(NC, X32)" for a CONCATENATION), plus helpers that have no op of their own (the "Static Reshape
(NC)" in front of a FULLY_CONNECTED that reads a 4-D tensor). An op's time inside the model is its
operator's, with the helpers before it.
Some ops XNNPACK folds into the next one's operator (a constant PAD in front of a VALID convolution,
as MobileNetV1 has where a map's size is odd): such an op takes no time of its own there, and the
operator's time is the next op's, padding included.

Ops XNNPACK does not take run in LiteRT's interpreter, between XNNPACK's partitions, and are
profiled under their TFLite names ("SHAPE", "RESHAPE").  A model converted with a free batch
dimension (Keras' default) has such ops: the SHAPE, STRIDED_SLICE and PACK that compute a
RESHAPE's target shape at run time, and that RESHAPE.  LiteRT runs a partition's operators
before an interpreter op whose result they do not need, so in a model whose branches need such
ops (two Flatten layers side by side, say), the runtime's order is not the model's: the operator
where an op should be then is not its kind, and ``attribute`` refuses the model rather than give
one op's time to another.  Where nothing else can run before a reshape's shape ops (MobileNetV1,
V2, V3 and EfficientNetB0 of keras.applications), the runtime's order is the model's.
"""

from __future__ import annotations

import re

from latprof.errors import LatprofError
from latprof.ops import OpSpec

# What an op's operator is called, by the start of its name (XNNPACK's, or the op's own name when
# the interpreter ran it).
OPERATOR_NAMES = {
    "CONV_2D": ("Convolution", "Fully Connected"),
    "DEPTHWISE_CONV_2D": ("Convolution",),
    "FULLY_CONNECTED": ("Fully Connected",),
    "ADD": ("Add",),
    "MUL": ("Multiply",),
    "SUB": ("Subtract",),
    "LOGISTIC": ("Sigmoid",),
    "MEAN": ("Mean", "Global Average Pooling"),
    "SOFTMAX": ("Softmax",),
    "AVERAGE_POOL_2D": ("Average Pooling", "Global Average Pooling"),
    "MAX_POOL_2D": ("Max Pooling",),
    "HARD_SWISH": ("HardSwish",),
    "RELU": ("Clamp",),
    "RELU6": ("Clamp",),
    "PAD": ("Constant Pad",),
    "RESHAPE": ("Static Reshape", "Copy"),
    "CONCATENATION": ("Concatenate", "Copy"),
}
# Operators XNNPACK adds of its own: their time goes to the op they prepare.
HELPERS = ("Static Reshape", "Copy", "Transpose")
# Ops XNNPACK may fuse into the op after them.
FUSED_INTO_NEXT = ("PAD",)
# How the interpreter names the ops it runs (TFLite's builtin names); XNNPACK's names are not so.
INTERPRETER_NAME = re.compile(r"[A-Z0-9_]+")
METHOD_HINT = "time them isolated: --method isolated"


def matches(op: str, operator: str) -> bool:
    """Whether ``operator`` can be op ``op``'s (unknown ops match an operator of their own name)."""
    return operator.startswith(OPERATOR_NAMES.get(op, ())) or operator.upper().startswith(op)


def attribute(ops: list[OpSpec] | tuple[OpSpec, ...], operators: list[tuple[str, float]], model: str = "model") -> list[float]:
    """Each op's time (us), from one run's operators in the order they ran.

    Raises a LatprofError naming the first op whose operator is not where it should be: a model
    whose ops the runtime rewrote or reordered beyond these rules cannot be profiled this way."""
    times, position, helpers = [], 0, 0.0
    for index, spec in enumerate(ops):
        while position < len(operators) and not matches(spec.op, operators[position][0]) \
                and operators[position][0].startswith(HELPERS):
            helpers += operators[position][1]
            position += 1
        if spec.op in FUSED_INTO_NEXT and position < len(operators) and index + 1 < len(ops) \
                and not matches(spec.op, operators[position][0]) and matches(ops[index + 1].op, operators[position][0]):
            times.append(0.0)  # the next op's operator runs it (and takes the helpers before it)
            continue
        if position >= len(operators) or not matches(spec.op, operators[position][0]):
            found = operators[position][0] if position < len(operators) else "the end of the run"
            raise LatprofError(f"{model}: op {index} ({spec.op}) ran as {found!r}, which is not its kind; "
                               f"{_why(spec.op, found, operators)}its ops cannot be timed inside it ({METHOD_HINT})")
        times.append(operators[position][1] + helpers)
        position, helpers = position + 1, 0.0
    trailing = operators[position:]
    if trailing and not all(name.startswith(HELPERS) for name, _ in trailing) or not ops:
        raise LatprofError(f"{model}: the runtime ran {len(operators)} operators for {len(ops)} ops; its ops cannot be "
                           f"timed inside it ({METHOD_HINT})")
    if trailing:
        times[-1] += sum(time for _, time in trailing)
    return times


def _why(op: str, found: str, operators: list[tuple[str, float]]) -> str:
    """What a mismatch may mean when XNNPACK ran the model and its interpreter one side of it."""
    xnnpack = any(not INTERPRETER_NAME.fullmatch(name) for name, _ in operators)
    if xnnpack and (INTERPRETER_NAME.fullmatch(found) or op not in OPERATOR_NAMES):
        return ("the interpreter ran ops XNNPACK does not take (a free batch dimension's shape ops, say), and "
                "LiteRT may run them and XNNPACK's operators in another order than the model lists them; ")
    return ""
