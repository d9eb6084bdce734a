"""What a user wants from a search: the Pareto front with the reference models, the top-k, the
best model exported with its measured latency next to the predicted one."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from latprof.arch import Architecture
from latprof.convert import ModelCache, ensure_architectures
from latprof.jsonl import append_jsonl, read_jsonl
from latprof.search.loop import SearchConfig, read_log
from latprof.search.train import train_candidate

REFERENCES = ("mobilenetv2", "mnasnet-a1", "mnasnet-b1")
REFERENCE_MULTIPLIERS = (0.35, 0.5, 0.75, 1.0, 1.4)
REFERENCES_FILE = "references.jsonl"


@dataclass
class Exported:
    arch: str
    path: str
    predicted_ms: float
    measured_ms: float

    @property
    def error_pct(self) -> float:
        return 100 * (self.predicted_ms / self.measured_ms - 1)


def scaled_reference(name: str, target_ms: float, latency_ms: Callable[[Architecture], float],
                     resolution: int) -> Architecture:
    """The reference at the deployment resolution, with the width multiplier whose latency is
    closest to the target: the fair point to compare a search result with.

    Latency grows with MACs across multipliers, so the width-1.0 network's latency, scaled by the
    MACs ratio, picks the multiplier; only those two are ever looked up or measured.
    """
    from latprof.network import Network

    candidates = {m: Architecture.from_string(f"{name}:res{resolution}_w{m}") for m in REFERENCE_MULTIPLIERS}
    base_ms, base_macs = latency_ms(candidates[1.0]), Network(candidates[1.0]).macs
    return min(candidates.values(), key=lambda arch: abs(base_ms * Network(arch).macs / base_macs - target_ms))


def evaluate_references(out_dir: Path, config: SearchConfig, latency_source, executor, resolution: int) -> list[dict]:
    """Reference models trained like every candidate (once: kept in the search folder)."""
    path = out_dir / REFERENCES_FILE
    done = {row["name"]: row for row in read_jsonl(path, required=("name", "arch"))}
    lookup = functools.cache(lambda text: latency_source.latency_ms(Architecture.from_string(text)))  # measure once
    archs = {name: scaled_reference(name, config.target_ms, lambda a: lookup(a.to_string())[0], resolution)
             for name in REFERENCES if name not in done}
    futures = {name: executor.submit(train_candidate, arch.to_string(), config.train) for name, arch in archs.items()}
    for name, future in futures.items():
        latency, source = lookup(archs[name].to_string())
        accuracy = future.result().accuracy
        row = {"name": name, "arch": archs[name].to_string(), "latency_ms": latency, "latency_source": source,
               "accuracy": round(accuracy, 5), "reward": round(config.reward(accuracy, latency), 6)}
        append_jsonl(path, [row])
        done[name] = row
    return [done[name] for name in REFERENCES]


def pareto_front(table: pd.DataFrame) -> pd.DataFrame:
    """Candidates no other candidate beats on both accuracy and latency, fastest first."""
    ordered = table.sort_values(["latency_ms", "accuracy"], ascending=[True, False])
    return ordered[ordered["accuracy"] > ordered["accuracy"].cummax().shift(fill_value=-1.0)]


def plot_pareto(table: pd.DataFrame, front: pd.DataFrame, references: list[dict], target_ms: float,
                path: Path) -> Path:
    """Every candidate, the ``front`` (``pareto_front(table)``) and the references, against the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5))
    axes.scatter(table["latency_ms"], table["accuracy"], s=12, color="0.6", label="candidates")
    axes.plot(front["latency_ms"], front["accuracy"], "o-", color="tab:blue", label="Pareto front")
    for row in references:
        axes.scatter(row["latency_ms"], row["accuracy"], marker="*", s=160, label=f"{row['name']} (scaled to target)")
        axes.annotate(row["name"], (row["latency_ms"], row["accuracy"]), textcoords="offset points", xytext=(5, 5))
    axes.axvline(target_ms, color="tab:red", linestyle="--", label=f"target {target_ms} ms")
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("validation accuracy (proxy task)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def export_model(arch: Architecture, path: str | Path, device, latency_source, cache: ModelCache) -> Exported:
    """The architecture at its deployment resolution as .tflite, measured on ``device``."""
    dtype = device.provenance().dtype
    model = ensure_architectures([arch], dtype, cache)[arch.to_string()]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(model.read_bytes())
    (timing,) = device.measure_models([model])
    predicted, _ = latency_source.latency_ms(arch)
    return Exported(arch.to_string(), str(path), predicted, round(timing.latency_us / 1000, 4))


def summarize(out_dir: Path, config: SearchConfig, latency_source, executor, device, cache: ModelCache,
              top_k: int = 10) -> dict:
    """Top-k table, the Pareto front (``pareto.csv``; the result of a pareto search), its plot with the
    references, and the model of the best reward exported and measured."""
    log = read_log(out_dir)
    table = pd.DataFrame([entry for entry in log if not entry["rejected"]])
    best = table.sort_values("reward", ascending=False).head(top_k)
    columns = ["id", "reward", "accuracy", "latency_ms", "latency_source", "arch"]
    best[columns].to_csv(out_dir / "top_k.csv", index=False)
    front = pareto_front(table)[columns]
    front.to_csv(out_dir / "pareto.csv", index=False)
    resolution = max(Architecture.from_string(text).resolution for text in table["arch"])
    references = evaluate_references(out_dir, config, latency_source, executor, resolution)
    plot = plot_pareto(table, front, references, config.target_ms, out_dir / "pareto.png")
    exported = export_model(Architecture.from_string(best.iloc[0]["arch"]), out_dir / "best.tflite", device,
                            latency_source, cache)
    rejected = len(log) - len(table)
    return {"trained": len(table), "rejected": rejected, "top_k": best[columns].to_dict(orient="records"),
            "references": references, "pareto_plot": str(plot), "pareto_front": front.to_dict(orient="records"),
            "objective": config.objective,
            "best": {**exported.__dict__, "error_pct": round(exported.error_pct, 2)}}
