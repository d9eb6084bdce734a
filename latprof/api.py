"""latprof as a library: what a notebook or another NAS framework (Optuna, NNI, your own loop) calls.

    import latprof

    lut = latprof.load_lut("runs/demo/lut.json")
    predictor = latprof.load_predictor("predictor.json", lut)      # optional: ops the LUT lacks
    result = latprof.latency("mnasnet-a1", lut, predictor)         # or an Architecture, or a .tflite path
    result.latency_ms, result.breakdown                            # total, and each op's share and source
    space = latprof.search_space()                                 # the MnasNet space: choices and decode
    archs = [space.decode(d) for d in decisions]
    latprof.latencies(archs, lut, predictor)                       # a whole batch at once, ms or None
    latprof.reward(0.75, 12.0, target_ms=10.0)                     # MnasNet's ACC x (LAT/T)^w

Everything here is a thin, stable name over the modules that do the work; those stay importable
for more (``latprof.pricing.Pricer`` keeps its memory between batches, for instance).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from latprof.arch import Architecture
from latprof.lut import LUT
from latprof.predict import Prediction, predict
from latprof.pricing import Pricer
from latprof.search.reward import Reward
from latprof.space import SearchSpace, get_space


def load_lut(path: str | Path, allow_mixed: bool = False) -> LUT:
    """A LUT file ('latprof lut build' or 'lut import'); one mixing runs of different provenance
    is refused unless ``allow_mixed``."""
    return LUT.load(path, allow_mixed)


def load_predictor(path: str | Path, lut: LUT):
    """A predictor file ('latprof predictor train'), refused when it learned from another device,
    runtime, thread count, delegate or dtype than ``lut``: its estimates would not add up with it."""
    from latprof.measurement import Provenance
    from latprof.predictor import TrainedPredictor

    trained = TrainedPredictor.load(path)
    Provenance.from_dict(trained.provenance).require_same(
        lut.provenance, f"the predictor {path} (unlike the LUT)", "train a predictor on this LUT")
    return trained.model


def latency(target: str | Architecture | Path, lut: LUT, predictor=None) -> Prediction:
    """The latency of one architecture (a reference name, block string or ``Architecture``) or
    ``.tflite`` file, with its breakdown; ``latency_ms`` is None when ops are ``missing``."""
    text = target.to_string() if isinstance(target, Architecture) else str(target)
    return predict(text, lut, predictor)


def latencies(archs: Sequence[Architecture], lut: LUT, predictor=None) -> list[float | None]:
    """Latencies in ms of a batch of architectures (None where ops are missing), the numbers of
    :func:`latency` at a fraction of the cost; keep a ``latprof.pricing.Pricer`` to price batch
    after batch."""
    return [price.latency_ms for price in Pricer(lut, predictor).price(archs)]


def reward(accuracy: float, latency_ms: float, target_ms: float, constraint: str = "soft",
           alpha: float | None = None, beta: float | None = None) -> float:
    """MnasNet's reward ACC x (LAT/T)^w: w is alpha below the target and beta above it; "soft"
    is the paper's alpha = beta = -0.07, "hard" is alpha = 0, beta = -1."""
    return Reward.preset(constraint, target_ms, alpha, beta)(accuracy, latency_ms)


def search_space(name: str = "mnasnet") -> SearchSpace:
    """A search space: ``choices()`` lists its decisions and their options, ``decode(decisions)``
    turns one index per decision into an ``Architecture``."""
    return get_space(name)
