"""Every controller by name, and the ``--controller-option KEY=VALUE`` pairs that set them up.

A separate module from the controllers so that Optuna is imported only when one of its samplers is
used, and so that the options a user may set are read from the constructors themselves (one list).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import get_type_hints

from latprof.errors import LatprofError
from latprof.search.controllers import Controller, GuidedEvolution, PPOController, RandomSearch, RegularizedEvolution, TunedPPO
from latprof.search.optuna_controllers import NSGA2Controller, TPEController
from latprof.typed import typed_value

CONTROLLERS: dict[str, type[Controller]] = {
    c.name: c for c in (PPOController, TunedPPO, RegularizedEvolution, GuidedEvolution, RandomSearch, TPEController,
                        NSGA2Controller)}


def make_controller(name: str, choices: Sequence[int], seed: int = 0, workdir: Path | None = None,
                    **options) -> Controller:
    """A new controller by registry name, e.g. ``make_controller("ppo", [4, 4, 2], seed=1, lr=5e-3)``;
    options it does not name take the controller's (or its preset's) defaults."""
    if name not in CONTROLLERS:
        raise LatprofError(f"unknown controller {name!r}; known: {', '.join(CONTROLLERS)}")
    kind = CONTROLLERS[name]
    unknown = sorted(set(options) - set(kind.option_defaults()))
    if unknown:
        raise LatprofError(f"controller {name!r} has no option {unknown[0]!r}; its options: "
                           f"{', '.join(kind.option_defaults())}")
    return kind(choices, seed, workdir=workdir, **{**kind.option_defaults(), **options})


def parse_options(name: str, pairs: Iterable[str]) -> dict:
    """``KEY=VALUE`` strings as the options of controller ``name``, each VALUE read as JSON (a bare
    word as a string) and checked against the option's type: ``["lr=0.001", "hidden=64"]``."""
    if name not in CONTROLLERS:
        raise LatprofError(f"unknown controller {name!r}; known: {', '.join(CONTROLLERS)}")
    kind = CONTROLLERS[name]
    defaults = kind.option_defaults()
    hints = {k: v for klass in reversed(kind.__mro__) if "__init__" in vars(klass)
             for k, v in get_type_hints(klass.__init__).items()}
    options = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not equals or key not in defaults:
            raise LatprofError(f"--controller-option {pair!r}: {name} takes KEY=VALUE with KEY one of "
                               f"{', '.join(defaults)} ('latprof search --help' lists them)")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        try:
            options[key] = typed_value(value, hints[key], f"--controller-option {key}")
        except ValueError as exc:
            raise LatprofError(f"{exc} (for example {key}={json.dumps(defaults[key])})") from None
    return options


def options_help() -> str:
    """Each controller's options with their defaults, for ``--help``."""
    return "; ".join(f"{name}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in kind.option_defaults().items())
                     for name, kind in CONTROLLERS.items())
