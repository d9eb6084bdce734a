"""MnasNet's reward: accuracy traded against latency around a target (Tan et al. 2019, eq. 2).

R = ACC x (LAT / T)^w with w = alpha when LAT <= T and beta otherwise.  The paper's main setting
is the soft constraint alpha = beta = -0.07 (a network twice as slow must be about 5% more accurate
to score the same); the hard constraint alpha = 0, beta = -1 ignores latency below the target and
punishes it sharply above.
"""

from __future__ import annotations

from dataclasses import dataclass

from latprof.errors import LatprofError

PRESETS = {"soft": (-0.07, -0.07), "hard": (0.0, -1.0)}


@dataclass(frozen=True)
class Reward:
    target_ms: float
    alpha: float = -0.07
    beta: float = -0.07

    def __post_init__(self) -> None:
        if not self.target_ms > 0:
            raise LatprofError(f"the latency target must be positive, not {self.target_ms} ms")

    @classmethod
    def preset(cls, name: str, target_ms: float, alpha: float | None = None, beta: float | None = None) -> Reward:
        """A preset constraint, with either exponent overridden when given."""
        if name not in PRESETS:
            raise LatprofError(f"unknown constraint {name!r}: choose one of {', '.join(PRESETS)}")
        default_alpha, default_beta = PRESETS[name]
        return cls(target_ms, default_alpha if alpha is None else alpha, default_beta if beta is None else beta)

    def __call__(self, accuracy: float, latency_ms: float) -> float:
        exponent = self.alpha if latency_ms <= self.target_ms else self.beta
        return accuracy * (latency_ms / self.target_ms) ** exponent
