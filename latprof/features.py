"""What a regressor sees of an op spec: the numbers that carry its cost.

An op's latency is set by the work it does (multiply-accumulates), the bytes it moves (inputs,
output, weights) and the shape of its loops (spatial size, channels, window, stride), so those
are the features, computed from the op spec alone.  A convolution runs as a matrix product
(M output positions x N output channels, each a dot product of length K), whose speed depends on
those three and on how they fill the kernel's register tiles, so M, N, K and their remainders
modulo 16 are features too.  Counts span orders of magnitude, so each
enters as its logarithm; a regressor on logs predicts ratios, which is what a relative error
measures.
"""

from __future__ import annotations

import math

import numpy as np

from latprof.ops import OpSpec

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH")
FEATURES = ("log_macs", "log_in", "log_out", "log_params", "log_bytes", "h_in", "h_out", "c_in", "c_out",
            "kernel", "stride", "inputs", "activation", "log_c_in", "log_c_out", "c_in_mod8", "c_out_mod8",
            "log_m", "log_k", "log_n", "m_mod16", "k_mod16", "n_mod16")
LINE = [0, 1, 2, 3]  # the counts a log-log line through latency is drawn on: MACs, input, output, weights
SHAPE_VALUES = 8  # a tensor of at most this many values is a shape (TFLite's ranks go up to 8) or part of one


def _spatial(shape: tuple[int, ...]) -> int:
    return shape[0] if len(shape) == 3 else 1


def op_features(spec: OpSpec) -> list[float]:
    """The feature vector of an op, in the order of ``FEATURES``."""
    first = spec.inputs[0] if spec.inputs else ()
    inputs = sum(math.prod(shape) for shape in spec.inputs)
    output = math.prod(spec.output) if spec.output else 1
    c_in, c_out = (first[-1] if first else 1), (spec.output[-1] if spec.output else 1)
    m, k, n = _gemm(spec, c_in, c_out)
    return [math.log1p(spec.macs), math.log1p(inputs), math.log1p(output), math.log1p(spec.params),
            math.log1p(inputs + output + spec.params), _spatial(first), _spatial(spec.output), c_in, c_out,
            spec.kernel, spec.stride, len(spec.inputs),
            ACTIVATIONS.index(spec.activation) if spec.activation in ACTIVATIONS else len(ACTIVATIONS),
            math.log(c_in), math.log(c_out), c_in % 8, c_out % 8,
            math.log(m), math.log(k), math.log(n), m % 16, k % 16, n % 16]


def _gemm(spec: OpSpec, c_in: int, c_out: int) -> tuple[int, int, int]:
    """The op as a matrix product: output positions, reduction length, output channels."""
    positions = spec.output[0] * spec.output[1] if len(spec.output) == 3 else 1
    if spec.op == "CONV_2D":
        return positions, spec.kernel * spec.kernel * c_in, c_out
    if spec.op == "FULLY_CONNECTED":
        return 1, c_in, c_out
    return positions, max(1, spec.kernel * spec.kernel), c_out


def shape_only(spec: OpSpec) -> bool:
    """Whether an op computes with tensor shapes only: SHAPE (which reads its input's shape, not its
    values) or an op whose every tensor holds at most SHAPE_VALUES numbers, as the STRIDED_SLICE
    and PACK that compute a RESHAPE's target shape in a model with a free batch dimension.  Such
    an op costs what running any op costs, whatever its sizes: the predictor gives such op types
    the median of their rows (``latprof.predictor``)."""
    return spec.op == "SHAPE" or all(math.prod(shape) <= SHAPE_VALUES for shape in (*spec.inputs, spec.output))


def feature_matrix(specs: list[OpSpec]) -> np.ndarray:
    return np.array([op_features(spec) for spec in specs], dtype=float).reshape(len(specs), len(FEATURES))
