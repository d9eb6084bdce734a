"""Search controllers: the ask/tell contract, exact resume from JSON state, aging evolution, the PPO
gradient against finite differences, PPO learning a toy reward, and random search's uniformity."""

from __future__ import annotations

import json
import math
import random
import shutil

import numpy as np
import pytest

from latprof.errors import LatprofError
from latprof.search.controllers import Controller, PPOController, RandomSearch, RegularizedEvolution, TunedPPO
from latprof.search.registry import CONTROLLERS, make_controller, parse_options
from latprof.space import get_space

SIZES = [len(choice.options) for choice in get_space("mnasnet").choices()]
SMALL = {"ppo": {"batch_size": 8, "hidden": 16}, "ppo-tuned": {"batch_size": 8, "hidden": 16},
         "evolution": {"population_size": 6, "sample_size": 3},
         "evolution-guided": {"population_size": 6, "sample_size": 3, "candidates": 5}, "random": {},
         "tpe": {"n_startup_trials": 5},
         "nsga2": {"population_size": 6, "objective": "reward"}}


def toy_reward(decisions: list[int]) -> float:
    """Fraction of decisions at option 0: a reward with one obvious optimum."""
    return sum(d == 0 for d in decisions) / len(decisions)


def drive(controller: Controller, tells: int, outstanding: int = 3, seed: int = 0) -> None:
    """Keep ``outstanding`` candidates asked and tell a random one of them back, ``tells`` times,
    as the search loop does when workers finish out of order."""
    rng = random.Random(seed)
    asked = controller.ask(outstanding)
    for _ in range(tells):
        done = asked.pop(rng.randrange(len(asked)))
        controller.tell([done], [toy_reward(done) + rng.random() * 0.1])
        asked += controller.ask(1)


@pytest.mark.parametrize("name", CONTROLLERS)
def test_asks_are_valid_decision_lists(name):
    controller = make_controller(name, SIZES, seed=3, **SMALL[name])  # Optuna's in memory
    batch = controller.ask(40)
    assert len(batch) == 40
    assert all(len(d) == len(SIZES) and all(0 <= x < k for x, k in zip(d, SIZES)) for d in batch)
    assert all(type(x) is int for d in batch for x in d)
    get_space("mnasnet").decode(batch[0])
    assert controller.ask(0) == []


@pytest.mark.parametrize("name", CONTROLLERS)
def test_tells_out_of_order_and_partial(name):
    controller = make_controller(name, SIZES, seed=1, **SMALL[name])
    batch = controller.ask(10)
    controller.tell(batch[7:3:-1], [toy_reward(d) for d in batch[7:3:-1]])  # partial, reversed
    assert len(controller.pending) == 6
    with pytest.raises(LatprofError, match="never asked"):
        controller.tell([batch[5]], [0.5])  # told already
    before = json.dumps(controller.state())
    stranger = next(d for d in ([0] * len(SIZES), [1] * len(SIZES)) if d not in controller.pending)
    with pytest.raises(LatprofError, match="never asked"):
        controller.tell([batch[0], stranger], [0.1, 0.2])
    with pytest.raises(LatprofError, match="finite"):
        controller.tell([batch[0]], [float("nan")])
    assert json.dumps(controller.state()) == before  # a refused tell changes nothing
    rest = [batch[i] for i in (9, 0, 2, 8, 1, 3)]
    controller.tell(rest, [toy_reward(d) for d in rest])
    assert controller.pending == [] and controller.told == 10
    drive(controller, tells=30)  # and it keeps going (PPO updates, evolution mutates)


def test_same_candidate_asked_twice_is_matched_to_its_oldest_copy():
    controller = PPOController([2], seed=0, batch_size=100)
    batch = controller.ask(12)
    repeated = next(d for d in batch if batch.count(d) > 1)
    first = batch.index(repeated)
    controller.tell([repeated], [1.0])
    assert controller.buffer[0][2] == pytest.approx(math.log(0.5))
    assert len(controller.pending_logp) == 11 and controller.pending[first:] == batch[first + 1:]


