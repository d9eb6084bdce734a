"""Your own Optuna study over the MnasNet space, with latprof's latency as a constraint or an objective.

    python examples/optuna_latency_constraint.py --lut runs/demo/lut.json [--predictor predictor.json]
        [--target-ms 10] [--trials 50] [--objective constraint|pareto]

``constraint``: maximise accuracy under latency <= the target, a constraint Optuna's TPE honours
(``Trial.set_constraint``, which replaced ``constraints_func`` in Optuna 5).  ``pareto``: accuracy and
latency as two objectives (NSGA-II).

``accuracy`` below stands in for your training: it is a smooth function of the network's MACs, so
the example runs in seconds.  Put your own evaluation there.
"""

from __future__ import annotations

import argparse
import math

import optuna

import latprof


def accuracy(arch: latprof.Architecture) -> float:
    """Stand-in for training and evaluating ``arch``: more multiply-adds, more accuracy, saturating."""
    from latprof.network import Network

    return 0.8 - 0.25 * math.exp(-Network(arch).macs / 2e8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", required=True)
    parser.add_argument("--predictor", help="predictor file for ops the LUT lacks")
    parser.add_argument("--target-ms", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--objective", choices=["constraint", "pareto"], default="constraint")
    args = parser.parse_args()

    lut = latprof.load_lut(args.lut)
    predictor = latprof.load_predictor(args.predictor, lut) if args.predictor else None
    space = latprof.search_space("mnasnet")
    choices = space.choices()

    def architecture(trial: optuna.Trial) -> latprof.Architecture:
        return space.decode([trial.suggest_categorical(c.name, list(range(len(c.options)))) for c in choices])

    def latency_ms(arch: latprof.Architecture) -> float:
        (value,) = latprof.latencies([arch], lut, predictor)
        if value is None:
            raise optuna.TrialPruned("the LUT (and predictor) cannot price this architecture")
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.objective == "constraint":
        def objective(trial: optuna.Trial) -> float:
            arch = architecture(trial)
            trial.set_user_attr("latency_ms", latency_ms(arch))
            trial.set_constraint("latency", trial.user_attrs["latency_ms"] - args.target_ms)  # feasible when <= 0
            return accuracy(arch)

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(objective, n_trials=args.trials)
        feasible = [t for t in study.trials if t.values and t.user_attrs["latency_ms"] <= args.target_ms]
        best = max(feasible, key=lambda t: t.value)
        print(f"best under {args.target_ms} ms: accuracy {best.value:.4f}, {best.user_attrs['latency_ms']:.3f} ms "
              f"({len(feasible)} of {len(study.trials)} trials feasible)")
    else:
        def objective(trial: optuna.Trial) -> tuple[float, float]:
            arch = architecture(trial)
            return accuracy(arch), latency_ms(arch)

        study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=0))
        study.optimize(objective, n_trials=args.trials)
        print(f"Pareto front of {len(study.trials)} trials:")
        for trial in sorted(study.best_trials, key=lambda t: t.values[1]):
            print(f"  accuracy {trial.values[0]:.4f}  {trial.values[1]:.3f} ms")


if __name__ == "__main__":
    main()
