"""Latency of a whole network from its ops: the sum of what each op adds, plus one invoke."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from latprof.arch import Architecture
from latprof.lut import LUT
from latprof.network import Network
from latprof.ops import OpSpec


@dataclass
class Prediction:
    """``latency_ms`` is None when ops are missing from the LUT: a partial sum is not a latency."""

    target: str
    latency_ms: float | None
    ops: int
    known_ms: float
    missing: list[str] = field(default_factory=list)
    breakdown: list[dict] = field(default_factory=list)

    def to_dict(self, breakdown: bool = False) -> dict:
        data = {"target": self.target, "latency_ms": self.latency_ms, "ops": self.ops,
                "known_ms": round(self.known_ms, 4), "missing": self.missing}
        if breakdown:
            data["breakdown"] = self.breakdown
        return data


def target_ops(target: str) -> list[OpSpec]:
    """Ops of a target: a .tflite file is read from the file, anything else is an architecture."""
    if target.endswith(".tflite") or Path(target).is_file():
        from latprof.tflite_file import decompose

        return list(decompose(target).ops)
    return list(Network(Architecture.from_string(target)).ops)


def predict_ops(target: str, ops: list[OpSpec], lut: LUT) -> Prediction:
    total, missing, rows = lut.overhead_us, [], []
    for spec in ops:
        latency = lut.op_latency_us(spec)
        if latency is None:
            missing.append(spec.key)
        else:
            total += latency
        rows.append({"key": spec.key, "latency_us": latency})
    missing = list(dict.fromkeys(missing))
    return Prediction(target, None if missing else round(total / 1000, 4), len(ops), total / 1000, missing, rows)


def predict(target: str, lut: LUT) -> Prediction:
    from latprof.proxyless import layer_prediction  # a LUT's layer rows (imported ProxylessNAS/OFA tables) first

    return layer_prediction(target, lut) or predict_ops(target, target_ops(target), lut)
