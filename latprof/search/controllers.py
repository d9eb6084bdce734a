"""Search controllers behind one ask/tell seam: MnasNet's PPO-trained RNN, aging evolution (plain or
guided by a ridge model), random.

A controller sees only how many options each factorized decision has; it proposes decision lists
(``ask``) and learns from their results (``tell``).  The search loop tells each candidate as soon as
it finishes, so tells may come in any order and one at a time; each told candidate must have been
asked.  ``state()`` is plain JSON (lists, floats, ints, strings, None) holding everything the
controller will ever read again, RNG included, so that after ``kill -9`` the loop resumes with
``from_state`` and the restored controller asks exactly what the original would have asked.

What is told depends on the objective: the MNAS reward (one float per candidate), or with
``objective="pareto"`` the pair (accuracy, latency in ms) for controllers that search for a Pareto
front (``objectives`` says which a controller accepts).

Everything here is NumPy in float64: the controller must be cheap, deterministic and importable
without TensorFlow.  Optuna's samplers sit behind the same seam in
:mod:`latprof.search.optuna_controllers`; :mod:`latprof.search.registry` names them all.  A new
controller is one subclass with ``name``, ``_propose``, and, when it learns, ``_observe``, ``_state``
and ``_load``; its hyper-parameters are its keyword-only constructor arguments.
"""

from __future__ import annotations

import base64
import copy
import inspect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from latprof.errors import LatprofError

OBJECTIVES = ("reward", "pareto")
Told = float | tuple[float, float]  # a reward, or (accuracy, latency_ms) for the pareto objective


def _encode(array: np.ndarray) -> str:
    """A float array as base64 of its little-endian float64 bytes: exact, half the size of a JSON list
    of floats and over ten times faster to write, which matters as the loop saves the state (three
    arrays of 49k floats for PPO on the MnasNet space) after every ask and tell."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode("ascii")


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(float)


class Controller:
    """The ask/tell seam shared by every controller.

    ``choices[i]`` is the number of options of decision i; a candidate is one index per decision.
    The base class keeps the candidates asked but not yet told (``pending``) and checks every tell
    against them, so a loop bug (telling a candidate twice, or one never asked) fails loudly instead
    of silently training the controller on the wrong sample.
    """

    name: ClassVar[str] = ""
    objectives: ClassVar[tuple[str, ...]] = ("reward",)
    preset: ClassVar[dict] = {}  # option defaults of a named preset, over the constructor's

    def __init__(self, choices: Sequence[int], seed: int = 0, *, objective: str = "reward",
                 workdir: Path | None = None) -> None:
        if not choices or any(int(k) < 1 for k in choices):
            raise LatprofError(f"every decision needs at least one option, got {list(choices)}")
        if objective not in self.objectives:
            raise LatprofError(f"controller {self.name!r} optimises {' or '.join(self.objectives)}, not {objective!r}")
        self.choices = [int(k) for k in choices]
        self.seed = int(seed)
        self.objective = objective
        self.workdir = workdir  # where a controller may keep what does not fit state.json (Optuna's storage)
        self.rng = np.random.default_rng(self.seed)
        self.pending: list[list[int]] = []  # asked, not told yet, in the order asked
        self.told = 0

    @classmethod
    def option_defaults(cls) -> dict:
        """Every hyper-parameter with its default: the keyword-only constructor arguments (over the
        class hierarchy) but ``workdir``, under the preset's values."""
        defaults = {}
        for klass in reversed(cls.__mro__):
            if "__init__" in vars(klass) and issubclass(klass, Controller):
                defaults.update({p.name: p.default for p in inspect.signature(klass.__init__).parameters.values()
                                 if p.kind is p.KEYWORD_ONLY and p.name != "workdir"})
        return {**defaults, **cls.preset}

    def hyperparameters(self) -> dict:
        """The keyword arguments that rebuild this controller (besides choices, seed and workdir)."""
        return {name: getattr(self, name) for name in self.option_defaults()}

    def ask(self, n: int) -> list[list[int]]:
        """``n`` new candidates; every controller here returns exactly ``n``."""
        if n < 0:
            raise LatprofError(f"cannot ask for {n} candidates")
        batch = self._propose(n)
        self.pending += [list(d) for d in batch]
        return [list(d) for d in batch]

    def tell(self, decisions: Sequence[Sequence[int]], rewards: Sequence[Told]) -> None:
        """Results of asked candidates, in any order, any number at a time: rewards, or (accuracy,
        latency_ms) pairs under the pareto objective.

        A candidate asked twice (the same decisions) is matched to its oldest pending copy.
        """
        if len(decisions) != len(rewards):
            raise LatprofError(f"{len(decisions)} candidates but {len(rewards)} results")
        batch = [([int(x) for x in d], self._told(r)) for d, r in zip(decisions, rewards)]
        remaining = list(self.pending)
        for d, r in batch:  # check all before changing anything, so a bad tell leaves the state intact
            if d not in remaining:
                raise LatprofError(f"candidate {d} was never asked, or was told already")
            if not all(math.isfinite(v) for v in np.atleast_1d(r)):
                raise LatprofError(f"result {r} of {d} is not finite")
            remaining.remove(d)
        for d, r in batch:
            index = self.pending.index(d)
            self.pending.pop(index)
            self.told += 1
            self._observe(index, d, r)

    def _told(self, result) -> Told:
        if self.objective == "pareto":
            accuracy, latency_ms = (float(v) for v in result)
            return accuracy, latency_ms
        return float(result)

    def state(self) -> dict:
        """Everything needed to continue exactly, as JSON-ready data (no references to live state)."""
        return {"name": self.name, "choices": list(self.choices), "seed": self.seed,
                "hyperparameters": self.hyperparameters(), "rng": self.rng.bit_generator.state,
                "pending": [list(d) for d in self.pending], "told": self.told, **self._state()}

    @classmethod
    def from_state(cls, state: dict, workdir: Path | None = None) -> Controller:
        """The controller that wrote ``state``, continuing exactly where it was."""
        from latprof.search.registry import CONTROLLERS

        kind = CONTROLLERS.get(state.get("name"))
        if kind is None or not issubclass(kind, cls):
            raise LatprofError(f"state of controller {state.get('name')!r} cannot restore a {cls.name or cls.__name__}")
        controller = kind(state["choices"], state["seed"], workdir=workdir, **state["hyperparameters"])
        controller.rng.bit_generator.state = state["rng"]
        controller.pending = [[int(x) for x in d] for d in state["pending"]]
        controller.told = int(state["told"])
        controller._load(state)
        return controller

    def check(self) -> None:
        """Raise if this (restored) controller cannot go on; asks once on a copy, so it changes nothing."""
        copy.deepcopy(self).ask(1)

    def random_candidate(self) -> list[int]:
        return [int(x) for x in self.rng.integers(0, self.choices)]

    def _propose(self, n: int) -> list[list[int]]:
        raise NotImplementedError

    def _observe(self, index: int, decisions: list[int], reward: Told) -> None:
        """One told result; ``index`` is where the candidate was in ``pending`` before it was removed."""

    def _state(self) -> dict:
        return {}

    def _load(self, state: dict) -> None:
        """Restore what ``_state`` wrote."""


