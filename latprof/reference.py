"""Reference networks: a probe of the device's state, timed when ops are profiled, again when
a validation measures whole models, and over and over by ``latprof check`` (is it steady?).

A device does not always run at one speed.  A phone throttles when hot; on a shared host other
tenants contend for the last-level cache, which slows a whole network (its weights must stay
cached from one inference to the next) while single-op microbenchmarks, which load their own
weights, barely notice (README, "How latency is measured on the host").  So the op latencies of
a LUT cannot tell whether the device is now in the state it was profiled in; a whole network can.
Profiling times two reference networks in the same rounds as each batch of networks (and after
ops timed alone) and records them in the run folder; the LUT keeps their latency, and puts every
batch on their pace (:func:`pace_us`); ``validate`` times them again with its models and puts the
predictions on their pace now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latprof.arch import REFERENCES, Architecture
from latprof.convert import ModelCache, ensure_architectures
from latprof.jsonl import append_jsonl, read_jsonl

# Two weight-heavy networks of the space (3.5M and 3.9M parameters), one with squeeze-excite.
REFERENCE_NAMES = ("mobilenetv2", "mnasnet-a1")
REFERENCE_NETWORKS = tuple(REFERENCES[name].to_string() for name in REFERENCE_NAMES)
REFERENCE_FILE = "reference.jsonl"
# How far apart two timings of one device state may run: beyond it, the state has changed.
DRIFT_WARNING_PCT = 3.0


def reference_name(target: str) -> str:
    """A reference network's short name ("mobilenetv2"), or its architecture string without one."""
    return next((name for name, arch in REFERENCES.items() if arch.to_string() == target), target)


def reference_models(targets, dtype: str, cache: ModelCache) -> dict[str, Path]:
    """The .tflite of each reference network (architecture strings), converted once."""
    return ensure_architectures([Architecture.from_string(t) for t in targets], dtype, cache)


def record_references(run_dir: str | Path, device, cache: ModelCache, dtype: str) -> None:
    """Time the reference networks now and append them to the run folder, stamped with the time."""
    paths = reference_models(REFERENCE_NETWORKS, dtype, cache)
    timings = device.measure_models([paths[t] for t in REFERENCE_NETWORKS])
    append_references(run_dir, {target: timing.latency_us for target, timing in zip(REFERENCE_NETWORKS, timings)})


def append_references(run_dir: str | Path, latencies_us: dict[str, float]) -> None:
    """Append the reference networks' latencies (by architecture string) to the run folder,
    stamped with the time."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    append_jsonl(Path(run_dir) / REFERENCE_FILE, [{"target": target, "latency_us": latency, "time": stamp}
                                                   for target, latency in latencies_us.items()])


def read_references(run_dir: str | Path) -> list[dict]:
    return read_jsonl(Path(run_dir) / REFERENCE_FILE, required=("target", "latency_us"))


def pace_us(latencies_us: dict[str, float]) -> float:
    """The device's pace: the geometric mean of the reference networks' latencies.

    Timings taken in the same rounds as a pace can be put on another pace by the ratio of the
    two.  On a shared host, two networks timed in the same rounds keep their ratio within a few
    percent while each swings by tens of percent (contention comes and goes in spells of
    seconds): that is why ops are profiled, and models validated, with the references beside them."""
    values = np.asarray(list(latencies_us.values()), dtype=float)
    if values.size == 0 or not np.all(values > 0):
        raise ValueError("a pace needs the positive latency of at least one reference network")
    return float(np.exp(np.log(values).mean()))


def reference_drift(reference_us: dict[str, float], now_us: dict[str, float]) -> dict:
    """How much slower (+) or faster (-) the device runs now than when the LUT was profiled: its
    pace now (the reference networks it has in common with the LUT) against the LUT's, in percent."""
    common = [target for target in reference_us if target in now_us]
    ratio = pace_us({t: now_us[t] for t in common}) / pace_us({t: reference_us[t] for t in common})
    return {"reference_drift_pct": round(100 * (ratio - 1), 1), "reference_networks": len(common)}


def reference_spread_pct(records: list[dict]) -> float | None:
    """The largest difference, over reference networks, between their slowest and fastest timing
    across profiling calls, in percent: how far apart the device states are that one LUT mixes.
    None with fewer than two timings of any network."""
    by_target: dict[str, list[float]] = {}
    for record in records:
        by_target.setdefault(record["target"], []).append(float(record["latency_us"]))
    spreads = [_spread_pct(v) for v in by_target.values() if len(v) > 1]
    return round(max(spreads), 1) if spreads else None


def _spread_pct(latencies) -> float:
    """How much slower the slowest timing ran than the fastest, in percent."""
    return 100 * (max(latencies) / min(latencies) - 1)


@dataclass(frozen=True)
class Steadiness:
    """A reference network timed again and again, each timing a complete measurement."""

    target: str
    latencies_us: tuple[float, ...]
    seconds: float

    @property
    def spread_pct(self) -> float:
        return round(_spread_pct(self.latencies_us), 1)

    @property
    def steady(self) -> bool:
        """Whether timings taken now agree within the tolerance that validation applies."""
        return self.spread_pct <= DRIFT_WARNING_PCT

    def to_dict(self) -> dict:
        return {"target": self.target, "name": reference_name(self.target), "timings": len(self.latencies_us),
                "seconds": round(self.seconds, 1), "median_ms": round(float(np.median(self.latencies_us)) / 1000, 4),
                "min_ms": round(min(self.latencies_us) / 1000, 4), "max_ms": round(max(self.latencies_us) / 1000, 4),
                "spread_pct": self.spread_pct, "steady": self.steady, "tolerance_pct": DRIFT_WARNING_PCT,
                "latencies_ms": [round(x / 1000, 4) for x in self.latencies_us]}


def check_steadiness(device, cache: ModelCache, dtype: str, seconds: float = 30.0,
                     progress: Callable[[float], None] = lambda elapsed: None) -> Steadiness:
    """Time the first reference network, one complete measurement after another, for ``seconds``
    (at least three times).

    Why before profiling: a LUT is only as good as the one state its ops were measured in.  A
    shared host can alternate between speeds 20-30% apart in spells of seconds (other tenants on
    the same cores and cache; README, "How latency is measured on the host"), and a phone slows
    as it heats; timings that disagree now will disagree between the LUT and what it predicts."""
    path = reference_models(REFERENCE_NETWORKS[:1], dtype, cache)[REFERENCE_NETWORKS[0]]
    latencies: list[float] = []
    start = time.monotonic()
    while len(latencies) < 3 or time.monotonic() - start < seconds:
        latencies.append(device.measure_models([path])[0].latency_us)
        progress(time.monotonic() - start)
    return Steadiness(REFERENCE_NETWORKS[0], tuple(latencies), time.monotonic() - start)
