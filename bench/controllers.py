"""Which controller finds the best reward with fewest samples: latprof's PPO (the paper's settings
and the tuned preset), aging evolution and random search, against Optuna's TPE and NSGA-II.

Every controller is the one ``latprof search --controller NAME`` runs (``latprof.search.registry``),
asked one candidate at a time and told its reward at once, on the MnasNet space (44 decisions) for
``--budget`` samples and ``--seeds`` seeds, under both MNAS reward presets: soft (alpha = beta =
-0.07) and hard (alpha = 0, beta = -1).  NSGA-II optimises the reward here (one objective).

- LAT is the LUT's (``--lut``, a LUT of the whole space: ``latprof profile --all``), priced with
  ``latprof.pricing.Pricer``.  T is the 30th percentile of 2,000 random candidates' latency, so the
  target binds.
- ACC is a stand-in for training, cheap and reproducible, made of the space's own structure: a
  saturating function of the network's multiply-adds (capacity) plus small effects of what the
  MnasNet paper found to matter beyond capacity: squeeze-excite, 5x5 kernels and identity skips
  help, a pool skip helps less, the lowest resolution costs.  It is smooth where real accuracy is
  noisy: the bench compares how controllers trade accuracy against latency, not ImageNet results.

Regret is (R* - best reward found so far) / R*, in percent, where R* is the best reward known: the
best any run found, improved by coordinate ascent (one decision at a time) until no single change
helps.  The table gives the mean regret over seeds at each checkpoint and its standard error
(sem@), the number of seeds that reached R*, and the PPO presets' policy entropy (nats over the 44
decisions; uniform is the first value): a policy that stops exploring shows it there.  Each claim
is printed with the margin it holds or fails by and that margin's standard error, since seeds, not
the machine, are this bench's noise.  A PNG plots mean regret against samples.

    python bench/controllers.py --lut LUT [--budget 1000] [--seeds 10] [--workers 2]

Run from the repo root.  About 45 minutes on 2 cores, most of it Optuna's samplers and PPO.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common
import numpy as np

from latprof.arch import SKIP_IDENTITY, SKIP_POOL, Architecture
from latprof.lut import LUT
from latprof.network import Network
from latprof.pricing import Pricer
from latprof.search.registry import make_controller
from latprof.search.reward import PRESETS, Reward
from latprof.space import get_space

CONTROLLERS = ("ppo", "ppo-tuned", "evolution", "evolution-guided", "random", "tpe", "nsga2")
OURS = ("ppo", "ppo-tuned", "evolution", "evolution-guided")
CHECKPOINTS = (100, 200, 500, 1000)
SPACE = get_space("mnasnet")
SIZES = [len(choice.options) for choice in SPACE.choices()]


def accuracy(arch: Architecture) -> float:
    """The stand-in for a short training's accuracy (see the module's docstring)."""
    capacity = 0.78 - 0.28 * math.exp(-Network(arch).macs / 2.5e8)
    effects = sum(block.repeats * (0.0015 * (block.se_ratio > 0) + 0.001 * (block.kernel == 5)
                                   + 0.0015 * (block.skip == SKIP_IDENTITY) + 0.0005 * (block.skip == SKIP_POOL))
                  for block in arch.blocks)
    return capacity + effects - 0.01 * (arch.resolution == min(SPACE.resolutions))


class Scorer:
    """Accuracy and latency of decisions, remembered (a controller may ask a candidate twice)."""

    def __init__(self, lut_path: str) -> None:
        self.pricer = Pricer(LUT.load(lut_path, allow_mixed=True))

    @functools.cache  # noqa: B019 (one scorer per process, never freed)
    def __call__(self, decisions: tuple[int, ...]) -> tuple[float, float]:
        arch = SPACE.decode(list(decisions))
        latency = self.pricer.latency_ms(arch).latency_ms
        if latency is None:
            raise SystemExit("the LUT lacks ops of the space: give a LUT of the whole space (latprof profile --all)")
        return accuracy(arch), latency


_scorer: Scorer | None = None


def _init(lut_path: str) -> None:
    global _scorer
    _scorer = Scorer(lut_path)


def random_target(scorer: Scorer) -> float:
    """T: the 30th percentile of 2,000 random candidates' latency (seed 0), so that the target binds."""
    rng = np.random.default_rng(0)
    latencies = [scorer(tuple(int(rng.integers(k)) for k in SIZES))[1] for _ in range(2000)]
    return round(float(np.percentile(latencies, 30)), 3)