class RandomSearch(Controller):
    """Uniform over every decision: the baseline every search result must be compared with."""

    name = "random"
    objectives = OBJECTIVES

    def _propose(self, n: int) -> list[list[int]]:
        return [self.random_candidate() for _ in range(n)]


class RegularizedEvolution(Controller):
    """Aging evolution (Real et al., "Regularized Evolution for Image Classifier Architecture Search", 2019).

    The first ``population_size`` asks are random.  After that a child is the winner of a tournament
    of ``sample_size`` members drawn (with replacement, as in the paper's algorithm) from the
    population, with one decision changed to another option.  A told candidate joins the population
    and, once the population is full, the oldest member dies, whatever its reward: aging keeps good
    but lucky architectures from ruling forever.  Asks may be outstanding (asynchronous evolution);
    while none of the first candidates has been told, further asks are random too.  A child that
    repeats a candidate asked before is drawn again (up to ``REDRAWS`` times): a repeat costs a
    training and teaches nothing.

    With ``candidates`` above 1, each child is the best of that many (tournament, mutation) draws as
    ranked by a ridge regression (``ridge_alpha``) of reward on one-hot decisions, fitted to the
    ``model_window`` most recently told candidates.  Near-additive rewards, as latency sums over
    layers and accuracy grows with capacity, make that cheap model good at telling which of a
    parent's mutations help; fitting it to the recent samples only keeps it local to where the
    population is, so it sharpens the search instead of pulling it to a global average.
    """

    name = "evolution"
    REDRAWS: ClassVar[int] = 100

    def __init__(self, choices: Sequence[int], seed: int = 0, *, population_size: int = 20, sample_size: int = 5,
                 candidates: int = 1, ridge_alpha: float = 0.01, model_window: int = 100, **common) -> None:
        super().__init__(choices, seed, **common)
        if min(population_size, sample_size, candidates, model_window) < 1:
            raise LatprofError("population_size, sample_size, candidates and model_window must be at least 1")
        if not ridge_alpha > 0:
            raise LatprofError("ridge_alpha must be positive")
        self.population_size, self.sample_size = int(population_size), int(sample_size)
        self.candidates, self.ridge_alpha, self.model_window = int(candidates), float(ridge_alpha), int(model_window)
        self.history: list[tuple[list[int], float]] = []  # the last told, as many as population or model need
        self.asked: list[list[int]] = []  # every candidate asked, in order
        self._seen = set()
        self._offsets = np.concatenate([[0], np.cumsum(self.choices)[:-1]]).astype(int)

    def _propose(self, n: int) -> list[list[int]]:
        score = self._model() if self.candidates > 1 else None
        batch = []
        for _ in range(n):
            for _ in range(self.REDRAWS):
                if len(self.asked) < self.population_size or not self.history:
                    child = self.random_candidate()
                elif score is None:
                    child = self.mutate(self._winner())
                else:
                    draws = [self.mutate(self._winner()) for _ in range(self.candidates)]
                    draws = [d for d in draws if tuple(d) not in self._seen] or draws
                    child = draws[int(np.argmax(score(draws)))]
                if tuple(child) not in self._seen:
                    break
            self._remember(child)
            batch.append(child)
        return batch

    @property
    def population(self) -> list[tuple[list[int], float]]:
        """The living members, oldest first: the last ``population_size`` told."""
        return self.history[-self.population_size:]

    def _winner(self) -> list[int]:
        population = self.population
        contestants = self.rng.integers(0, len(population), size=self.sample_size)
        return population[max(contestants, key=lambda i: population[i][1])][0]

    def _model(self):
        """The ridge model's score of decision lists, or None before two different rewards are told."""
        recent = self.history[-self.model_window:]
        rewards = np.array([r for _, r in recent])
        if len(rewards) < 2 or rewards.std() == 0:
            return None
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=self.ridge_alpha).fit(self._one_hot([d for d, _ in recent]),
                                                  (rewards - rewards.mean()) / rewards.std())
        return lambda decisions: model.predict(self._one_hot(decisions))

    def _one_hot(self, decisions: list[list[int]]) -> np.ndarray:
        x = np.zeros((len(decisions), sum(self.choices)))
        x[np.arange(len(decisions))[:, None], self._offsets + np.asarray(decisions, dtype=int)] = 1.0
        return x

    def mutate(self, parent: list[int]) -> list[int]:
        """The parent with one decision (among those with a choice) moved to another option, uniformly."""
        child = list(parent)
        movable = [i for i, k in enumerate(self.choices) if k > 1]
        if movable:
            position = movable[int(self.rng.integers(len(movable)))]
            other = int(self.rng.integers(self.choices[position] - 1))
            child[position] = other + (other >= parent[position])
        return child

    def _remember(self, decisions: list[int]) -> None:
        self.asked.append(list(decisions))
        self._seen.add(tuple(decisions))

    def _observe(self, index: int, decisions: list[int], reward: float) -> None:
        self.history = [*self.history, (decisions, reward)][-max(self.population_size, self.model_window):]

    def _state(self) -> dict:
        return {"history": [[list(d), r] for d, r in self.history], "asked": [list(d) for d in self.asked]}

    def _load(self, state: dict) -> None:
        self.history = [([int(x) for x in d], float(r)) for d, r in state["history"]]
        self.asked, self._seen = [], set()
        for d in state["asked"]:
            self._remember([int(x) for x in d])


