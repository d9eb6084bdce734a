"""What a measurement is: timing statistics plus the provenance that makes them comparable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from latprof.errors import LatprofError


@dataclass(frozen=True)
class Provenance:
    """Everything that changes a latency besides the model itself.

    Two measurements may be compared or merged only when every field except ``details`` agrees;
    ``details`` records the rest (host name, governor, converter version, ...) for the reader.
    """

    device: str
    hardware: str
    runtime: str
    binary_sha256: str
    threads: int
    delegate: str
    dtype: str
    method: str
    details: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Provenance:
        names = {f.name for f in fields(cls)}
        missing = names - set(data) - {"details"}
        if missing:
            raise LatprofError(f"provenance lacks {sorted(missing)}: the data predates this format; re-measure")
        return cls(**{k: v for k, v in data.items() if k in names})

    def require_same(self, other: Provenance, what: str, remedy: str) -> None:
        """Refuse to compare or merge measurements of other provenance, naming what differs."""
        if self != other:
            raise LatprofError(f"{what} was measured with other provenance ({'; '.join(self.differences(other))}); "
                               f"{remedy}")

    def differences(self, other: Provenance) -> list[str]:
        """Human-readable list of the fields that make ``other`` incomparable with this one."""
        return [f"{f.name}: {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
                for f in fields(self) if f.compare and getattr(self, f.name) != getattr(other, f.name)]


# An op known this closely is exact enough, however small: a network sums about a hundred ops
# to milliseconds.
STABLE_FLOOR_US = 0.5


def known_within(uncertainty_us, latency_us, within_pct: float):
    """Whether a latency is known within ``within_pct`` of itself, or within ``STABLE_FLOOR_US``
    (scalars or arrays): the rule the host stops timing a model by, and ``lut show`` counts by."""
    return uncertainty_us <= np.maximum(STABLE_FLOOR_US, latency_us * within_pct / 100)


def quantile_uncertainty_us(values, quantile: float) -> float:
    """Half the width of a distribution-free interval around the ``quantile`` of ``values``: the
    order statistics one standard error of the quantile's rank either side of it (about 68%).

    Why order statistics: round values on a shared host are skewed and often two-level, so an
    interval that assumes a normal spread would say "stable" while the quantile still jumps."""
    ordered = np.sort(np.asarray(values, dtype=float))
    rank, step = len(ordered) * quantile, float(np.sqrt(len(ordered) * quantile * (1 - quantile)))
    low, high = max(0, int(np.floor(rank - step))), min(len(ordered) - 1, int(np.ceil(rank + step)))
    return float(ordered[high] - ordered[low]) / 2


# Bursts either side of a burst whose speed tells the machine's speed when it ran.
PACE_NEIGHBOURS = 3
PACE_PASSES = 3  # refinements of the models' own times and the paces (neighbour_pace)


def neighbour_pace(bursts: Sequence[tuple[int, float]], neighbours: int = PACE_NEIGHBOURS,
                   passes: int = PACE_PASSES) -> np.ndarray:
    """For each burst of an interleaved call, in the order they ran (which model, its round
    value), how slow the machine ran then against its median speed in the call: the median,
    over the ``neighbours`` bursts of other models either side, of their value over their
    model's own time (1 where no other model ran near it).

    A shared machine's speed moves by tens of percent in spells of seconds, and bursts a fraction
    of a second apart see the same spell; dividing a round value by its pace leaves the model's
    own time at the call's median speed.  A model's own value is left out: its pace must not
    follow it.  A model's own time is the median of its paced values, so the paces are refined
    over a few ``passes``: models timed over different stretches of the call (one stops early,
    another goes on into a slow spell) end on the same speed."""
    models = np.array([model for model, _ in bursts], dtype=int)
    values = np.array([value for _, value in bursts], dtype=float)
    pace = np.ones(len(bursts))
    for _ in range(passes):
        own = {model: float(np.median(values[models == model] / pace[models == model])) for model in set(models.tolist())}
        relative = values / np.array([own[model] for model in models])
        for position in range(len(bursts)):
            window = slice(max(0, position - neighbours), position + neighbours + 1)
            others = relative[window][models[window] != models[position]]
            pace[position] = float(np.median(others)) if others.size else 1.0
        pace /= float(np.median(pace))
    return pace


def paces_by_model(order: Sequence[int], per_round: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """Per model, the pace (:func:`neighbour_pace`) of each of its rounds, from the models in the
    order they were timed and each model's round values, in that order."""
    seen = [0] * len(per_round)
    bursts = []
    for model in order:
        bursts.append((model, per_round[model][seen[model]]))
        seen[model] += 1
    pace, order = neighbour_pace(bursts), np.asarray(order)
    return [pace[order == model] for model in range(len(per_round))]


@dataclass(frozen=True)
class Timing:
    """Robust statistics of one model's latency, in microseconds."""

    latency_us: float
    median_us: float
    p5_us: float
    p95_us: float
    runs: int
    conditions: dict = field(default_factory=dict, compare=False)  # e.g. a phone's temperature and clocks

    @classmethod
    def from_rounds(cls, round_values_us, samples_us, quantile: float, positive: bool = True) -> Timing:
        """``latency_us`` is the ``quantile`` of the per-round values (the latency when the core
        is not contended); median and p5/p95 describe all invocations, contention included.  The
        conditions say over how many rounds, and how sure the estimate is (``uncertainty_us``).
        Without ``positive``, zero is a valid sample: a profiler's whole-microsecond time of an
        op inside a network can be."""
        rounds, values = np.asarray(round_values_us, dtype=float), np.asarray(samples_us, dtype=float)
        if values.size == 0 or not np.all(np.isfinite(values)) or values.min() < 0 or (positive and values.min() == 0):
            raise LatprofError("no valid timing samples (empty, zero or non-finite): refusing to record")
        p5, med, p95 = np.percentile(values, [5, 50, 95])
        conditions = {"rounds": int(rounds.size), "uncertainty_us": round(quantile_uncertainty_us(rounds, quantile), 3)}
        return cls(float(np.quantile(rounds, quantile)), float(med), float(p5), float(p95), int(values.size), conditions)

    def to_dict(self) -> dict:
        data = asdict(self)
        if not data["conditions"]:
            del data["conditions"]
        return data


@dataclass(frozen=True)
class NetworkProfile:
    """A network timed whole, and each of its ops inside it (method in-network), in op order."""

    model: str
    latency: Timing
    ops: list[Timing]

    @property
    def residual_us(self) -> float:
        """What the network takes beyond the sum of its ops: an invoke, and time the profiler put on
        no operator (an in-network LUT spreads it over the ops: ``latprof.lut.table_from_records``)."""
        return self.latency.latency_us - sum(op.latency_us for op in self.ops)
