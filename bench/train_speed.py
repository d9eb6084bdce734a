"""What a candidate's ACC costs: train sampled architectures at the default settings, one thread
each, and print params, seconds and validation accuracy, the spread of accuracy, and how the
zero-cost proxy (NASWOT, an option only) ranks the same networks.

Runs ``--workers`` spawned processes side by side, as the search does (2 on this 2-core machine).

    python bench/train_speed.py [--count 8] [--seed 0] [--workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.stats import spearmanr

from latprof.arch import Architecture
from latprof.search.train import TrainSettings, train_candidate, zero_cost_score
from latprof.space import get_space


def _evaluate(text: str, settings: TrainSettings) -> tuple:
    return train_candidate(text, settings), zero_cost_score(text, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    settings = TrainSettings()
    archs = [(f"sample {i}", arch.to_string())
             for i, arch in enumerate(get_space("mnasnet").sample_many(args.count, args.seed))]
    archs += [("mobilenetv2", "mobilenetv2"), ("mnasnet-a1", "mnasnet-a1")]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_evaluate, [text for _, text in archs], [settings] * len(archs)))
    wall = time.perf_counter() - started

    print(f"settings: {settings}; {args.workers} workers, 1 thread each")
    print(f"{'network':12} {'deploy res':>10} {'width':>5} {'params':>10} {'train s':>8} {'val acc':>8} {'NASWOT':>8}")
    for (name, text), (result, score) in zip(archs, results):
        arch = Architecture.from_string(text)
        print(f"{name:12} {arch.resolution:>10} {arch.width:>5g} {result.params:>10,} {result.seconds:>8.1f} "
              f"{result.accuracy:>8.3f} {score:>8.1f}")
    accuracy = np.array([result.accuracy for result, _ in results])
    seconds = np.array([result.seconds for result, _ in results])
    rho = spearmanr(accuracy, [score for _, score in results]).statistic
    print(f"accuracy min/median/max: {accuracy.min():.3f} / {np.median(accuracy):.3f} / {accuracy.max():.3f} "
          f"(chance 0.100); seconds min/median/max: {seconds.min():.0f} / {np.median(seconds):.0f} / {seconds.max():.0f}")
    print(f"Spearman(NASWOT, accuracy) = {rho:.2f} over {len(archs)} networks; wall time {wall:.0f} s")


if __name__ == "__main__":
    main()
