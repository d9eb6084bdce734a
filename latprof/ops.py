"""Op specs: one TFLite operator with its shapes and attributes, the key of the latency table.

An op spec is what the runtime executes, so it is described in TFLite's terms: builtin operator
name, activation shapes (batch 1, left out), kernel, stride, padding and fused activation.  Every
other view of an op (its microbenchmark model, its FLOPs, its row in a LUT, its features for a
regressor) is computed from this one object.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

from latprof.errors import LatprofError

Shape = tuple[int, ...]

# Ops whose constant inputs are weights or parameters implied by the shapes and attributes.
_CONSTANTS_IMPLIED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "MEAN", "SUM",
                      "REDUCE_MAX", "PAD", "PADV2", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE",
                      "CONCATENATION", "STRIDED_SLICE", "SLICE", "RESIZE_BILINEAR",
                      "RESIZE_NEAREST_NEIGHBOR", "GATHER"}
WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _read_shape(text: str) -> Shape:
    return () if text == "scalar" else tuple(int(d) for d in text.split("x"))


@dataclass(frozen=True, order=True)
class OpSpec:
    """One operator instance.

    ``inputs`` holds the activation inputs, then constant inputs that are not implied by the
    attributes (a constant addend, say), the latter listed in ``const_inputs`` by position.
    ``kernel``/``stride``/``padding`` are 0/0/"" for ops without a window.
    """

    op: str
    inputs: tuple[Shape, ...]
    output: Shape
    kernel: int = 0
    stride: int = 0
    padding: str = ""
    activation: str = "NONE"
    const_inputs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # A 1x1 window pads nothing: SAME and VALID are the same kernel, and the converter
        # writes either, so the key must not tell them apart.
        if self.kernel == 1 and self.padding:
            object.__setattr__(self, "padding", "VALID")

    @cached_property  # a search asks for it thousands of times per second
    def key(self) -> str:
        fields = [self.op, "in=" + ",".join(("c" if i in self.const_inputs else "") + shape_text(s)
                                            for i, s in enumerate(self.inputs)),
                  "out=" + shape_text(self.output)]
        if self.kernel:
            fields += [f"k={self.kernel}", f"s={self.stride}", f"pad={self.padding}"]
        if self.activation != "NONE":
            fields.append(f"act={self.activation}")
        return "|".join(fields)

    @classmethod
    def from_key(cls, key: str) -> OpSpec:
        op, *fields = key.split("|")
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        if not re.fullmatch(r"[A-Z0-9_]+", op) or "in" not in values or "out" not in values:
            raise LatprofError(f"not an op key: {key!r}")
        inputs = [s for s in values["in"].split(",") if s]
        return cls(op=op, inputs=tuple(_read_shape(s.lstrip("c")) for s in inputs),
                   output=_read_shape(values["out"]), kernel=int(values.get("k", 0)),
                   stride=int(values.get("s", 0)), padding=values.get("pad", ""),
                   activation=values.get("act", "NONE"),
                   const_inputs=tuple(i for i, s in enumerate(inputs) if s.startswith("c")))

    @property
    def activation_inputs(self) -> tuple[Shape, ...]:
        return tuple(s for i, s in enumerate(self.inputs) if i not in self.const_inputs)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the weighted ops (the figure papers publish); 0 otherwise."""
        out = math.prod(self.output)
        if self.op == "CONV_2D":
            return out * self.kernel * self.kernel * self.inputs[0][-1]
        if self.op == "DEPTHWISE_CONV_2D":
            return out * self.kernel * self.kernel
        if self.op == "FULLY_CONNECTED":
            return out * self.inputs[0][-1]
        return 0

    @property
    def params(self) -> int:
        """Weights and biases the deployed op holds (batch norm already folded in)."""
        cin, cout = self.inputs[0][-1] if self.inputs else 0, self.output[-1] if self.output else 0
        if self.op == "CONV_2D":
            return self.kernel * self.kernel * cin * cout + cout
        if self.op == "DEPTHWISE_CONV_2D":
            return self.kernel * self.kernel * cout + cout
        if self.op == "FULLY_CONNECTED":
            return cin * cout + cout
        return 0


def constants_implied(op: str) -> bool:
    """Whether an op's constant inputs are described by its shapes and attributes already."""
    return op in _CONSTANTS_IMPLIED
