"""Latency of a whole network from its ops: the sum of what each op adds, plus one invoke.

Each op's share comes from the LUT when it was measured, else from the predictor when one is
given and knows the op type; an op neither knows leaves the network without a latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latprof.arch import Architecture
from latprof.lut import LUT
from latprof.network import Network
from latprof.ops import OpSpec


@dataclass
class Prediction:
    """``latency_ms`` is None when ops are missing from the LUT: a partial sum is not a latency.
    ``predicted_ops`` counts the ops whose share the predictor estimated."""

    target: str
    latency_ms: float | None
    ops: int
    known_ms: float
    missing: list[str] = field(default_factory=list)
    breakdown: list[dict] = field(default_factory=list)
    predicted_ops: int = 0
    unsupported: dict[str, str] = field(default_factory=dict)  # missing ops latprof cannot time: key -> why

    def to_dict(self, breakdown: bool = False) -> dict:
        data = {"target": self.target, "latency_ms": self.latency_ms, "ops": self.ops,
                "lut_ops": self.ops - self.predicted_ops - len(self.missing), "predicted_ops": self.predicted_ops,
                "known_ms": round(self.known_ms, 4), "missing": self.missing}
        if self.unsupported:
            data["unsupported"] = self.unsupported
        if breakdown:
            data["breakdown"] = self.breakdown
        return data


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # a block string longer than a file name may be
        return False


def target_ops(target: str) -> list[OpSpec]:
    """Ops of a target: a .tflite file is read from the file, anything else is an architecture."""
    if target.endswith(".tflite") or _is_file(target):
        from latprof.tflite_file import decompose

        return list(decompose(target).ops)
    return list(Network(Architecture.from_string(target)).ops)


def predict_ops(target: str, ops: list[OpSpec], lut: LUT, predictor=None) -> Prediction:
    """Sum the ops' shares; ``predictor`` (a fitted ``LatencyPredictor``) estimates the LUT rows
    of ops the LUT lacks, and those count as measured rows do."""
    shares = [lut.op_latency_us(spec) for spec in ops]
    unknown = [spec for spec, share in zip(ops, shares) if share is None]
    estimates = dict(zip(unknown, predictor.predict(unknown))) if predictor is not None and unknown else {}
    total, missing, rows, predicted = lut.overhead_us, [], [], 0
    for spec, share in zip(ops, shares):
        source = "lut"
        if share is None and spec in estimates and np.isfinite(estimates[spec]):
            share, source = max(0.0, float(estimates[spec]) - lut.overhead_us), "predictor"
            predicted += 1
        if share is None:
            missing.append(spec.key)
            source = "missing"
        else:
            total += share
        rows.append({"key": spec.key, "latency_us": None if share is None else round(share, 3), "source": source})
    missing = list(dict.fromkeys(missing))
    lacking = set(missing)
    unsupported = {spec.key: spec.unsupported for spec in ops if spec.key in lacking and spec.unsupported}
    return Prediction(target, None if missing else round(total / 1000, 4), len(ops), total / 1000, missing, rows,
                      predicted, unsupported)


def predict(target: str, lut: LUT, predictor=None) -> Prediction:
    from latprof.proxyless import layer_prediction  # a LUT's layer rows (imported ProxylessNAS/OFA tables) first

    return layer_prediction(target, lut) or predict_ops(target, target_ops(target), lut, predictor)
