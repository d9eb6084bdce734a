"""The MnasNet factorized hierarchical search space, as data.

A point of the space is a list of decisions (one index per choice); it decodes to an
:class:`~latprof.arch.Architecture`, so everything downstream (builder, op specs, latency) works on
architectures and never on decisions.  Controllers (random, evolution, PPO) see only the choices.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from itertools import product

from latprof.arch import SKIP_IDENTITY, SKIP_NONE, SKIP_POOL, Architecture, Block
from latprof.errors import LatprofError
from latprof.network import LayerSpec, block_layers, head_layer, same_out, stem_layer
from latprof.ops import OpSpec

# conv op name -> (expand ratio, regular conv); "mbconv_eN" is the paper's MBConvN
CONV_OPS = {"conv": (1, True), "dwconv": (1, False), "mbconv_e3": (3, False), "mbconv_e6": (6, False)}


@dataclass(frozen=True)
class Choice:
    """One decision: its name and the values it can take."""

    name: str
    options: tuple


@dataclass(frozen=True)
class SearchSpace:
    """MobileNetV2's skeleton with per-block choices (MnasNet, Tan et al. 2019, section 4.1)."""

    name: str = "mnasnet"
    base_widths: tuple[int, ...] = (16, 24, 32, 64, 96, 160, 320)
    base_layers: tuple[int, ...] = (1, 2, 3, 4, 3, 3, 1)
    strides: tuple[int, ...] = (1, 2, 2, 2, 1, 2, 1)
    conv_ops: tuple[str, ...] = ("conv", "dwconv", "mbconv_e3", "mbconv_e6")
    kernels: tuple[int, ...] = (3, 5)
    se_ratios: tuple[float, ...] = (0.0, 0.25)
    skips: tuple[str, ...] = (SKIP_POOL, SKIP_IDENTITY, SKIP_NONE)
    width_ratios: tuple[float, ...] = (0.75, 1.0, 1.25)
    layer_deltas: tuple[int, ...] = (-1, 0, 1)
    resolutions: tuple[int, ...] = (128, 160, 192, 224)
    multipliers: tuple[float, ...] = (0.5, 0.75, 1.0, 1.4)
    stem: int = 32
    head: int = 1280
    classes: int = 1000

    def layer_options(self, block: int) -> tuple[int, ...]:
        """Layer counts a block may have: the base count plus the deltas, never below one."""
        return tuple(sorted({max(1, self.base_layers[block] + d) for d in self.layer_deltas}))

    def choices(self) -> list[Choice]:
        """Every decision, globals first, then six per block; a controller emits one per choice."""
        result = [Choice("resolution", self.resolutions), Choice("multiplier", self.multipliers)]
        for i in range(len(self.base_widths)):
            result += [Choice(f"b{i}.conv_op", self.conv_ops), Choice(f"b{i}.kernel", self.kernels),
                       Choice(f"b{i}.se", self.se_ratios), Choice(f"b{i}.skip", self.skips),
                       Choice(f"b{i}.width", self.width_ratios), Choice(f"b{i}.layers", self.layer_options(i))]
        return result

    def decode(self, decisions: list[int]) -> Architecture:
        choices = self.choices()
        if len(decisions) != len(choices) or any(not 0 <= d < len(c.options) for d, c in zip(decisions, choices)):
            raise LatprofError(f"decisions {decisions} do not fit the {self.name} space")
        values = {c.name: c.options[d] for c, d in zip(choices, decisions)}
        blocks, in_filters = [], self.stem
        for i, base in enumerate(self.base_widths):
            expand, regular = CONV_OPS[values[f"b{i}.conv_op"]]
            out = int(round(base * values[f"b{i}.width"]))
            blocks.append(Block(repeats=values[f"b{i}.layers"], kernel=values[f"b{i}.kernel"],
                                stride=self.strides[i], expand=expand, in_filters=in_filters,
                                out_filters=out, se_ratio=values[f"b{i}.se"], skip=values[f"b{i}.skip"],
                                regular_conv=regular))
            in_filters = out
        return Architecture(blocks=tuple(blocks), resolution=values["resolution"],
                            width=values["multiplier"], stem=self.stem, head=self.head, classes=self.classes)

    def sample(self, rng: random.Random) -> Architecture:
        return self.decode([rng.randrange(len(c.options)) for c in self.choices()])

    def sample_many(self, count: int, seed: int) -> list[Architecture]:
        """``count`` architectures drawn uniformly; the same seed gives the same list everywhere."""
        rng = random.Random(seed)
        return [self.sample(rng) for _ in range(count)]

    @property
    def size(self) -> int:
        """Number of distinct decision vectors."""
        total = 1
        for choice in self.choices():
            total *= len(choice.options)
        return total

    def unique_layers(self) -> set[LayerSpec]:
        """Every layer any architecture of the space can contain, without visiting 1e19 nets.

        A layer depends only on the global settings, the block's choices and the width coming
        in, which is the previous block's width choice: enumerate per block and width.  Two
        layers per block stand for any count, since all layers after the first are alike.
        """
        layers: set[LayerSpec] = set()
        for resolution in self.resolutions:
            for multiplier in self.multipliers:
                arch = self.decode([0] * len(self.choices()))
                arch = replace(arch, resolution=resolution, width=multiplier)
                stem = stem_layer(arch)
                layers.add(stem)
                size, incoming = stem.out_size, {stem.out_ch}
                for i, base in enumerate(self.base_widths):
                    outs = {arch.filters(int(round(base * w))) for w in self.width_ratios}
                    for channels, conv_op, kernel, se, skip, out in product(
                            incoming, self.conv_ops, self.kernels, self.se_ratios, self.skips, outs):
                        expand, regular = CONV_OPS[conv_op]
                        block = Block(2, kernel, self.strides[i], expand, channels, out, se, skip, regular)
                        layers.update(block_layers(block, size, channels, out))
                    size, incoming = same_out(size, self.strides[i]), outs
                layers.update(head_layer(arch, size, channels) for channels in incoming)
        return layers

    def unique_ops(self) -> set[OpSpec]:
        """Every op spec any architecture of the space can contain: the ops of its unique layers."""
        return {op for layer in self.unique_layers() for op in layer.ops()}


SPACES = {"mnasnet": SearchSpace()}


def get_space(name: str) -> SearchSpace:
    if name not in SPACES:
        raise LatprofError(f"unknown search space {name!r}; known: {', '.join(SPACES)}")
    return SPACES[name]
