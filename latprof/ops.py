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


def _pair_text(height: int, width: int) -> str:
    """A window's size, stride or dilation: one number when height and width agree, else HxW."""
    return str(height) if height == width else f"{height}x{width}"


def _read_pair(text: str) -> tuple[int, int]:
    values = tuple(int(d) for d in text.split("x"))
    if len(values) not in (1, 2):
        raise ValueError(f"not a window size: {text!r}")
    return (values[0], values[-1])


@dataclass(frozen=True, order=True)
class OpSpec:
    """One operator instance.

    ``inputs`` holds the activation inputs, then constant inputs that are not implied by the
    attributes (a constant addend, say), the latter listed in ``const_inputs`` by position.
    ``kernel``/``stride``/``padding`` are 0/0/"" for ops without a window.  ``kernel`` and
    ``stride`` are the window's height and vertical stride; ``kernel_w``/``stride_w`` are its width
    and horizontal stride, 0 when equal to those (the square windows latprof builds), and
    ``dilation`` is (height, width), (1, 1) when undilated.  Keys of square, undilated, equally
    strided windows are what they always were; any other window is written ``k=HxW``, ``s=HxW``,
    ``dil=D`` (or ``dil=HxW``), so it never takes the key of a square op (see ``window``).
    """

    op: str
    inputs: tuple[Shape, ...]
    output: Shape
    kernel: int = 0
    stride: int = 0
    padding: str = ""
    activation: str = "NONE"
    const_inputs: tuple[int, ...] = ()
    kernel_w: int = 0
    stride_w: int = 0
    dilation: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        # One spelling per window: a width or horizontal stride equal to the height's is left 0.
        if self.kernel_w == self.kernel:
            object.__setattr__(self, "kernel_w", 0)
        if self.stride_w == self.stride:
            object.__setattr__(self, "stride_w", 0)
        if type(self.dilation) is not tuple:  # a list, say: specs are hashed and compared
            object.__setattr__(self, "dilation", tuple(self.dilation))
        # A 1x1 window pads nothing: SAME and VALID are the same kernel, and the converter
        # writes either, so the key must not tell them apart.
        if self.kernel_hw == (1, 1) and self.padding:
            object.__setattr__(self, "padding", "VALID")

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return self.kernel, self.kernel_w or self.kernel

    @property
    def stride_hw(self) -> tuple[int, int]:
        return self.stride, self.stride_w or self.stride

    @property
    def window(self) -> str:
        """How the op's window differs from a square, undilated one with one stride (the only
        windows latprof's microbenchmarks build and its predictor estimates): "" when it does not,
        else e.g. "a 1x7 kernel, stride 2x1"."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_hw, self.stride_hw, self.dilation
        if kh == kw and sh == sw and dh == dw == 1:
            return ""
        parts = [f"a {kh}x{kw} {'window' if self.op.endswith('POOL_2D') else 'kernel'}"]
        if sh != sw:
            parts.append(f"stride {sh}x{sw}")
        if (dh, dw) != (1, 1):
            parts.append(f"dilation {_pair_text(dh, dw)}")
        return ", ".join(parts)

    @property
    def unsupported(self) -> str:
        """Why latprof can neither microbenchmark nor predict this op, in one line; "" when it can."""
        if not self.window:
            return ""
        return (f"{self.op} with {self.window}: latprof's microbenchmarks and predictor cover square, "
                "undilated windows with one stride only")

    @cached_property  # a search asks for it thousands of times per second
    def key(self) -> str:
        fields = [self.op, "in=" + ",".join(("c" if i in self.const_inputs else "") + shape_text(s)
                                            for i, s in enumerate(self.inputs)),
                  "out=" + shape_text(self.output)]
        if self.kernel:
            fields += [f"k={_pair_text(*self.kernel_hw)}", f"s={_pair_text(*self.stride_hw)}", f"pad={self.padding}"]
            if self.dilation != (1, 1):
                fields.append(f"dil={_pair_text(*self.dilation)}")
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
        (kernel, kernel_w), (stride, stride_w) = _read_pair(values.get("k", "0")), _read_pair(values.get("s", "0"))
        return cls(op=op, inputs=tuple(_read_shape(s.lstrip("c")) for s in inputs),
                   output=_read_shape(values["out"]), kernel=kernel, stride=stride, padding=values.get("pad", ""),
                   activation=values.get("act", "NONE"),
                   const_inputs=tuple(i for i, s in enumerate(inputs) if s.startswith("c")),
                   kernel_w=kernel_w, stride_w=stride_w, dilation=_read_pair(values.get("dil", "1")))

    @property
    def activation_inputs(self) -> tuple[Shape, ...]:
        return tuple(s for i, s in enumerate(self.inputs) if i not in self.const_inputs)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the weighted ops (the figure papers publish); 0 otherwise."""
        out, window = math.prod(self.output), math.prod(self.kernel_hw)
        if self.op == "CONV_2D":
            return out * window * self.inputs[0][-1]
        if self.op == "DEPTHWISE_CONV_2D":
            return out * window
        if self.op == "FULLY_CONNECTED":
            return out * self.inputs[0][-1]
        return 0

    @property
    def params(self) -> int:
        """Weights and biases the deployed op holds (batch norm already folded in)."""
        # A scalar has no channels: the first input of a PACK of shape arithmetic, say.
        cin, cout = self.inputs[0][-1] if self.inputs and self.inputs[0] else 0, self.output[-1] if self.output else 0
        window = math.prod(self.kernel_hw)
        if self.op == "CONV_2D":
            return window * cin * cout + cout
        if self.op == "DEPTHWISE_CONV_2D":
            return window * cout + cout
        if self.op == "FULLY_CONNECTED":
            return cin * cout + cout
        return 0


def constants_implied(op: str) -> bool:
    """Whether an op's constant inputs are described by its shapes and attributes already."""
    return op in _CONSTANTS_IMPLIED