@pytest.mark.parametrize("name", CONTROLLERS)
def test_state_round_trip_through_json_is_exact(name, tmp_path):
    original = make_controller(name, SIZES, seed=7, workdir=tmp_path / "a", **SMALL[name])
    # several PPO updates, a full and aged population; candidates pending
    drive(original, tells=37 if name not in ("tpe", "nsga2") else 6)
    text = json.dumps(original.state(), allow_nan=False)
    (tmp_path / "a").mkdir(exist_ok=True)
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # an Optuna controller's storage, as a copied folder
    restored = Controller.from_state(json.loads(text), workdir=tmp_path / "b")
    assert type(restored) is type(original) and json.dumps(restored.state()) == text
    for _ in range(3):  # the next asks, and what is learnt from them, are the same
        a, b = original.ask(5), restored.ask(5)
        assert a == b
        rewards = [toy_reward(d) for d in a]
        original.tell(a[::-1], rewards[::-1])
        restored.tell(b[::-1], rewards[::-1])
    assert json.dumps(restored.state()) == json.dumps(original.state())


def test_from_state_refuses_another_controllers_state():
    state = RandomSearch(SIZES, seed=0).state()
    with pytest.raises(LatprofError, match="cannot restore"):
        PPOController.from_state(state)
    assert isinstance(RandomSearch.from_state(state), RandomSearch)


def test_evolution_ages_out_the_oldest_member():
    evolution = RegularizedEvolution([3, 3, 3, 3], seed=2, population_size=5, sample_size=2)
    told = []
    for step in range(30):
        (child,) = evolution.ask(1)
        if step >= 5:  # past the random start: one decision of a living member changed
            assert any(sum(a != b for a, b in zip(child, member)) == 1 for member, _ in evolution.population)
        reward = float(step % 7)  # rewards unrelated to age: only aging may remove the best
        evolution.tell([child], [reward])
        told.append((child, reward))
        assert len(evolution.population) == min(step + 1, 5)
        assert evolution.population == told[-5:]


def test_evolution_with_outstanding_asks():
    evolution = RegularizedEvolution(SIZES, seed=0, population_size=4, sample_size=2)
    first = evolution.ask(6)  # more than the population before anything is told: all random
    evolution.tell(first[:1], [1.0])
    child = evolution.ask(1)[0]
    assert sum(a != b for a, b in zip(child, first[0])) == 1  # the only member is the parent


def test_evolution_never_asks_a_candidate_twice_while_new_ones_remain():
    evolution = RegularizedEvolution([2, 2, 2], seed=0, population_size=3, sample_size=2)
    asked = []
    for _ in range(8):  # the space holds 8 candidates
        (child,) = evolution.ask(1)
        asked.append(tuple(child))
        evolution.tell([child], [float(sum(child))])
    assert len(set(asked)) == 8
    assert tuple(evolution.ask(1)[0]) in asked  # the space is spent: a repeat, not a failure


def test_guided_evolution_learns_an_additive_reward_faster_than_plain_evolution():
    def best_after(controller: Controller, tells: int) -> float:
        best = 0.0
        for _ in range(tells):
            (child,) = controller.ask(1)
            best = max(best, toy_reward(child))
            controller.tell([child], [toy_reward(child)])
        return best

    plain = [best_after(make_controller("evolution", SIZES, seed), 80) for seed in range(3)]
    guided = [best_after(make_controller("evolution-guided", SIZES, seed), 80) for seed in range(3)]
    assert min(guided) > max(plain)


def test_ppo_gradient_matches_finite_differences():
    ppo = PPOController([3, 2, 4, 2], seed=1, hidden=5, entropy=0.05)
    rng = np.random.default_rng(0)
    ppo.theta = rng.normal(0, 0.5, ppo.theta.shape)  # off the zero heads, so every weight matters
    actions = np.array(ppo.ask(6))
    old_logp = np.array(ppo.pending_logp) + rng.normal(0, 0.3, 6)  # some ratios outside the clip range
    advantages = rng.normal(size=6)
    _, grad = ppo.loss_and_grad(ppo.theta, actions, old_logp, advantages)
    numeric = np.zeros_like(grad)
    for k in range(len(grad)):
        step = np.zeros_like(grad)
        step[k] = 1e-6
        numeric[k] = (ppo.loss_and_grad(ppo.theta + step, actions, old_logp, advantages)[0]
                      - ppo.loss_and_grad(ppo.theta - step, actions, old_logp, advantages)[0]) / 2e-6
    assert np.abs(numeric - grad).max() < 1e-7 * max(1.0, np.abs(grad).max())
    assert np.abs(grad).max() > 1e-3


def test_ppo_starts_uniform_and_keeps_sampling_log_probs():
    ppo = PPOController(SIZES, seed=0)
    ppo.ask(3)
    assert ppo.pending_logp == pytest.approx([-sum(math.log(k) for k in SIZES)] * 3)


