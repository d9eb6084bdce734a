"""A generic kernel space: op configurations drawn from the ranges mobile CNNs use, not from
any search space.

A predictor trained on one search space's ops has never seen the corners other networks have:
a 1x1 convolution on a 1x1 map (MobileNetV3's head), 8 channels (MobileNetV2 at width 0.35), a
7x7 window, a 3-channel image stem at stride 2.  It extrapolates there, and trees extrapolate
flat.  nn-Meter's answer is to sample kernels from a prior over the configurations networks
use; this is that prior, kept small and documented: map sizes from 1 to 224, channels log-uniform
from 8 to 2048 (mostly multiples of 8), the windows, strides and activations mobile networks
use, and only configurations whose microbenchmark stays small (at most ``MAX_MACS``
multiply-accumulates and ``MAX_ELEMENTS`` activation values).  Seeded, like architecture sampling.
"""

from __future__ import annotations

import math
import random

from latprof.network import same_out
from latprof.ops import OpSpec, Shape

MAP_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15, 16, 20, 24, 28, 30, 32, 40, 48, 56, 60, 64, 80, 96, 112,
             120, 128, 160, 192, 224)
MAX_MACS = 200_000_000
MAX_ELEMENTS = 112 * 112 * 192
# op type -> share of the sample: roughly how often each appears in mobile networks
MIX = {"CONV_2D": 0.40, "DEPTHWISE_CONV_2D": 0.20, "FULLY_CONNECTED": 0.05, "ADD": 0.06, "MUL": 0.08,
       "MEAN": 0.05, "HARD_SWISH": 0.06, "LOGISTIC": 0.05, "AVERAGE_POOL_2D": 0.05}
ACTIVATIONS = ("NONE", "RELU", "RELU6")


def _channels(rng: random.Random, low: int = 8, high: int = 2048) -> int:
    """Log-uniform; three times in four rounded to a multiple of 8, as width multipliers round."""
    c = round(math.exp(rng.uniform(math.log(low), math.log(high))))
    return max(8, 8 * round(c / 8)) if rng.random() < 0.75 else max(3, c)


def _window_output(size: int, kernel: int, stride: int, padding: str) -> int:
    return same_out(size, stride) if padding == "SAME" else (size - kernel) // stride + 1


def _windowed(rng: random.Random, op: str) -> OpSpec:
    size = rng.choice(MAP_SIZES)
    stride = 2 if size > 1 and rng.random() < 0.25 else 1
    if op == "CONV_2D":
        kernel = rng.choices((1, 3, 5, 7), (0.6, 0.3, 0.05, 0.05))[0]
        c_in = 3 if kernel > 1 and rng.random() < 0.1 else _channels(rng)  # an image stem
        c_out = _channels(rng)
    elif op == "DEPTHWISE_CONV_2D":
        kernel = rng.choice((3, 5, 7))
        c_in = c_out = _channels(rng)
    else:  # AVERAGE_POOL_2D
        kernel, stride = rng.choice((2, 3)), rng.choice((1, 2))
        c_in = c_out = _channels(rng)
    # VALID only where the window fits, so every output has at least one position
    padding = "VALID" if kernel == 1 or (size >= kernel and rng.random() < 0.15) else "SAME"
    out = _window_output(size, kernel, stride, padding)
    activation = "NONE" if op == "AVERAGE_POOL_2D" else rng.choice(ACTIVATIONS)
    return OpSpec(op, ((size, size, c_in),), (out, out, c_out), kernel, stride, padding, activation)


def _elementwise(rng: random.Random, op: str) -> OpSpec:
    # a sum of two 1x1 maps converts to a reshape and a broadcast: no network adds those
    size, c = rng.choice(MAP_SIZES[1:] if op == "ADD" else MAP_SIZES), _channels(rng)
    shape: Shape = (size, size, c)
    if op == "ADD":
        return OpSpec(op, (shape, shape), shape)
    if op == "MUL":  # squeeze-excite's channel scaling, or a product of two maps (swish)
        return OpSpec(op, (shape, (1, 1, c) if rng.random() < 0.5 else shape), shape)
    if op == "MEAN":
        return OpSpec(op, (shape,), (1, 1, c) if rng.random() < 0.5 else (c,))
    return OpSpec(op, (shape,), shape)  # HARD_SWISH, LOGISTIC


def _fully_connected(rng: random.Random) -> OpSpec:
    c_in = _channels(rng, 64, 2560)
    c_out = 1000 if rng.random() < 0.3 else _channels(rng, 10, 1280)
    return OpSpec("FULLY_CONNECTED", ((c_in,),), (c_out,))


def _fits(spec: OpSpec) -> bool:
    elements = sum(math.prod(shape) for shape in spec.inputs) + math.prod(spec.output)
    return spec.macs <= MAX_MACS and elements <= MAX_ELEMENTS


def sample_kernels(count: int, seed: int = 0) -> list[OpSpec]:
    """``count`` distinct op specs from the generic kernel space; the same seed gives the same list."""
    rng, specs = random.Random(seed), {}
    kinds, shares = zip(*MIX.items())
    while len(specs) < count:
        op = rng.choices(kinds, shares)[0]
        if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
            spec = _windowed(rng, op)
        elif op == "FULLY_CONNECTED":
            spec = _fully_connected(rng)
        else:
            spec = _elementwise(rng, op)
        if _fits(spec):
            specs.setdefault(spec.key, spec)
    return list(specs.values())