class GuidedEvolution(RegularizedEvolution):
    """Aging evolution that spends each training on the best of 50 mutations by its ridge model: the
    preset for searches of a hundred or a few hundred samples."""

    name = "evolution-guided"
    preset = {"candidates": 50}


class PPOController(Controller):
    """MnasNet's controller (Tan et al. 2019, section 5): an LSTM that emits one softmax per decision, in
    order, fed the embedding of the decision it just made, trained with PPO (Schulman et al. 2017).

    Every ``batch_size`` told samples, the policy takes ``epochs`` passes of Adam steps over
    minibatches of them, maximising the clipped surrogate ``min(rho A, clip(rho, 1 - clip, 1 + clip) A)``
    plus ``entropy`` times the policy's entropy, where ``rho`` is the probability of the sample now
    over its probability when it was asked (kept for each pending sample, since tells arrive late
    and the policy may have moved in between).  The advantage ``A`` is the reward minus an
    exponential moving average of rewards (``baseline_decay`` per told sample), divided by a moving
    RMS of those differences so the step size does not depend on the reward's scale: MnasNet
    rewards of different architectures differ by a few percent, far below the entropy term's scale.

    The defaults are NASNet's controller (Zoph et al. 2018, appendix A), which MnasNet reuses: one
    LSTM layer of 100 units, learning rate 0.00035, weights uniform in +-0.1, entropy weight 1e-5 and
    an exponential moving average of rewards (weight 0.95) as the baseline.  The papers do not give
    PPO's epochs and minibatches: 10 epochs of minibatches of 2 let that small step size learn
    within a few hundred samples (4 of 8 left the policy near uniform at 500).  That controller saw
    thousands of samples; ``TunedPPO`` is the preset for a few hundred.

    The output heads start at zero, so the first policy is uniform: until it learns, it samples
    exactly like random search.  The gradient is hand-written backpropagation through time
    (``loss_and_grad``); the tests check it against finite differences.
    """

    name = "ppo"

    def __init__(self, choices: Sequence[int], seed: int = 0, *, hidden: int = 100, lr: float = 3.5e-4,
                 batch_size: int = 16, epochs: int = 10, minibatch: int = 2, clip: float = 0.2,
                 entropy: float = 1e-5, baseline_decay: float = 0.95, init_scale: float = 0.1, **common) -> None:
        super().__init__(choices, seed, **common)
        if hidden < 1 or batch_size < 1 or epochs < 1 or minibatch < 1:
            raise LatprofError("hidden, batch_size, epochs and minibatch must be at least 1")
        if not (lr > 0 and 0 <= clip and entropy >= 0 and 0 <= baseline_decay < 1 and init_scale >= 0):
            raise LatprofError("lr must be positive, clip and entropy non-negative, baseline_decay in [0, 1)")
        self.hidden, self.lr, self.batch_size, self.epochs = int(hidden), float(lr), int(batch_size), int(epochs)
        self.minibatch, self.clip, self.entropy = int(minibatch), float(clip), float(entropy)
        self.baseline_decay, self.init_scale = float(baseline_decay), float(init_scale)
        self._layout = self._make_layout()
        size = sum(math.prod(shape) for _, shape in self._layout)
        self.theta = np.zeros(size)
        views = self._views(self.theta)
        for key, shape in self._layout:
            if not key.startswith("head"):
                views[key][...] = self.rng.uniform(-self.init_scale, self.init_scale, shape)
        views["lstm_b"][self.hidden:2 * self.hidden] = 1.0  # forget gate open at the start
        self.adam_m, self.adam_v, self.adam_steps = np.zeros(size), np.zeros(size), 0
        self.baseline: float | None = None
        self.scale: float | None = None  # moving RMS of reward - baseline
        self.pending_logp: list[float] = []  # log-probability of each pending sample when it was asked
        self.buffer: list[tuple[list[int], float, float]] = []  # told, not learnt from yet: decisions, reward, logp

    # -- parameters: one flat vector, so Adam, the state and the gradient check see a single array

    def _make_layout(self) -> list[tuple[str, tuple[int, ...]]]:
        h = self.hidden
        layout: list[tuple[str, tuple[int, ...]]] = [("start", (h,)), ("lstm_w", (2 * h, 4 * h)), ("lstm_b", (4 * h,))]
        for t, k in enumerate(self.choices):
            layout += [(f"head_w{t}", (h, k)), (f"head_b{t}", (k,))]
            if t + 1 < len(self.choices):
                layout.append((f"emb{t}", (k, h)))
        return layout

    def _views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        views, offset = {}, 0
        for key, shape in self._layout:
            size = math.prod(shape)
            views[key] = flat[offset:offset + size].reshape(shape)
            offset += size
        return views

    # -- the policy

    def _step(self, p: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple:
        """One LSTM step; returns the new h and c and what backpropagation needs."""
        n = self.hidden
        xh = np.concatenate([x, h], axis=1)
        a = xh @ p["lstm_w"] + p["lstm_b"]
        i, f, o = (1.0 / (1.0 + np.exp(-a[:, k * n:(k + 1) * n])) for k in range(3))
        g = np.tanh(a[:, 3 * n:])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return o * tc, c_new, (xh, i, f, o, g, c, tc)

    @staticmethod
    def _log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def _propose(self, n: int) -> list[list[int]]:
        with threadpool_limits(1, user_api="blas"):  # as in _update
            return self._sample(n)

    def _sample(self, n: int) -> list[list[int]]:
        p = self._views(self.theta)
        x = np.repeat(p["start"][None, :], n, axis=0)
        h, c = np.zeros((n, self.hidden)), np.zeros((n, self.hidden))
        actions, logp = np.zeros((n, len(self.choices)), dtype=int), np.zeros(n)
        for t in range(len(self.choices)):
            h, c, _ = self._step(p, x, h, c)
            log_probs = self._log_softmax(h @ p[f"head_w{t}"] + p[f"head_b{t}"])
            cumulative = np.cumsum(np.exp(log_probs), axis=1)
            u = self.rng.random(n)
            a = (cumulative[:, :-1] <= u[:, None]).sum(axis=1)
            actions[:, t] = a
            logp += log_probs[np.arange(n), a]
            if t + 1 < len(self.choices):
                x = p[f"emb{t}"][a]
        self.pending_logp += [float(v) for v in logp]
        return actions.tolist()

    def loss_and_grad(self, theta: np.ndarray, actions: np.ndarray, old_logp: np.ndarray,
                      advantages: np.ndarray) -> tuple[float, np.ndarray]:
        """PPO's loss (negated clipped surrogate minus the entropy bonus, averaged over the samples)
        at ``theta`` and its exact gradient, by backpropagation through time."""
        p, n = self._views(theta), len(actions)
        rows = np.arange(n)
        x = np.repeat(p["start"][None, :], n, axis=0)
        h, c = np.zeros((n, self.hidden)), np.zeros((n, self.hidden))
        caches, hs, logps, logp, entropy = [], [], [], np.zeros(n), np.zeros(n)
        for t in range(len(self.choices)):
            h, c, cache = self._step(p, x, h, c)
            caches.append(cache)
            hs.append(h)
            log_probs = self._log_softmax(h @ p[f"head_w{t}"] + p[f"head_b{t}"])
            logps.append(log_probs)
            logp += log_probs[rows, actions[:, t]]
            entropy -= (np.exp(log_probs) * log_probs).sum(axis=1)
            if t + 1 < len(self.choices):
                x = p[f"emb{t}"][actions[:, t]]
        ratio = np.exp(logp - old_logp)
        surrogate = ratio * advantages
        clipped = np.clip(ratio, 1.0 - self.clip, 1.0 + self.clip) * advantages
        loss = float(-np.minimum(surrogate, clipped).mean() - self.entropy * entropy.mean())
        # d loss / d logp: the unclipped term's gradient where it is the minimum, zero where clipping holds
        d_logp = np.where(surrogate <= clipped, -ratio * advantages / n, 0.0)

        grad = np.zeros_like(theta)
        g = self._views(grad)
        dh_next, dc_next = np.zeros((n, self.hidden)), np.zeros((n, self.hidden))
        for t in reversed(range(len(self.choices))):
            probs = np.exp(logps[t])
            step_entropy = -(probs * logps[t]).sum(axis=1, keepdims=True)
            dz = -probs * d_logp[:, None]
            dz[rows, actions[:, t]] += d_logp
            dz += (self.entropy / n) * probs * (logps[t] + step_entropy)  # d(-entropy)/dz = p (log p + H)
            g[f"head_w{t}"] += hs[t].T @ dz
            g[f"head_b{t}"] += dz.sum(axis=0)
            dh = dz @ p[f"head_w{t}"].T + dh_next
            xh, i, f, o, gg, c_prev, tc = caches[t]
            dc = dh * o * (1.0 - tc ** 2) + dc_next
            da = np.concatenate([dc * gg * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                                 dh * tc * o * (1.0 - o), dc * i * (1.0 - gg ** 2)], axis=1)
            g["lstm_w"] += xh.T @ da
            g["lstm_b"] += da.sum(axis=0)
            dxh = da @ p["lstm_w"].T
            dx, dh_next, dc_next = dxh[:, :self.hidden], dxh[:, self.hidden:], dc * f
            if t == 0:
                g["start"] += dx.sum(axis=0)
            else:
                np.add.at(g[f"emb{t - 1}"], actions[:, t - 1], dx)
        return loss, grad

    # -- learning

    def policy_entropy(self, samples: int = 256) -> float:
        """The policy's entropy in nats (summed over decisions), estimated from ``samples`` draws of a
        private RNG so that asking it changes nothing; log(options) summed is the uniform policy's.
        A learning curve that stalls while this collapses is a policy that stopped exploring."""
        p = self._views(self.theta)
        rng = np.random.default_rng(0)
        x = np.repeat(p["start"][None, :], samples, axis=0)
        h, c, total = np.zeros((samples, self.hidden)), np.zeros((samples, self.hidden)), 0.0
        for t in range(len(self.choices)):
            h, c, _ = self._step(p, x, h, c)
            log_probs = self._log_softmax(h @ p[f"head_w{t}"] + p[f"head_b{t}"])
            probs = np.exp(log_probs)
            total -= float((probs * log_probs).sum(axis=1).mean())
            if t + 1 < len(self.choices):
                a = (np.cumsum(probs, axis=1)[:, :-1] <= rng.random(samples)[:, None]).sum(axis=1)
                x = p[f"emb{t}"][a]
        return total

    def _observe(self, index: int, decisions: list[int], reward: float) -> None:
        self.buffer.append((decisions, reward, self.pending_logp.pop(index)))
        if len(self.buffer) >= self.batch_size:
            self._update()

    def _update(self) -> None:
        """PPO on the buffered samples; advantages use the baseline as it was before this batch.

        On one BLAS thread: the matrices are small (a hundred units, a few samples), and BLAS's
        threads fighting for cores that training is using made an update 16 times slower."""
        with threadpool_limits(1, user_api="blas"):
            self._learn()

    def _learn(self) -> None:
        actions = np.array([d for d, _, _ in self.buffer], dtype=int)
        rewards = np.array([r for _, r, _ in self.buffer])
        old_logp = np.array([lp for _, _, lp in self.buffer])
        if self.baseline is None:  # first batch: its own mean and spread, not an arbitrary zero
            self.baseline, self.scale = float(rewards.mean()), float(rewards.std())
        advantages = (rewards - self.baseline) / max(self.scale, 1e-12)
        for r in rewards:
            self.scale = math.sqrt(self.baseline_decay * self.scale ** 2
                                   + (1 - self.baseline_decay) * (r - self.baseline) ** 2)
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(r)
        self.buffer = []
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for _ in range(self.epochs):
            order = self.rng.permutation(len(actions))
            for start in range(0, len(order), self.minibatch):
                rows = order[start:start + self.minibatch]
                _, grad = self.loss_and_grad(self.theta, actions[rows], old_logp[rows], advantages[rows])
                self.adam_steps += 1
                self.adam_m = beta1 * self.adam_m + (1 - beta1) * grad
                self.adam_v = beta2 * self.adam_v + (1 - beta2) * grad ** 2
                m_hat = self.adam_m / (1 - beta1 ** self.adam_steps)
                v_hat = self.adam_v / (1 - beta2 ** self.adam_steps)
                self.theta = self.theta - self.lr * m_hat / (np.sqrt(v_hat) + eps)

    def _state(self) -> dict:
        return {"theta": _encode(self.theta), "adam_m": _encode(self.adam_m), "adam_v": _encode(self.adam_v),
                "adam_steps": self.adam_steps, "baseline": self.baseline, "scale": self.scale,
                "pending_logp": list(self.pending_logp), "buffer": [[list(d), r, lp] for d, r, lp in self.buffer]}

    def _load(self, state: dict) -> None:
        self.theta, self.adam_m, self.adam_v = (_decode(state[key]) for key in ("theta", "adam_m", "adam_v"))
        self.adam_steps = int(state["adam_steps"])
        self.baseline, self.scale = state["baseline"], state["scale"]
        self.pending_logp = [float(v) for v in state["pending_logp"]]
        self.buffer = [([int(x) for x in d], float(r), float(lp)) for d, r, lp in state["buffer"]]


class TunedPPO(PPOController):
    """PPO for searches of a few hundred samples: the paper's network, a step size large enough to
    learn from them, and an entropy bonus that keeps the policy exploring while it does."""

    name = "ppo-tuned"
    preset = {"lr": 3e-3, "entropy": 1e-2, "batch_size": 8, "epochs": 4, "minibatch": 4}
