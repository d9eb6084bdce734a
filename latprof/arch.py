"""Architectures as data: blocks, whole networks, and their block-string grammar.

The grammar is the one of the MnasNet reference code (tensorflow/tpu, mnasnet_models.py):
``r{repeats}_k{kernel}_s{sy}{sx}_e{expand}_i{in}_o{out}[_se{ratio}][_noskip]``, extended by flag
tokens for the choices of the MnasNet search space that the reference strings never needed:
``_conv`` (the block's op is a regular k x k convolution instead of a depthwise one) and
``_poolskip`` (the shortcut is an average pool instead of the identity); and by MobileNetV3's
(Howard et al. 2019): ``_hs`` (the block's expand and depthwise convs use h-swish, not ReLU),
``_hsig`` (its squeeze-excite is MobileNetV3's: squeeze to ``make_divisible(mid x ratio, 8)`` of
the expanded width, not of the input width, and gate with a hard sigmoid, relu6(x + 3) / 6), and
a fractional expansion (``e4.5``: the expanded width is rounded to a multiple of 8, as Keras'
MobileNetV3 and OFA round it).  An architecture is a list of blocks plus the global settings,
written ``res224_w1.0_stem32_head1280_cls1000[_mix1280][_hs]:blk,blk,...`` (the global part and
each of its tokens are optional; ``mix`` adds MobileNetV3's 1x1 conv after the pool, ``hs`` puts
h-swish in stem and head) or one of the reference names below.  Without the new tokens every
string means what it always meant: ReLU, sigmoid squeeze-excite, MnasNet's head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from latprof.errors import LatprofError

SKIP_IDENTITY, SKIP_NONE, SKIP_POOL = "identity", "none", "pool"
_BLOCK_FLAGS = {"noskip", "poolskip", "conv", "hs", "hsig"}


@dataclass(frozen=True)
class Block:
    """One block of the network: ``repeats`` layers of one searched kind.

    Only the first layer strides or changes width; ``in_filters``/``out_filters`` are base
    widths, before the architecture's width multiplier.
    """

    repeats: int
    kernel: int
    stride: int
    expand: float
    in_filters: int
    out_filters: int
    se_ratio: float = 0.0
    skip: str = SKIP_IDENTITY
    regular_conv: bool = False
    hswish: bool = False
    hard_se: bool = False

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.kernel < 1 or self.stride not in (1, 2) or self.expand < 1:
            raise LatprofError(f"invalid block {self}: repeats, kernel and expand must be >= 1, stride 1 or 2")
        if self.regular_conv and self.expand != 1:
            raise LatprofError(f"invalid block {self}: a regular conv block has no expansion (use e1)")
        if not 0.0 <= self.se_ratio <= 1.0 or self.skip not in (SKIP_IDENTITY, SKIP_NONE, SKIP_POOL):
            raise LatprofError(f"invalid block {self}: se ratio in [0, 1], skip identity/none/pool")
        if self.hard_se and not self.se_ratio:
            raise LatprofError(f"invalid block {self}: hsig (MobileNetV3's squeeze-excite) needs an se ratio, e.g. se0.25")

    def to_string(self) -> str:
        parts = [f"r{self.repeats}", f"k{self.kernel}", f"s{self.stride}{self.stride}", f"e{self.expand:g}",
                 f"i{self.in_filters}", f"o{self.out_filters}"]
        if self.se_ratio:
            parts.append(f"se{self.se_ratio:g}")
        if self.skip == SKIP_NONE:
            parts.append("noskip")
        elif self.skip == SKIP_POOL:
            parts.append("poolskip")
        if self.regular_conv:
            parts.append("conv")
        if self.hswish:
            parts.append("hs")
        if self.hard_se:
            parts.append("hsig")
        return "_".join(parts)

    @classmethod
    def from_string(cls, text: str) -> Block:
        options: dict[str, str] = {}
        for token in text.strip().split("_"):
            match = re.fullmatch(r"([a-z]+)(\d[\d.]*)?", token)
            if not match or match.group(1) in options:
                raise LatprofError(f"cannot read block string {text!r}: bad or repeated token {token!r}")
            options[match.group(1)] = match.group(2) or ""
        flags = {key for key, value in options.items() if value == ""}
        unknown = set(options) - {"r", "k", "s", "e", "i", "o", "se", *_BLOCK_FLAGS}
        missing = {"r", "k", "s", "e", "i", "o"} - set(options)
        if unknown or missing or not flags <= _BLOCK_FLAGS or {"noskip", "poolskip"} <= flags:
            problem = f"unknown {sorted(unknown)}" if unknown else f"missing {sorted(missing)}" if missing else "bad flags"
            raise LatprofError(f"cannot read block string {text!r}: {problem}; expected "
                               "r{repeats}_k{kernel}_s{sy}{sx}_e{expand}_i{in}_o{out}[_se{ratio}][_noskip|_poolskip][_conv][_hs][_hsig]")
        strides = options["s"]
        if len(strides) != 2 or strides[0] != strides[1]:
            raise LatprofError(f"cannot read block string {text!r}: stride must be s11 or s22")
        try:
            expand = options["e"]
            return cls(repeats=int(options["r"]), kernel=int(options["k"]), stride=int(strides[0]),
                       expand=float(expand) if "." in expand else int(expand), in_filters=int(options["i"]),
                       out_filters=int(options["o"]), se_ratio=float(options.get("se", 0) or 0),
                       skip=SKIP_NONE if "noskip" in flags else SKIP_POOL if "poolskip" in flags else SKIP_IDENTITY,
                       regular_conv="conv" in flags, hswish="hs" in flags, hard_se="hsig" in flags)
        except ValueError as exc:
            raise LatprofError(f"cannot read block string {text!r}: {exc}") from None


def round_filters(filters: int, multiplier: float, divisor: int = 8) -> int:
    """The reference code's width rounding: a multiple of ``divisor``, never more than 10% down
    (also Keras' and OFA's ``make_divisible``/``_depth`` of a width times a ratio)."""
    scaled = filters * multiplier
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


_GLOBAL_TOKENS = {"res": "resolution", "w": "width", "stem": "stem", "head": "head", "cls": "classes", "mix": "mix"}
_GLOBAL_FLAGS = {"hs": "hswish"}


@dataclass(frozen=True)
class Architecture:
    """A whole network: stem conv, blocks, 1x1 head conv, global pool and classifier.

    ``mix`` > 0 gives MobileNetV3's head: after the pool, a 1x1 conv to ``mix`` channels with a
    bias and no batch norm (OFA's feature mix layer), then the classifier as a 1x1 conv; ``hswish``
    makes stem, head and mix conv use h-swish.  Like ``head``, ``mix`` is not width-scaled."""

    blocks: tuple[Block, ...]
    resolution: int = 224
    width: float = 1.0
    stem: int = 32
    head: int = 1280
    classes: int = 1000
    mix: int = 0
    hswish: bool = False
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.blocks:
            raise LatprofError("an architecture needs at least one block")
        if self.resolution < 8 or self.width <= 0 or self.stem < 1 or self.head < 1 or self.classes < 1 \
                or self.mix < 0:
            raise LatprofError(f"invalid global settings in {self.to_string()!r}")

    def filters(self, base: int) -> int:
        """Actual channel count of a base width; the head is not scaled, as in the reference."""
        return round_filters(base, self.width)

    def to_string(self) -> str:
        globals_ = (f"res{self.resolution}_w{self.width:g}_stem{self.stem}_head{self.head}"
                    f"_cls{self.classes}" + (f"_mix{self.mix}" if self.mix else "") + ("_hs" if self.hswish else ""))
        return globals_ + ":" + ",".join(block.to_string() for block in self.blocks)

    @classmethod
    def from_string(cls, text: str) -> Architecture:
        """Decode a block-string architecture or a reference name, optionally with settings:
        ``mnasnet-a1``, ``mobilenetv2:res160_w0.75`` or ``res224_w1.0:r1_k3_s11_...,...``."""
        text = text.strip()
        head, _, tail = text.rpartition(":") if ":" in text else ("", "", text)
        if tail.lower() in REFERENCES:
            base, overrides = REFERENCES[tail.lower()], _read_globals(head, text)
            return replace(base, **overrides)
        if head.lower() in REFERENCES:
            return replace(REFERENCES[head.lower()], **_read_globals(tail, text))
        blocks = tuple(Block.from_string(part) for part in tail.split(",") if part.strip())
        return cls(blocks=blocks, **_read_globals(head, text))


def _read_globals(text: str, whole: str) -> dict[str, int | float | bool]:
    values: dict[str, int | float | bool] = {}
    for token in filter(None, text.split("_")):
        if token in _GLOBAL_FLAGS:
            values[_GLOBAL_FLAGS[token]] = True
            continue
        match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d+)?)", token)
        if not match or match.group(1) not in _GLOBAL_TOKENS:
            raise LatprofError(f"cannot read architecture {whole!r}: unknown setting {token!r} "
                               f"(known: {', '.join([*_GLOBAL_TOKENS, *_GLOBAL_FLAGS])}; "
                               f"or a name: {', '.join(REFERENCES)})")
        key = _GLOBAL_TOKENS[match.group(1)]
        values[key] = float(match.group(2)) if key == "width" else int(float(match.group(2)))
    return values


def _reference(name: str, blocks: str, **settings) -> Architecture:
    return Architecture(blocks=tuple(Block.from_string(b) for b in blocks.split()), name=name, **settings)


REFERENCES: dict[str, Architecture] = {
    "mnasnet-a1": _reference("mnasnet-a1", """r1_k3_s11_e1_i32_o16_noskip r2_k3_s22_e6_i16_o24
        r3_k5_s22_e3_i24_o40_se0.25 r4_k3_s22_e6_i40_o80 r2_k3_s11_e6_i80_o112_se0.25
        r3_k5_s22_e6_i112_o160_se0.25 r1_k3_s11_e6_i160_o320"""),
    "mnasnet-b1": _reference("mnasnet-b1", """r1_k3_s11_e1_i32_o16_noskip r3_k3_s22_e3_i16_o24
        r3_k5_s22_e3_i24_o40 r3_k5_s22_e6_i40_o80 r2_k3_s11_e6_i80_o96 r4_k5_s22_e6_i96_o192
        r1_k3_s11_e6_i192_o320_noskip"""),
    "mnasnet-small": _reference("mnasnet-small", """r1_k3_s11_e1_i16_o8 r1_k3_s22_e3_i8_o16
        r2_k3_s22_e6_i16_o16 r4_k5_s22_e6_i16_o32_se0.25 r3_k3_s11_e6_i32_o32_se0.25
        r3_k5_s22_e6_i32_o88_se0.25 r1_k3_s11_e6_i88_o144""", stem=8),
    "mobilenetv2": _reference("mobilenetv2", """r1_k3_s11_e1_i32_o16 r2_k3_s22_e6_i16_o24
        r3_k3_s22_e6_i24_o32 r4_k3_s22_e6_i32_o64 r3_k3_s11_e6_i64_o96 r3_k3_s22_e6_i96_o160
        r1_k3_s11_e6_i160_o320"""),
    # Keras' MobileNetV3Small/Large 1.0 (keras.applications, the zoo's mobilenet_v3_*-1.0-*): the same ops
    # but the input rescaling, which latprof's networks leave to the caller.  88/24 is written 3.6667.
    "mobilenetv3-small": _reference("mobilenetv3-small", """r1_k3_s22_e1_i16_o16_se0.25_hsig r1_k3_s22_e4.5_i16_o24
        r1_k3_s11_e3.6667_i24_o24 r1_k5_s22_e4_i24_o40_se0.25_hs_hsig r2_k5_s11_e6_i40_o40_se0.25_hs_hsig
        r1_k5_s11_e3_i40_o48_se0.25_hs_hsig r1_k5_s11_e3_i48_o48_se0.25_hs_hsig r1_k5_s22_e6_i48_o96_se0.25_hs_hsig
        r2_k5_s11_e6_i96_o96_se0.25_hs_hsig""", stem=16, head=576, mix=1024, hswish=True),
    "mobilenetv3-large": _reference("mobilenetv3-large", """r1_k3_s11_e1_i16_o16 r1_k3_s22_e4_i16_o24
        r1_k3_s11_e3_i24_o24 r1_k5_s22_e3_i24_o40_se0.25_hsig r2_k5_s11_e3_i40_o40_se0.25_hsig
        r1_k3_s22_e6_i40_o80_hs r1_k3_s11_e2.5_i80_o80_hs r2_k3_s11_e2.3_i80_o80_hs r1_k3_s11_e6_i80_o112_se0.25_hs_hsig
        r1_k3_s11_e6_i112_o112_se0.25_hs_hsig r1_k5_s22_e6_i112_o160_se0.25_hs_hsig
        r2_k5_s11_e6_i160_o160_se0.25_hs_hsig""", stem=16, head=960, mix=1280, hswish=True),
}
