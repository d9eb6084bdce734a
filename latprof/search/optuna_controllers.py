"""Optuna's samplers as controllers: TPE and NSGA-II through Optuna's ask/tell interface.

Each decision is a categorical parameter ``d00``, ``d01``, ... of one Optuna study.  The study lives
in an Optuna storage: SQLite (Optuna's RDB storage) in the controller's ``workdir`` (the search
folder's ``optuna.db``), or memory without one.  ``state()`` holds what the storage does not: the
trial number of each pending candidate and the RNG that seeds the sampler of each ask, so a
restored controller asks what the original would have asked.

Surviving ``kill -9`` between the storage and ``state.json``: a trial the storage holds as running
but the state never heard of (killed after Optuna's ask, before the state was saved) is marked
failed when the study is opened, and samplers ignore failed trials; a tell the storage already
has (killed after Optuna's tell, before the state was saved) is skipped when the loop tells it again.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from latprof.errors import LatprofError
from latprof.search.controllers import OBJECTIVES, Controller, Told

STUDY, STORAGE_FILE = "latprof", "optuna.db"


class OptunaController(Controller):
    """The seam between latprof's controllers and one Optuna sampler (``_sampler``)."""

    objectives = OBJECTIVES

    def __init__(self, choices: Sequence[int], seed: int = 0, **common) -> None:
        super().__init__(choices, seed, **common)
        self.trial_numbers: list[int] = []  # of the pending candidates, in the same order
        self._study = None

    @property
    def study(self):
        """The Optuna study, opened (or created) on first use; running trials the state does not
        know are failed then (see the module's docstring)."""
        if self._study is None:
            import optuna
            from optuna.trial import TrialState

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            if self.workdir is None:
                storage = optuna.storages.InMemoryStorage()
            else:
                Path(self.workdir).mkdir(parents=True, exist_ok=True)
                storage = optuna.storages.RDBStorage(f"sqlite:///{Path(self.workdir).resolve() / STORAGE_FILE}")
            directions = ["maximize", "minimize"] if self.objective == "pareto" else ["maximize"]
            try:
                study = optuna.create_study(study_name=STUDY, storage=storage, directions=directions,
                                            load_if_exists=True)
            except Exception as exc:  # SQLAlchemy's and Optuna's errors of a damaged file have no common base
                raise LatprofError(f"cannot open the Optuna storage {self.workdir}/{STORAGE_FILE} "
                                   f"({str(exc).splitlines()[0]}); restore it, or start a new search") from None
            if [d.name.lower() for d in study.directions] != directions:
                raise LatprofError(f"{self.workdir}/{STORAGE_FILE} holds a study of another objective; restore the "
                                   "search folder, or start a new search")
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if trial.number not in self.trial_numbers:
                    study.tell(trial.number, state=TrialState.FAIL)
            self._study = study
        return self._study

    def distributions(self) -> dict:
        from optuna.distributions import CategoricalDistribution

        return {f"d{i:02d}": CategoricalDistribution(tuple(range(k))) for i, k in enumerate(self.choices)}

    def _propose(self, n: int) -> list[list[int]]:
        study, distributions, batch = self.study, self.distributions(), []
        for _ in range(n):
            with warnings.catch_warnings():  # Optuna flags some sampler options as experimental
                warnings.simplefilter("ignore")
                study.sampler = self._sampler(int(self.rng.integers(2 ** 31)))
            trial = study.ask(distributions)
            self.trial_numbers.append(trial.number)
            batch.append([int(trial.params[name]) for name in distributions])
        return batch

    def _observe(self, index: int, decisions: list[int], result: Told) -> None:
        number = self.trial_numbers.pop(index)
        self.study.tell(number, list(result) if self.objective == "pareto" else result, skip_if_finished=True)

    def check(self) -> None:
        from optuna.trial import TrialState

        known = {t.number: t.state for t in self.study.get_trials(deepcopy=False)}
        lost = [n for n in self.trial_numbers if known.get(n) not in (TrialState.RUNNING, TrialState.COMPLETE)]
        if lost:
            raise LatprofError(f"trial {lost[0]} of the search state is not in {self.workdir}/{STORAGE_FILE}")

    def _state(self) -> dict:
        return {"trial_numbers": list(self.trial_numbers)}

    def _load(self, state: dict) -> None:
        if self.workdir is None:
            raise LatprofError(f"controller {self.name!r} is restored from its Optuna storage on disk: give it the "
                               "workdir it ran with")
        self.trial_numbers = [int(n) for n in state["trial_numbers"]]
        if len(self.trial_numbers) != len(self.pending):
            raise LatprofError("the state's Optuna trials do not match its pending candidates")

    def _sampler(self, seed: int):
        raise NotImplementedError

    def _given(self, names: Sequence[str]) -> dict:
        """The options among ``names`` the user set; None leaves Optuna's own default."""
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class TPEController(OptunaController):
    """Optuna's Tree-structured Parzen Estimator (``optuna.samplers.TPESampler``), the sampler a NAS
    user reaches for first; None options keep the installed Optuna's defaults."""

    name = "tpe"

    def __init__(self, choices: Sequence[int], seed: int = 0, *, n_startup_trials: int = 10,
                 n_ei_candidates: int = 24, multivariate: bool | None = None, group: bool = False,
                 constant_liar: bool | None = None, prior_weight: float | None = None, **common) -> None:
        super().__init__(choices, seed, **common)
        if n_startup_trials < 0 or n_ei_candidates < 1:
            raise LatprofError("n_startup_trials must be at least 0 and n_ei_candidates at least 1")
        self.n_startup_trials, self.n_ei_candidates, self.multivariate = n_startup_trials, n_ei_candidates, multivariate
        self.group, self.constant_liar, self.prior_weight = group, constant_liar, prior_weight

    def _sampler(self, seed: int):
        from optuna.samplers import TPESampler

        return TPESampler(seed=seed, n_startup_trials=self.n_startup_trials, n_ei_candidates=self.n_ei_candidates,
                          group=self.group, **self._given(("multivariate", "constant_liar", "prior_weight")))


class NSGA2Controller(OptunaController):
    """Optuna's NSGA-II (``optuna.samplers.NSGAIISampler``): by default it searches for the Pareto front
    of accuracy against latency rather than the MNAS reward."""

    name = "nsga2"
    preset = {"objective": "pareto"}

    def __init__(self, choices: Sequence[int], seed: int = 0, *, population_size: int = 50,
                 mutation_prob: float | None = None, crossover_prob: float = 0.9, swapping_prob: float = 0.5,
                 **common) -> None:
        super().__init__(choices, seed, **common)
        if population_size < 2 or not (0 <= crossover_prob <= 1 and 0 <= swapping_prob <= 1) or \
                not (mutation_prob is None or 0 <= mutation_prob <= 1):
            raise LatprofError("population_size must be at least 2, and the probabilities in [0, 1]")
        self.population_size, self.mutation_prob = population_size, mutation_prob
        self.crossover_prob, self.swapping_prob = crossover_prob, swapping_prob

    def _sampler(self, seed: int):
        from optuna.samplers import NSGAIISampler

        return NSGAIISampler(seed=seed, population_size=self.population_size, crossover_prob=self.crossover_prob,
                             swapping_prob=self.swapping_prob, **self._given(("mutation_prob",)))
