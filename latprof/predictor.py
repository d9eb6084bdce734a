"""The latency predictor: scikit-learn regressors per op type, for ops a LUT has not measured.

``LatencyPredictor`` is a scikit-learn estimator: ``fit(X, y)`` takes op keys (or op specs) and
their microbenchmark latencies (LUT rows), ``predict(X)`` estimates the LUT row of ops never
measured, in microseconds (NaN for an op type it never saw), so cross-validation, grid search and pipelines work on it
unchanged.  One regressor per op type, because a convolution and an addition have nothing to teach each other.

A predictor file is JSON: its hyper-parameters, the LUT and provenance it was trained on, and the
training table itself.  Loading re-fits (a few seconds), so a file keeps working across
scikit-learn upgrades and loading one never runs code from it, unlike a pickle; saved check
predictions tell when a new library version fits a different model.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
from sklearn.linear_model import Ridge

from latprof.errors import LatprofError
from latprof.features import LINE, feature_matrix, shape_only
from latprof.jsonl import write_json
from latprof.lut import LUT
from latprof.ops import OpSpec

FORMAT, VERSION = "latprof-predictor", 1
MIN_TREE_SAMPLES = 20  # below this an op type gets its log-log line alone
FLOOR_US = 0.01  # a contribution below the timer's resolution, kept positive for the logarithm
CHECKS = 20  # saved predictions that a re-fit must reproduce
TIME_WEIGHT = 0.5  # examples weigh latency ** this: see _OpTypeModel
# The line's ridge penalty.  Within one search space an op type's counts move together (an SE
# block's MUL reads a map and a vector: input ~ output), so a barely penalised line (1e-3) split
# its slope into huge opposite coefficients, and an op that breaks the pattern ran away: the
# space's predictor put EfficientNet's swish MUL of two 112x112x32 maps at 71 ms, the whole
# network at 78x its measured time.  At 1.0 the same op gets 91 us and held-out ops score the
# same (MAPE 12.09% -> 12.01% in bench/predictor_accuracy.py).
LINE_ALPHA = 1.0


def _specs(X) -> list[OpSpec]:
    return [x if isinstance(x, OpSpec) else OpSpec.from_key(str(x)) for x in np.asarray(X, dtype=object).ravel()]


class _OpTypeModel:
    """One op type: a line in log-log space through the cost counts (latency grows as a power
    of the work and bytes), plus trees on what the line leaves (cache and tiling effects), which
    take over once there are enough examples to learn them from.

    A network's error is a sum of times, where a 1 ms op counts a thousand 1 us ones, so examples
    weigh the square root of their latency: on the whole space (25% trained, 75% held out) that
    took the error of the sum from -2.9% to -1.6% and the MAPE from 8.5% to 8.1% (weighing
    latency itself: sum -0.8%, MAPE 8.3%)."""

    def __init__(self, trees):
        self.line, self.trees = Ridge(alpha=LINE_ALPHA), trees

    def fit(self, features: np.ndarray, target: np.ndarray) -> _OpTypeModel:
        weight = np.exp(TIME_WEIGHT * (target - target.max()))
        weight /= weight.mean()
        self.line.fit(features[:, LINE], target, sample_weight=weight)
        if len(target) < MIN_TREE_SAMPLES:
            self.trees = None
        if self.trees is not None:
            self.trees.fit(features, target - self.line.predict(features[:, LINE]), sample_weight=weight)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Log latency."""
        mean = self.line.predict(features[:, LINE])
        return mean if self.trees is None else mean + self.trees.predict(features)

    def spread(self, features: np.ndarray) -> np.ndarray:
        """Standard deviation of log latency across trees; a type with too few examples for trees
        counts as most uncertain (1, a factor of e).  It asks every tree on its own, 100x the cost
        of the mean, so only adaptive sampling asks for it."""
        if isinstance(self.trees, ExtraTreesRegressor):
            return np.std([tree.predict(features) for tree in self.trees.estimators_], axis=0)
        return np.ones(len(features))


