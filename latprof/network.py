"""An architecture unrolled into layers with concrete shapes, and each layer into TFLite ops.

This is the single description the rest of latprof works from: the Keras builder builds these
layers, the FLOP/parameter counter and the latency lookup sum over their ops, and the
microbenchmark generator makes one model per op.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from latprof.arch import SKIP_NONE, SKIP_POOL, Architecture, Block
from latprof.ops import OpSpec

STEM, BLOCK, HEAD = "stem", "block", "head"


def same_out(size: int, stride: int) -> int:
    """Spatial size after a SAME-padded window with this stride."""
    return -(-size // stride)


@dataclass(frozen=True)
class LayerSpec:
    """One layer at its place in the network: input size and channels fix every op's shape.

    ``shortcut`` is the effective one ("identity", "pool" or "none"): a shortcut exists only
    where input and output channels agree (and, for identity, the stride is 1).
    """

    kind: str
    size: int
    in_ch: int
    out_ch: int
    kernel: int = 3
    stride: int = 1
    expand: int = 1
    se_ch: int = 0
    shortcut: str = SKIP_NONE
    regular_conv: bool = False
    classes: int = 0

    @property
    def out_size(self) -> int:
        return 1 if self.kind == HEAD else same_out(self.size, self.stride)

    @property
    def mid_ch(self) -> int:
        """Width of the depthwise part (the expanded width)."""
        return self.out_ch if self.regular_conv else self.in_ch * self.expand

    def ops(self) -> list[OpSpec]:
        """The TFLite ops this layer converts to (batch norm folded, ReLU fused), in order."""
        h, o = self.size, self.out_size
        if self.kind == STEM:
            return [_conv(h, self.in_ch, self.out_ch, self.kernel, self.stride, "RELU")]
        if self.kind == HEAD:
            return [_conv(h, self.in_ch, self.out_ch, 1, 1, "RELU"),
                    OpSpec("MEAN", ((h, h, self.out_ch),), (self.out_ch,)),
                    OpSpec("FULLY_CONNECTED", ((self.out_ch,),), (self.classes,)),
                    OpSpec("SOFTMAX", ((self.classes,),), (self.classes,))]
        ops: list[OpSpec] = []
        mid = self.mid_ch
        if self.regular_conv:
            ops.append(_conv(h, self.in_ch, mid, self.kernel, self.stride, "RELU"))
        else:
            if self.expand != 1:
                ops.append(_conv(h, self.in_ch, mid, 1, 1, "RELU"))
            ops.append(OpSpec("DEPTHWISE_CONV_2D", ((h, h, mid),), (o, o, mid), self.kernel, self.stride,
                              "SAME", "RELU"))
        if self.se_ch:
            ops += [OpSpec("MEAN", ((o, o, mid),), (1, 1, mid)),
                    _conv(1, mid, self.se_ch, 1, 1, "RELU"),
                    _conv(1, self.se_ch, mid, 1, 1, "NONE"),
                    OpSpec("LOGISTIC", ((1, 1, mid),), (1, 1, mid)),
                    OpSpec("MUL", ((o, o, mid), (1, 1, mid)), (o, o, mid))]
        if not self.regular_conv:
            ops.append(_conv(o, mid, self.out_ch, 1, 1, "NONE"))
        if self.shortcut == SKIP_POOL:
            window = self.stride if self.stride > 1 else 3
            ops.append(OpSpec("AVERAGE_POOL_2D", ((h, h, self.in_ch),), (o, o, self.in_ch), window,
                              self.stride, "SAME"))
        if self.shortcut != SKIP_NONE:
            ops.append(OpSpec("ADD", ((o, o, self.out_ch), (o, o, self.out_ch)), (o, o, self.out_ch)))
        return ops

    @property
    def batchnorm_channels(self) -> int:
        """Channels of the batch norms folded into this layer's convolutions (training params)."""
        if self.kind == HEAD:
            return self.out_ch
        if self.kind == STEM or self.regular_conv:
            return self.out_ch
        return (self.mid_ch if self.expand != 1 else 0) + self.mid_ch + self.out_ch


def _conv(size: int, cin: int, cout: int, kernel: int, stride: int, activation: str) -> OpSpec:
    out = same_out(size, stride)
    return OpSpec("CONV_2D", ((size, size, cin),), (out, out, cout), kernel, stride, "SAME", activation)


def stem_layer(arch: Architecture) -> LayerSpec:
    return LayerSpec(STEM, arch.resolution, 3, arch.filters(arch.stem), kernel=3, stride=2)


def head_layer(arch: Architecture, size: int, channels: int) -> LayerSpec:
    return LayerSpec(HEAD, size, channels, arch.head, kernel=1, classes=arch.classes)


def block_layers(block: Block, size: int, channels: int, out: int) -> list[LayerSpec]:
    """The layers of one block entered at ``size`` with ``channels``; ``out`` is its real width.

    Only the first layer strides; the squeeze width is relative to each layer's input width.
    """
    layers = []
    for index in range(block.repeats):
        stride = block.stride if index == 0 else 1
        se = max(1, int(channels * block.se_ratio)) if block.se_ratio else 0
        shortcut = block.skip if channels == out and (stride == 1 or block.skip == SKIP_POOL) else SKIP_NONE
        layers.append(LayerSpec(BLOCK, size, channels, out, block.kernel, stride, block.expand, se, shortcut,
                                block.regular_conv))
        size, channels = layers[-1].out_size, out
    return layers


def placed_blocks(arch: Architecture) -> tuple[list[tuple[Block, int, int, int]], tuple[int, int]]:
    """Each block with the size and channels it is entered at and its real width, and the size and
    channels the head gets: where a block sits fixes its layers (``block_layers``), so a cache of
    block latencies keyed by these four prices a whole space of architectures from a few thousand."""
    size, channels = stem_layer(arch).out_size, arch.filters(arch.stem)
    placed = []
    for block in arch.blocks:
        out = arch.filters(block.out_filters)
        placed.append((block, size, channels, out))
        size, channels = same_out(size, block.stride), out
    return placed, (size, channels)


@dataclass(frozen=True)
class Network:
    """An architecture's layers, with the counts papers publish."""

    arch: Architecture

    @cached_property
    def layers(self) -> tuple[LayerSpec, ...]:
        placed, (size, channels) = placed_blocks(self.arch)
        layers = [stem_layer(self.arch)]
        for block, *entry in placed:
            layers += block_layers(block, *entry)
        layers.append(head_layer(self.arch, size, channels))
        return tuple(layers)

    @cached_property
    def ops(self) -> tuple[OpSpec, ...]:
        return tuple(op for layer in self.layers for op in layer.ops())

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def params(self) -> int:
        """Trainable parameters of the training graph, the figure papers and torchvision publish:
        the deployed weights and biases, where each folded bias stands for a batch norm's shift,
        plus the batch norms' scales."""
        return sum(op.params for op in self.ops) + sum(layer.batchnorm_channels for layer in self.layers)