def test_ppo_defaults_are_nasnets_controller():
    ppo = make_controller("ppo", SIZES)
    assert (ppo.hidden, ppo.lr, ppo.init_scale, ppo.entropy, ppo.baseline_decay) == (100, 3.5e-4, 0.1, 1e-5, 0.95)
    tuned = make_controller("ppo-tuned", SIZES, hidden=32)
    assert isinstance(tuned, TunedPPO) and (tuned.hidden, tuned.lr) == (32, TunedPPO.preset["lr"])


def test_ppo_learns_a_toy_reward():
    ppo = make_controller("ppo-tuned", SIZES, seed=0)
    rewards = []
    for _ in range(250):
        (decisions,) = ppo.ask(1)
        rewards.append(toy_reward(decisions))
        ppo.tell([decisions], [rewards[-1]])
    assert np.mean(rewards[-50:]) > np.mean(rewards[:50]) + 0.25


def test_random_search_is_uniform():
    random_search = RandomSearch([2, 3, 5], seed=0)
    counts = [np.bincount(column, minlength=k) for column, k in zip(np.array(random_search.ask(6000)).T, [2, 3, 5])]
    for count, k in zip(counts, [2, 3, 5]):
        assert np.abs(count / 6000 - 1 / k).max() < 0.02


def test_make_controller_errors_are_one_line_latprof_errors():
    with pytest.raises(LatprofError, match="unknown controller"):
        make_controller("bayes", SIZES)
    with pytest.raises(LatprofError, match="learning_rate"):
        make_controller("ppo", SIZES, learning_rate=0.1)
    with pytest.raises(LatprofError, match="optimises reward, not 'pareto'"):
        make_controller("evolution", SIZES, objective="pareto")
    with pytest.raises(LatprofError):
        make_controller("random", [3, 0])
    with pytest.raises(LatprofError):
        make_controller("random", SIZES).ask(-1)


def test_controller_options_are_parsed_and_checked():
    assert parse_options("ppo", ["lr=0.001", "hidden=64", "batch-size=4"]) == {"lr": 0.001, "hidden": 64, "batch_size": 4}
    assert parse_options("tpe", ["multivariate=true", "prior_weight=null"]) == {"multivariate": True, "prior_weight": None}
    assert parse_options("nsga2", ["objective=reward"]) == {"objective": "reward"}
    with pytest.raises(LatprofError, match="KEY one of"):
        parse_options("evolution", ["lr=0.1"])
    with pytest.raises(LatprofError, match="not int"):
        parse_options("ppo", ["hidden=big"])
    with pytest.raises(LatprofError, match="KEY=VALUE"):
        parse_options("ppo", ["hidden"])


@pytest.mark.parametrize("name", ["tpe", "nsga2", "random"])
def test_pareto_controllers_take_accuracy_and_latency(name):
    controller = make_controller(name, SIZES, seed=0, objective="pareto")
    batch = controller.ask(4)
    controller.tell(batch, [(0.5 + 0.1 * i, 10.0 - i) for i in range(4)])
    with pytest.raises(LatprofError, match="not finite"):
        controller.tell(controller.ask(1), [(math.nan, 1.0)])
    assert controller.told == 4


def test_optuna_storage_survives_a_kill_between_its_write_and_the_state(tmp_path):
    """Killed after Optuna's ask but before state.json: the orphan trial is failed, the ask repeats;
    killed after Optuna's tell but before state.json: telling it again is harmless."""
    controller = make_controller("tpe", SIZES, seed=2, workdir=tmp_path, n_startup_trials=2)
    drive(controller, tells=6)
    saved = json.loads(json.dumps(controller.state()))
    asked = controller.ask(1)  # reached the storage, not the state
    again = Controller.from_state(saved, workdir=tmp_path)
    assert again.ask(1) == asked
    pending = again.pending[0]
    again.tell([pending], [toy_reward(pending)])
    told = json.loads(json.dumps(again.state()))
    before_tell = Controller.from_state(saved, workdir=tmp_path)
    before_tell.tell([pending], [toy_reward(pending)])  # the storage has it already: skipped
    states = [t.state.name for t in before_tell.study.trials]
    assert told["told"] == saved["told"] + 1 and before_tell.told == saved["told"] + 1
    assert states.count("COMPLETE") == saved["told"] + 1 and states.count("FAIL") == 2  # two orphan asks