class _MedianModel:
    """An op type of shape arithmetic: the median of its rows' log latency.  Such an op costs what
    running any op costs, whatever its sizes, and the profiler times it to the microsecond, so a
    line through its sizes would fit rounding (a row of 0 us against one of 1 us)."""

    def fit(self, features: np.ndarray, target: np.ndarray) -> _MedianModel:
        self.value = float(np.median(target))
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Log latency."""
        return np.full(len(features), self.value)

    def spread(self, features: np.ndarray) -> np.ndarray:
        """As uncertain as a type without trees: 1, a factor of e."""
        return np.ones(len(features))


class LatencyPredictor(RegressorMixin, BaseEstimator):
    """Per-op-type regressors of log latency on log-scale cost features (see ``latprof.features``).

    ``estimator`` picks the trees on top of each type's log-log line: "trees" (extremely
    randomized trees, whose disagreement is the uncertainty adaptive sampling follows) or
    "boosting" (gradient-boosted trees).  Types with fewer than ``MIN_TREE_SAMPLES`` examples
    get the line alone.

    ``overhead_us`` is the invoke overhead every row of the LUT holds (``LUT.overhead_us``): the
    regressors learn what an op adds beyond it, the part that grows with the op's work, and
    predictions add it back.  Fitted to whole rows, a power law through a constant was wrong
    wherever the overhead is large against the op (rows holding 57-110 us of overhead, more than
    most of a network's ops take).

    Op types whose every row is shape arithmetic (``latprof.features.shape_only``: the SHAPE,
    STRIDED_SLICE and PACK of a free batch dimension) get the median of their rows instead.
    """

    def __init__(self, estimator: str = "trees", n_estimators: int = 200, random_state: int = 0,
                 overhead_us: float = 0.0):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.overhead_us = overhead_us

    def _trees(self):
        if self.estimator == "trees":
            return ExtraTreesRegressor(self.n_estimators, max_features=0.6, random_state=self.random_state, n_jobs=1)
        if self.estimator == "boosting":
            return HistGradientBoostingRegressor(max_iter=self.n_estimators * 2, learning_rate=0.05,
                                                 min_samples_leaf=5, random_state=self.random_state)
        raise LatprofError(f"unknown estimator {self.estimator!r}; use 'trees' or 'boosting'")

    def fit(self, X, y) -> LatencyPredictor:
        specs = _specs(X)
        target = np.log(np.maximum(np.asarray(y, dtype=float) - self.overhead_us, FLOOR_US))
        regular = np.array([not spec.unsupported for spec in specs], dtype=bool)  # features describe square windows only
        specs, target = [spec for spec, keep in zip(specs, regular) if keep], target[regular]
        self.models_ = {}
        for op, index in _by_type(specs).items():
            group = [specs[i] for i in index]
            model = _MedianModel() if all(shape_only(spec) for spec in group) else _OpTypeModel(self._trees())
            self.models_[op] = model.fit(feature_matrix(group), target[index])
        self.op_types_ = sorted(self.models_)
        return self

    def _per_type(self, specs: list[OpSpec], method: str) -> np.ndarray:
        """``method`` ("predict" or "spread") of each op's type model; NaN for op types the
        predictor never saw and for ops whose window it cannot describe (``OpSpec.unsupported``)."""
        values = np.full(len(specs), np.nan)
        for op, index in _by_type(specs).items():
            index = np.array([i for i in index if not specs[i].unsupported], dtype=int)
            if op in self.models_ and len(index):
                values[index] = getattr(self.models_[op], method)(feature_matrix([specs[i] for i in index]))
        return values

    def predict(self, X) -> np.ndarray:
        """Each op's microbenchmark latency (a LUT row) in microseconds; NaN for op types the
        predictor never saw and for ops with a window it cannot describe (a 1x7 kernel, say)."""
        return np.exp(self._per_type(_specs(X), "predict")) + self.overhead_us

    def uncertainty(self, X) -> np.ndarray:
        """Relative uncertainty of each prediction (spread of log latency across trees); NaN
        for unknown op types, which are the most uncertain of all."""
        return self._per_type(_specs(X), "spread")


def _by_type(specs: list[OpSpec]) -> dict[str, np.ndarray]:
    """Row numbers of the specs, grouped by op type."""
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(spec.op, []).append(i)
    return {op: np.array(rows) for op, rows in groups.items()}


def error_metrics(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """MAPE, the shares within +-5% and +-10%, and the error of the sum (how far the total time of
    the ops is off: what a network made of them would see), in percent."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    error = np.abs(predicted - measured) / measured
    return {"count": int(error.size), "mape_pct": round(float(100 * error.mean()), 2),
            "within_5_pct": round(float(100 * (error <= 0.05).mean()), 1),
            "within_10_pct": round(float(100 * (error <= 0.10).mean()), 1),
            "sum_error_pct": round(float(100 * (predicted.sum() / measured.sum() - 1)), 2)}


def per_type_metrics(specs: list[OpSpec], predicted: np.ndarray, measured: np.ndarray) -> pd.DataFrame:
    """Error per op type plus an "all" row: the table ``predictor train`` reports."""
    frame = pd.DataFrame({"op": [s.op for s in specs], "p": predicted, "m": measured}).dropna()
    rows = [{"op": op, **error_metrics(g["p"], g["m"])} for op, g in frame.groupby("op")]
    rows.append({"op": "all", **error_metrics(frame["p"], frame["m"])})
    return pd.DataFrame(rows)


def fit_predictor(lut: LUT, **params) -> LatencyPredictor:
    """A predictor fitted on a LUT's op rows, learning what each op adds beyond its overhead."""
    return LatencyPredictor(overhead_us=lut.overhead_us, **params).fit(*lut_training_data(lut))


def lut_training_data(lut: LUT) -> tuple[list[OpSpec], np.ndarray]:
    """Op specs of a LUT's op rows and their microbenchmark latencies: what the predictor learns
    to fill in for a row the LUT lacks (the overhead row is the runtime's, not an op's)."""
    from latprof.profiling import OVERHEAD_SPEC

    specs = [OpSpec.from_key(key) for key in lut.table.index if "|" in key and key != OVERHEAD_SPEC.key]
    specs = [spec for spec in specs if not spec.unsupported]  # a 1x7 kernel timed in its network, say: no features
    return specs, lut.table.loc[[spec.key for spec in specs], "latency_us"].to_numpy(dtype=float)


@dataclass
class TrainedPredictor:
    """A fitted predictor with what it was trained on: the unit a predictor file holds."""

    model: LatencyPredictor
    provenance: dict
    lut: dict
    keys: list[str]
    latency_us: list[float]
    cross_validation: list[dict]

    def save(self, path: str | Path) -> None:
        check = self.keys[:: max(1, len(self.keys) // CHECKS)][:CHECKS]
        document = {"format": FORMAT, "version": VERSION, "params": self.model.get_params(),
                    "trained_with": {"scikit-learn": version("scikit-learn"), "numpy": np.__version__},
                    "provenance": self.provenance, "lut": self.lut, "cross_validation": self.cross_validation,
                    "check": {"keys": check, "latency_us": self.model.predict(check).tolist()},
                    "columns": ["key", "latency_us"], "rows": [list(r) for r in zip(self.keys, self.latency_us)]}
        write_json(path, document)

    @classmethod
    def load(cls, path: str | Path) -> TrainedPredictor:
        path = Path(path)
        if not path.is_file():
            raise LatprofError(f"{path}: no such predictor; train one with 'latprof predictor train LUT -o {path}'")
        try:
            document = json.loads(path.read_text())
            if document.get("format") != FORMAT or document.get("version") != VERSION:
                raise ValueError(f"format {document.get('format')!r} version {document.get('version')!r}")
            keys = [str(row[0]) for row in document["rows"]]
            latency = [float(row[1]) for row in document["rows"]]
            if not keys or not all(np.isfinite(latency)) or min(latency) <= 0:
                raise ValueError("rows lack positive latencies")
            model = LatencyPredictor(**checked_params(document["params"])).fit(keys, latency)
            trained = cls(model, dict(document["provenance"]), dict(document["lut"]), keys, latency,
                          list(document.get("cross_validation", [])))
            check = document["check"]
            drift = np.abs(model.predict([str(key) for key in check["keys"]])
                           / np.asarray(check["latency_us"], dtype=float) - 1)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, LatprofError) as exc:
            raise LatprofError(f"{path}: corrupt or foreign predictor file ({exc}); "
                               "re-train it with 'latprof predictor train'") from None
        if drift.size and float(drift.max()) > 0.01:
            print(f"latprof: warning: {path} re-fitted with scikit-learn {version('scikit-learn')} predicts up to "
                  f"{100 * drift.max():.1f}% off what it saved; re-train it to make that the reference",
                  file=sys.stderr)
        return trained


# What a predictor file may ask of the re-fit, within bounds: a file asking for a billion trees
# would hang the loader instead of failing.
PARAM_BOUNDS = {"n_estimators": (1, 5000), "random_state": (0, 2**32 - 1)}


def checked_params(params: dict) -> dict:
    """A predictor file's hyper-parameters, each of a known name, type and range."""
    params = dict(params)
    unknown = set(params) - {"estimator", "overhead_us", *PARAM_BOUNDS}
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}")
    if params.get("estimator", "trees") not in ("trees", "boosting"):
        raise ValueError(f"estimator {params['estimator']!r} is not 'trees' or 'boosting'")
    for name, (low, high) in PARAM_BOUNDS.items():
        value = params.get(name, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} is {value!r}, not a whole number within [{low}, {high}]")
    overhead = params.get("overhead_us", 0.0)
    if isinstance(overhead, bool) or not isinstance(overhead, (int, float)) or not 0 <= overhead <= 1e8:
        raise ValueError(f"overhead_us is {overhead!r}, not a latency in us")
    return params


def lut_identity(lut: LUT, path: str | Path) -> dict:
    """What identifies the LUT a predictor learned from: its file, the hash of the bytes it was
    loaded from (not re-read, so it cannot describe a file changed since), and its size."""
    return {"path": str(path), "sha256": lut.sha256, "rows": len(lut), "overhead_us": lut.overhead_us}


def cross_validate(model: LatencyPredictor, specs: list[OpSpec], latency_us: np.ndarray, folds: int = 5,
                   seed: int = 0) -> pd.DataFrame:
    """Held-out error per op type: every op predicted by a model fitted without it."""
    from sklearn.model_selection import KFold, cross_val_predict

    keys = np.array([spec.key for spec in specs], dtype=object)
    splitter = KFold(min(folds, len(keys)), shuffle=True, random_state=seed)
    predicted = cross_val_predict(model, keys, latency_us, cv=splitter)
    return per_type_metrics(specs, predicted, latency_us)


def train_predictor(lut: LUT, lut_path: str | Path, estimator: str = "trees", folds: int = 5) -> TrainedPredictor:
    """Fit a predictor on a LUT's ops and report its cross-validated error per op type."""
    specs, latency = lut_training_data(lut)
    if len(specs) < 2:
        raise LatprofError(f"{lut_path}: {len(specs)} op rows are too few to train a predictor; profile more ops")
    model = fit_predictor(lut, estimator=estimator)
    table = cross_validate(model, specs, latency, folds)  # cross_val_predict fits clones: the model stays as fitted
    return TrainedPredictor(model, lut.provenance.to_dict(), lut_identity(lut, lut_path), [s.key for s in specs],
                            latency.tolist(), table.to_dict(orient="records"))