def samples(name: str, seed: int, reward: Reward, scorer: Scorer, budget: int) -> Iterator[tuple]:
    """One search by the registry's controller ``name``, asked and told one candidate at a time for
    ``budget`` samples: yields ``(controller, decisions, latency_ms, reward)`` after each tell."""
    options = {"objective": "reward"} if name == "nsga2" else {}  # NSGA-II optimises the reward here
    controller = make_controller(name, SIZES, seed, **options)
    for _ in range(budget):
        (decisions,) = controller.ask(1)
        accuracy, latency = scorer(tuple(decisions))
        value = reward(accuracy, latency)
        controller.tell([decisions], [value])
        yield controller, decisions, latency, value


def run(task: tuple) -> dict:
    """One controller, one seed, one preset: the best reward after each sample, and PPO's entropy."""
    name, seed, preset, target_ms, budget = task
    best, best_decisions, curve, entropy, started = -math.inf, None, [], {}, time.process_time()
    search = samples(name, seed, Reward.preset(preset, target_ms), _scorer, budget)
    for step, (controller, decisions, _, value) in enumerate(search, 1):
        if value > best:
            best, best_decisions = value, decisions
        curve.append(best)
        if step in CHECKPOINTS and hasattr(controller, "policy_entropy"):
            entropy[step] = controller.policy_entropy()
    return {"controller": name, "seed": seed, "preset": preset, "curve": curve, "entropy": entropy,
            "best": best, "best_decisions": best_decisions, "cpu_s": time.process_time() - started}


def polish(decisions: list[int], score) -> tuple[float, list[int]]:
    """Coordinate ascent from ``decisions``: the best single-decision change, until none helps."""
    best = score(decisions)
    while True:
        moves = [(score(d), d) for i, k in enumerate(SIZES) for option in range(k) if option != decisions[i]
                 for d in [decisions[:i] + [option] + decisions[i + 1:]]]
        value, move = max(moves)
        if value <= best:
            return best, decisions
        best, decisions = value, move


