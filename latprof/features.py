"""What a regressor sees of an op spec: the numbers that carry its cost.

An op's latency is set by the work it does (multiply-accumulates), the bytes it moves (inputs,
output, weights) and the shape of its loops (spatial size, channels, window, stride), so those
are the features, computed from the op spec alone.  Counts span orders of magnitude, so each
enters as its logarithm; a regressor on logs predicts ratios, which is what a relative error
measures.
"""

from __future__ import annotations

import math

import numpy as np

from latprof.ops import OpSpec

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1", "TANH")
FEATURES = ("log_macs", "log_in", "log_out", "log_params", "log_bytes", "h_in", "h_out", "c_in", "c_out",
            "kernel", "stride", "inputs", "activation", "log_c_in", "log_c_out", "c_in_mod8", "c_out_mod8")
LINE = [0, 1, 2, 3]  # the counts a log-log line through latency is drawn on: MACs, input, output, weights


def _spatial(shape: tuple[int, ...]) -> int:
    return shape[0] if len(shape) == 3 else 1


def op_features(spec: OpSpec) -> list[float]:
    """The feature vector of an op, in the order of ``FEATURES``."""
    first = spec.inputs[0] if spec.inputs else ()
    inputs = sum(math.prod(shape) for shape in spec.inputs)
    output = math.prod(spec.output) if spec.output else 1
    c_in, c_out = (first[-1] if first else 1), (spec.output[-1] if spec.output else 1)
    return [math.log1p(spec.macs), math.log1p(inputs), math.log1p(output), math.log1p(spec.params),
            math.log1p(inputs + output + spec.params), _spatial(first), _spatial(spec.output), c_in, c_out,
            spec.kernel, spec.stride, len(spec.inputs),
            ACTIVATIONS.index(spec.activation) if spec.activation in ACTIVATIONS else len(ACTIVATIONS),
            math.log(c_in), math.log(c_out), c_in % 8, c_out % 8]


def feature_matrix(specs: list[OpSpec]) -> np.ndarray:
    return np.array([op_features(spec) for spec in specs], dtype=float).reshape(len(specs), len(FEATURES))
