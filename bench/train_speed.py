"""What a candidate's ACC costs in the search: train sampled architectures (and MobileNetV2 and
MnasNet-A1) at the default training settings, one thread each, side by side as the search does.

Prints per network its parameters, training seconds, validation accuracy and NASWOT score (the
zero-cost proxy, an option of the search, never its default); then the spread of accuracy and
seconds, and how well NASWOT ranks the networks by accuracy (Spearman).

    python bench/train_speed.py [--count 8] [--seed 0] [--workers 2] [-o runs/bench/train_speed.json]

Run from the repo root (bench/common.py is imported from the script's folder).  TrainSettings
aims at 10-30 s a network on a core; on 2 shared cores one took 50-110 s, so expect 5-10 minutes
for the 10 networks of the defaults.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict

import common
import numpy as np
from scipy.stats import spearmanr

from latprof.arch import Architecture
from latprof.search.train import TrainSettings, train_candidate, zero_cost_score
from latprof.space import get_space


def _evaluate(text: str, settings: TrainSettings) -> tuple:
    return train_candidate(text, settings), zero_cost_score(text, settings)


def main() -> None:
    parser = common.parser(__doc__, "train_speed")
    parser.add_argument("--count", type=int, default=8, help="sampled architectures (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes training at once (default: %(default)s)")
    args = parser.parse_args()

    settings = TrainSettings()
    archs = [(f"sample {i}", arch.to_string())
             for i, arch in enumerate(get_space("mnasnet").sample_many(args.count, args.seed))]
    archs += [("mobilenetv2", "mobilenetv2"), ("mnasnet-a1", "mnasnet-a1")]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_evaluate, [text for _, text in archs], [settings] * len(archs)))
    wall = time.perf_counter() - started

    rows = []
    for (name, text), (result, score) in zip(archs, results):
        arch = Architecture.from_string(text)
        rows.append({"network": name, "deploy_res": arch.resolution, "width": arch.width, "params": result.params,
                     "train_s": round(result.seconds, 1), "val_acc": round(result.accuracy, 3),
                     "naswot": round(float(score), 1), "arch": arch.to_string()})
    accuracy = np.array([row["val_acc"] for row in rows])
    seconds = np.array([row["train_s"] for row in rows])
    rho = float(spearmanr(accuracy, [row["naswot"] for row in rows]).statistic) if len(rows) > 2 else None
    summary = {"networks": len(rows), "workers": args.workers, "wall_s": round(wall, 1),
               "accuracy_min_median_max": [float(accuracy.min()), float(np.median(accuracy)), float(accuracy.max())],
               "chance_accuracy": 0.1,
               "train_s_min_median_max": [float(seconds.min()), float(np.median(seconds)), float(seconds.max())],
               "spearman_naswot_accuracy": None if rho is None else round(rho, 3)}

    common.print_table([{k: v for k, v in row.items() if k != "arch"} for row in rows],
                       title=f"training settings: {settings}; {args.workers} workers, 1 thread each")
    common.print_pairs(list(summary.items()), title="summary")
    common.write_json(args.output, {**common.context("train_speed"), "settings": asdict(settings), "summary": summary,
                                    "networks": rows})


if __name__ == "__main__":
    main()
