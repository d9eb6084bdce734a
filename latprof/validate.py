"""Checking predictions against measured end-to-end latency: table, metrics and a scatter plot."""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from latprof.arch import Architecture
from latprof.convert import ModelCache, ensure_architectures, ensure_models
from latprof.errors import LatprofError
from latprof.jsonl import append_jsonl, read_jsonl, write_json
from latprof.locks import folder_lock
from latprof.lut import ISOLATED_SOURCE, LUT
from latprof.measurement import Provenance
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.predict import predict_ops
from latprof.reference import DRIFT_WARNING_PCT, pace_us, reference_drift, reference_models

MEASURED_FILE, DEVICE_FILE, DISCARDED_FILE = "measured.jsonl", "device.json", "discarded.jsonl"
DRIFT_OPS = 40
SETTLE_SECONDS = 300.0
# Measurements of the models taken at most, however long the settle time: a machine that stays
# off its profiled speed gets a result with the drift reported beside it, not a loop.
MAX_ATTEMPTS = 3


def metrics(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """MAPE, share within +-5% and +-10%, and Spearman rank correlation."""
    error = np.abs(predicted - measured) / measured
    ranks = pd.DataFrame({"p": predicted, "m": measured}).rank()
    return {"models": int(len(measured)), "mape_pct": round(float(100 * error.mean()), 2),
            "within_5_pct": round(float(100 * (error <= 0.05).mean()), 1),
            "within_10_pct": round(float(100 * (error <= 0.10).mean()), 1),
            "spearman": round(float(ranks["p"].corr(ranks["m"])), 4) if len(measured) > 1 else float("nan")}


@dataclass
class Validation:
    table: pd.DataFrame
    metrics: dict
    incomplete: list[str]
    plot: str

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "incomplete": self.incomplete, "plot": self.plot,
                "models": self.table.to_dict(orient="records")}