def main() -> None:
    parser = common.parser(__doc__, "controllers")
    parser.add_argument("--lut", required=True, help="LUT of the whole space")
    parser.add_argument("--budget", type=int, default=max(CHECKPOINTS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    _init(args.lut)
    target_ms = random_target(_scorer)
    tasks = [(name, seed, preset, target_ms, args.budget) for preset in PRESETS for seed in range(args.seeds)
             for name in CONTROLLERS]
    started = time.monotonic()
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(args.lut,)) as pool:
        results = list(pool.map(run, tasks))

    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    table, checks, optima, plot_curves = [], [], {}, {}
    for preset in PRESETS:
        reward = Reward.preset(preset, target_ms)

        def score(decisions: list[int]) -> float:
            return reward(*_scorer(tuple(decisions)))  # noqa: B023 (used within this iteration)

        runs = [r for r in results if r["preset"] == preset]
        # R*: the best reward known, from the best runs' best candidates polished by coordinate ascent
        optimum = max(r["best"] for r in runs)
        for r in sorted(runs, key=lambda r: -r["best"])[:5]:
            optimum = max(optimum, polish(r["best_decisions"], score)[0])
        optima[preset] = optimum
        rows = []
        for name in CONTROLLERS:
            mine = [r for r in runs if r["controller"] == name]
            curves = np.array([r["curve"] for r in mine])
            regret = 100 * (optimum - curves) / optimum
            plot_curves[(preset, name)] = regret.mean(axis=0)
            row = {"preset": preset, "controller": name}
            row.update({f"regret@{c}_pct": round(float(regret[:, c - 1].mean()), 3) for c in checkpoints})
            row.update({f"sem@{c}_pct": round(float(regret[:, c - 1].std(ddof=1) / math.sqrt(len(regret))), 3)
                        for c in checkpoints if len(regret) > 1})
            row["reached_optimum"] = int(sum(np.isclose(curves[:, -1], optimum, rtol=1e-9)))
            for c in checkpoints:
                values = [r["entropy"][c] for r in mine if c in r["entropy"]]
                if values:
                    row[f"entropy@{c}"] = round(float(np.mean(values)), 2)
            row["cpu_s_per_run"] = round(float(np.mean([r["cpu_s"] for r in mine])), 1)
            rows.append(row)
        table += rows
        preset_checks = _checks(rows, checkpoints)
        checks += [{"preset": preset, "check": check, **verdict} for check, verdict in preset_checks.items()]
        common.print_table([{k: v for k, v in row.items() if k != "preset"} for row in rows],
                           title=f"{preset} constraint (T = {target_ms} ms, R* = {optimum:.5f}): mean regret in % over "
                                 f"{args.seeds} seeds")
        for check, verdict in preset_checks.items():
            margin = f" (by {verdict['margin_pct']:+.2f} points, standard error {verdict['standard_error_pct']:.2f})" \
                if "standard_error_pct" in verdict else ""
            print(f"  {'yes' if verdict['holds'] else 'NO '}  {check}{margin}")
    plot = _plot(plot_curves, args.output.with_suffix(".png"), args.seeds)
    print(f"\nplot: {plot}; {time.monotonic() - started:.0f} s")
    common.write_json(args.output, {**common.context("controllers"), "lut": args.lut, "target_ms": target_ms,
                                    "seeds": args.seeds, "budget": args.budget, "optimum_reward": optima,
                                    "rows": table, "checks": checks, "plot": str(plot)})


def _checks(rows: list[dict], checkpoints: list[int]) -> dict[str, dict]:
    """The bench's claims, each true or false in this run, with the margin it holds (or fails) by,
    in points of regret, and that margin's standard error over seeds: a claim that holds by less
    than about twice its standard error could go the other way with other seeds."""
    by = {row["controller"]: row for row in rows}

    def verdict(better: str, worse: str, c: int, holds) -> dict:
        margin = by[worse][f"regret@{c}_pct"] - by[better][f"regret@{c}_pct"]
        result = {"holds": bool(holds(margin)), "margin_pct": round(margin, 3)}
        if f"sem@{c}_pct" in by[better]:
            result["standard_error_pct"] = round(math.hypot(by[better][f"sem@{c}_pct"], by[worse][f"sem@{c}_pct"]), 3)
        return result

    checks = {}
    for c in checkpoints:
        best_ours = min(OURS, key=lambda name: by[name][f"regret@{c}_pct"])  # noqa: B023 (used at once)
        checks[f"best of latprof's controllers at least as good as TPE at {c}"] = verdict(
            best_ours, "tpe", c, lambda margin: margin >= 0)
        if c >= 200:
            for name in OURS:
                checks[f"{name} better than random at {c}"] = verdict(name, "random", c, lambda margin: margin > 0)
    return checks


def _plot(curves: dict, path: Path, seeds: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PRESETS), figsize=(12, 4.5), sharey=False)
    for axis, preset in zip(axes, PRESETS):
        for name in CONTROLLERS:
            regret = curves[(preset, name)]
            axis.plot(np.arange(1, len(regret) + 1), np.maximum(regret, 1e-4), label=name)
        axis.set_yscale("log")
        axis.set_xlabel("samples")
        axis.set_ylabel(f"mean regret over {seeds} seeds (%)")
        axis.set_title(f"{preset} constraint")
        axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    main()
