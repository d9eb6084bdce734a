"""Reference networks: a probe of the device's state, timed when ops are profiled and again when
a validation measures whole models.

A device does not always run at one speed.  A phone throttles when hot; on a shared host other
tenants contend for the last-level cache, which slows a whole network (its weights must stay
cached from one inference to the next) while single-op microbenchmarks, which load their own
weights, barely notice (README, "How latency is measured on the host").  So the op latencies of
a LUT cannot tell whether the device is now in the state it was profiled in; a whole network can.
Profiling times two reference networks after its ops and records them in the run folder; the LUT
keeps their latency, and ``validate`` times them again to compare like with like.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from latprof.arch import REFERENCES, Architecture
from latprof.convert import ModelCache, ensure_architectures
from latprof.jsonl import append_jsonl, read_jsonl

# Two weight-heavy networks of the space (3.5M and 3.9M parameters), one with squeeze-excite.
REFERENCE_NAMES = ("mobilenetv2", "mnasnet-a1")
REFERENCE_NETWORKS = tuple(REFERENCES[name].to_string() for name in REFERENCE_NAMES)
REFERENCE_FILE = "reference.jsonl"


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
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    append_jsonl(Path(run_dir) / REFERENCE_FILE, [{"target": target, "latency_us": timing.latency_us, "time": stamp}
                                                   for target, timing in zip(REFERENCE_NETWORKS, timings)])


def read_references(run_dir: str | Path) -> list[dict]:
    return read_jsonl(Path(run_dir) / REFERENCE_FILE, required=("target", "latency_us"))


def reference_drift(reference_us: dict[str, float], now_us: dict[str, float]) -> dict:
    """How much slower (+) or faster (-) the reference networks run now than when the LUT was
    profiled: the median over networks, in percent."""
    drift = [100 * (now_us[target] / reference_us[target] - 1) for target in reference_us]
    return {"reference_drift_pct": round(float(np.median(drift)), 1), "reference_networks": len(drift)}


def reference_spread_pct(records: list[dict]) -> float | None:
    """The largest difference, over reference networks, between their slowest and fastest timing
    across profiling calls, in percent: how far apart the device states are that one LUT mixes.
    None with fewer than two timings of any network."""
    by_target: dict[str, list[float]] = {}
    for record in records:
        by_target.setdefault(record["target"], []).append(float(record["latency_us"]))
    spreads = [100 * (max(v) / min(v) - 1) for v in by_target.values() if len(v) > 1]
    return round(max(spreads), 1) if spreads else None