def _open_measurements(out_dir: Path, provenance: Provenance) -> dict[str, dict]:
    """The whole-model measurements already in ``out_dir``, by target.  The folder records the
    provenance they were taken with, and a re-run with another device, thread count, delegate or
    dtype is refused: resuming must not count one configuration's latencies as another's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / DEVICE_FILE
    if marker.is_file():
        try:
            recorded = Provenance.from_dict(json.loads(marker.read_text())["provenance"])
        except (ValueError, KeyError, TypeError) as error:
            raise LatprofError(f"{marker} is corrupt ({error}); validate into a new folder (-o)") from None
        recorded.require_same(provenance, str(out_dir), "validate into a new folder (-o)")
    elif (out_dir / MEASURED_FILE).exists():
        raise LatprofError(f"{out_dir} holds measurements without their provenance; validate into a new folder (-o)")
    else:
        write_json(marker, {"format": "latprof-validation", "version": 1, "provenance": provenance.to_dict()})
    return {row["target"]: row for row in read_jsonl(out_dir / MEASURED_FILE, required=("target", "latency_us"))}


def reuse_measurements(source: str | Path, out_dir: str | Path) -> None:
    """Start ``out_dir`` with the whole-model measurements (and their provenance) of an earlier
    validation in ``source``, to score other predictions against the same measurement: measuring
    the models again would add the machine's drift between the two to the comparison."""
    source, out_dir = Path(source), Path(out_dir)
    if (out_dir / MEASURED_FILE).exists():
        raise LatprofError(f"{out_dir} holds measurements already; choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (DEVICE_FILE, MEASURED_FILE):
        shutil.copyfile(source / name, out_dir / name)


def validate(archs: list[Architecture], lut: LUT, device, out_dir: str | Path, cache: ModelCache,
             progress: Callable[[str, int, int], None] = lambda stage, done, total: None, predictor=None,
             models: list[str | Path] = (), settle_seconds: float = SETTLE_SECONDS) -> Validation:
    """Predict and measure each architecture (built and converted here) and each given .tflite
    file; compare.  Resumable: models already measured into ``out_dir`` are not measured again
    (an attempt cut short is taken again in full: its timings are of one moment, so a phone is
    asked for fresh ones, not for results it holds from earlier).
    ``predictor`` estimates the ops the LUT lacks.

    A LUT predicts the device in one state, the pace of the reference networks timed with its
    ops (``latprof.reference``); they are timed again in the same rounds as the models, and each
    prediction is put on their pace now (``predicted_now_ms``, scored as ``error_pct``; the
    LUT's own figure is scored as ``unpaced_error_pct``).  When they run more than
    ``DRIFT_WARNING_PCT`` off, the device is busier (or hotter) than when profiled and the models
    are measured again, for up to ``settle_seconds`` after the first check and ``MAX_ATTEMPTS``
    measurements in all, as a phone is left to cool down.  (A LUT without references falls back on some of its ops, re-measured:
    :func:`lut_drift`; ops miss the contention for a shared cache that slows whole networks.)  The set-aside measurements go
    to ``discarded.jsonl`` with the drift that set them aside; the last one is kept either way,
    and the result reports its drift and the number of attempts."""
    with folder_lock(out_dir, "validate"):
        return _validate(archs, lut, device, Path(out_dir), cache, progress, predictor, models, settle_seconds)


def _validate(archs: list[Architecture], lut: LUT, device, out_dir: Path, cache: ModelCache, progress, predictor,
              models, settle_seconds: float) -> Validation:
    from latprof.tflite_file import decompose

    provenance = device.provenance()
    # A LUT predicts only the configuration it was measured with.
    lut.provenance.require_same(provenance, "the LUT (unlike this device)", "profile this device")
    out_dir = Path(out_dir)
    done = _open_measurements(out_dir, provenance)
    targets = {a.to_string(): list(Network(a).ops) for a in archs}
    files = {str(m): decompose(m) for m in models}
    for name, parsed in files.items():
        if parsed.dtype != lut.provenance.dtype:
            raise LatprofError(f"{name} is a {parsed.dtype} model and the LUT holds {lut.provenance.dtype} "
                               "latencies; validate it against a LUT of its dtype")
        targets[name] = list(parsed.ops)
    predictions = {name: predict_ops(name, ops, lut, predictor) for name, ops in targets.items()}
    incomplete = [t for t, p in predictions.items() if p.latency_ms is None]
    complete = [t for t in targets if predictions[t].latency_ms is not None]
    todo = [t for t in complete if t not in done]
    todo_archs = [a for a in archs if a.to_string() in todo]
    paths = {**ensure_architectures(todo_archs, provenance.dtype, cache,
                                    progress=lambda done: progress("convert", done, len(todo_archs))),
             **{name: Path(name) for name in files}}
    probe = drift_probe(lut, [op for t in complete for op in targets[t]], cache)
    references = reference_models(lut.reference_us, provenance.dtype, cache) if todo else {}
    drift, attempts, deadline = {}, 0, None
    while todo:
        attempts += 1
        timings = device.measure_models([paths[t] for t in todo] + list(references.values()),
                                        progress=lambda n: progress("measure", n, len(todo) + len(references)))
        now = {target: timing.latency_us for target, timing in zip(references, timings[len(todo):])}
        pace = {"pace_us": round(pace_us(now), 3)} if now else {}
        rows = [{"target": t, **timing.to_dict(), **pace} for t, timing in zip(todo, timings)]
        drift = {**lut_drift(lut, probe, device, cache), **(reference_drift(lut.reference_us, now) if now else {})}
        if deadline is None:  # the settle time counts from the first check, however long measuring took
            deadline = time.monotonic() + settle_seconds
        if abs(state_drift_pct(drift) or 0.0) <= DRIFT_WARNING_PCT or time.monotonic() >= deadline \
                or attempts >= MAX_ATTEMPTS:
            append_jsonl(out_dir / MEASURED_FILE, rows)
            done.update((row["target"], row) for row in rows)
            break
        append_jsonl(out_dir / DISCARDED_FILE, [{**row, **{k: v for k, v in drift.items() if k.endswith("drift_pct")}}
                                                for row in rows])
    drift = drift or lut_drift(lut, probe, device, cache)
    lut_pace = pace_us(lut.reference_us) if lut.reference_us else None
    rows = [{"target": t, "predicted_ms": predictions[t].latency_ms,
             "predicted_now_ms": round(predictions[t].latency_ms * _pace_ratio(done[t], lut_pace), 4),
             "measured_ms": round(done[t]["latency_us"] / 1000, 4),
             "macs_m": round(sum(op.macs for op in targets[t]) / 1e6, 1), "predicted_ops": predictions[t].predicted_ops}
            for t in complete]
    table = pd.DataFrame(rows, columns=["target", "predicted_ms", "predicted_now_ms", "measured_ms", "macs_m",
                                        "predicted_ops"])
    table["error_pct"] = (100 * (table["predicted_now_ms"] - table["measured_ms"]) / table["measured_ms"]).round(2)
    table["unpaced_error_pct"] = (100 * (table["predicted_ms"] - table["measured_ms"]) / table["measured_ms"]).round(2)
    result = metrics(table["predicted_now_ms"].to_numpy(), table["measured_ms"].to_numpy()) if len(table) else {}
    if len(table):
        result["unpaced"] = metrics(table["predicted_ms"].to_numpy(), table["measured_ms"].to_numpy())
    result.update(drift, measure_attempts=attempts)
    table.to_csv(out_dir / "validation.csv", index=False)
    plot = str(out_dir / "predicted_vs_measured.png")
    if len(table):
        _plot(table, result, lut, Path(plot))
    validation = Validation(table, result, incomplete, plot)
    (out_dir / "summary.json").write_text(json.dumps({k: v for k, v in validation.to_dict().items() if k != "models"},
                                                     indent=1))
    return validation


def _pace_ratio(measured: dict, lut_pace: float | None) -> float:
    """How much slower the device ran when ``measured`` was timed than at the LUT's pace: the
    reference networks timed in the same rounds against the LUT's (1 without either)."""
    return measured["pace_us"] / lut_pace if lut_pace and measured.get("pace_us") else 1.0


def slower_or_faster(drift_pct: float) -> str:
    """A drift in percent (positive: slower now) in words."""
    return f"{abs(drift_pct):.1f}% {'slower' if drift_pct > 0 else 'faster'}"


def state_drift_pct(drift: dict) -> float | None:
    """The drift that says whether the device is in its profiled state: the reference networks'
    when the LUT has them, else its ops' (None when neither was measured)."""
    return drift.get("reference_drift_pct", drift.get("lut_drift_pct"))


def drift_probe(lut: LUT, ops: list[OpSpec], cache: ModelCache, count: int = DRIFT_OPS) -> list[OpSpec]:
    """A fixed sample of the validated networks' ops that the LUT holds as single-op models timed
    alone (an op timed inside a network has no such model to re-time), with those models."""
    alone = lut.table.index[lut.table["source"] == ISOLATED_SOURCE]
    keys = sorted({op.key for op in ops if op.key in alone})
    sample = [OpSpec.from_key(key) for key in random.Random(0).sample(keys, min(count, len(keys)))]
    ensure_models(sample, lut.provenance.dtype, cache)
    return sample


def lut_drift(lut: LUT, sample: list[OpSpec], device, cache: ModelCache) -> dict:
    """How much slower (+) or faster (-) the device runs the LUT's ops now than when they were
    profiled: the ``sample`` (see :func:`drift_probe`), re-measured.  A shared machine's speed
    drifts; a validation is only as good as this figure is small."""
    if not sample:
        return {}
    timings = device.measure_models([cache.path(spec, lut.provenance.dtype) for spec in sample])
    ratios = np.array([t.latency_us for t in timings]) / lut.table.loc[[s.key for s in sample], "latency_us"].to_numpy()
    q1, median, q3 = np.percentile(100 * (ratios - 1), [25, 50, 75])
    return {"lut_drift_pct": round(float(median), 1), "lut_drift_iqr_pct": [round(float(q1), 1), round(float(q3), 1)],
            "lut_drift_ops": len(sample)}


def _plot(table: pd.DataFrame, result: dict, lut: LUT, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    top = 1.1 * float(max(table["predicted_now_ms"].max(), table["measured_ms"].max()))
    line = np.array([0, top])
    ax.fill_between(line, 0.9 * line, 1.1 * line, color="tab:green", alpha=0.12, label="±10%")
    ax.fill_between(line, 0.95 * line, 1.05 * line, color="tab:green", alpha=0.2, label="±5%")
    ax.plot(line, line, color="black", linewidth=0.8)
    ax.scatter(table["measured_ms"], table["predicted_now_ms"], s=14, color="tab:blue", zorder=3)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency at the device's pace (ms)")
    p = lut.provenance
    ax.set_title(f"{p.device}, {p.threads} thread(s), {p.delegate}, {p.dtype}\n"
                 f"MAPE {result['mape_pct']}%, ±5%: {result['within_5_pct']}%, ±10%: {result['within_10_pct']}%, "
                 f"Spearman {result['spearman']}", fontsize=9)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
