"""Adaptive profiling: spend a measurement budget where the predictor is least certain.

A first share of the budget is measured at random, the predictor is fitted, and each following
round measures the ops of the pool whose predictions the trees disagree on most (an op type the
predictor has never seen comes first).  A fixed random check set, measured up front and never
trained on, scores every round, so the report shows whether more data helped.

Every decision is recomputed from what the run folder holds, so a killed run resumes where it
stopped, keeping every measurement it made, and re-running a finished run measures nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from latprof.convert import ModelCache
from latprof.errors import LatprofError
from latprof.jsonl import append_jsonl, read_jsonl
from latprof.lut import table_from_records
from latprof.ops import OpSpec
from latprof.predictor import LatencyPredictor, error_metrics
from latprof.profiling import profile, read_run

ROUNDS_FILE = "adaptive.jsonl"


@dataclass(frozen=True)
class AdaptivePlan:
    """``budget`` ops to learn from, the first ``first_share`` of them random, the rest in
    ``rounds`` rounds; ``check`` more ops, random, only to score the rounds."""

    budget: int
    rounds: int = 4
    first_share: float = 0.4
    check: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget < 2 or self.rounds < 1 or not 0 < self.first_share <= 1 or self.check < 1:
            raise LatprofError("adaptive profiling needs --budget >= 2, rounds >= 1 and a check set of >= 1 ops")

    def targets(self) -> list[int]:
        """How many training ops the run holds after the random start and after each round."""
        first = max(2, round(self.budget * self.first_share))
        steps = np.linspace(first, self.budget, self.rounds + 1).round().astype(int)
        return sorted(set(int(s) for s in steps))


@dataclass
class RoundReport:
    round: int
    trained_on: int
    mape_pct: float
    within_5_pct: float
    within_10_pct: float
    check_ops: int
    sum_error_pct: float = 0.0


def _measured(run_dir: Path) -> tuple[dict[str, float], float]:
    """The latency of every op measured in the run, by key, as the LUT built from it will hold
    it (calibrated to its time in a network, with the in-network method), and the run's invoke
    overhead."""
    _, records = read_run(run_dir)
    table, overhead, _ = table_from_records(pd.DataFrame(records))
    return dict(zip(table.index, table["latency_us"].astype(float))), overhead


def _fit(train: list[OpSpec], measured: dict[str, float], overhead_us: float) -> LatencyPredictor:
    """The round's predictor, fitted as ``predictor train`` fits one: on what ops add beyond the
    invoke overhead."""
    return LatencyPredictor(overhead_us=overhead_us).fit(train, [measured[s.key] for s in train])


def select(model: LatencyPredictor, candidates: list[OpSpec], count: int) -> list[OpSpec]:
    """The ``count`` candidates whose predictions are least sure in microseconds (relative
    spread times what the op is predicted to add): a network's error is the sum of its ops'
    errors in time, so a doubtful large op costs more than a doubtful small one.  Unknown op
    types come first."""
    doubt = model.uncertainty(candidates) * (model.predict(candidates) - model.overhead_us)
    order = np.argsort(-np.nan_to_num(doubt, nan=np.inf), kind="stable")
    return [candidates[i] for i in order[:count]]


def _score(model: LatencyPredictor, check: list[OpSpec], measured: dict[str, float]) -> dict:
    truth = np.array([measured[s.key] for s in check])
    predicted = model.predict(check)
    known = np.isfinite(predicted)
    return error_metrics(predicted[known], truth[known])


def adaptive_profile(pool: list[OpSpec], plan: AdaptivePlan, device, run_dir: str | Path, cache: ModelCache,
                     request: dict | None = None,
                     progress: Callable[[str, int, int], None] = lambda stage, done, total: None) -> list[RoundReport]:
    """Profile ``pool`` adaptively into ``run_dir``; returns one report per round so far.

    Every measured op of ``pool`` outside the check set counts toward a round's target, those
    the calibration networks timed in context included: they cost measurements as well."""
    run_dir = Path(run_dir)
    pool = sorted(set(pool))
    if plan.budget + plan.check > len(pool):
        raise LatprofError(f"the pool has {len(pool)} op specs, fewer than --budget {plan.budget} plus "
                           f"{plan.check} check ops; lower the budget or widen the pool")
    rng = random.Random(plan.seed)
    shuffled = rng.sample(pool, len(pool))
    check, rest = shuffled[:plan.check], shuffled[plan.check:]
    targets = plan.targets()
    # The check set and the random start come first; their order is fixed by the seed.
    profile(device, run_dir, cache, specs=check + rest[:targets[0]], request=request, progress=progress)
    reports = [RoundReport(**row) for row in read_jsonl(run_dir / ROUNDS_FILE, required=("round", "trained_on"))]
    for number, target in enumerate(targets):
        measured, overhead = _measured(run_dir)
        train = [s for s in rest if s.key in measured]
        if len(train) < target:  # a round whose selection was cut short by a kill: finish it
            model = _fit(train, measured, overhead)
            profile(device, run_dir, cache, specs=select(model, [s for s in rest if s.key not in measured],
                                                         target - len(train)), progress=progress)
            measured, overhead = _measured(run_dir)
            train = [s for s in rest if s.key in measured]
        if number < len(reports):
            continue
        model = _fit(train, measured, overhead)
        scored = _score(model, [s for s in check if s.key in measured], measured)
        report = RoundReport(number, len(train), scored["mape_pct"], scored["within_5_pct"], scored["within_10_pct"],
                             scored["count"], scored["sum_error_pct"])
        append_jsonl(run_dir / ROUNDS_FILE, [asdict(report)])
        reports.append(report)
    return reports
