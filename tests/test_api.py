"""The library API as a notebook uses it, and the Optuna example script run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_pricing import candidates, lut  # noqa: F401  (the fixture)

import latprof
from latprof.errors import LatprofError
from latprof.predictor import train_predictor

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "optuna_latency_constraint.py"


@pytest.fixture(scope="module")
def files(lut, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("api")
    lut.save(folder / "lut.json")
    train_predictor(lut, folder / "lut.json", folds=2).save(folder / "predictor.json")
    return folder / "lut.json", folder / "predictor.json"


def test_api_prices_one_and_many_alike(files):
    table = latprof.load_lut(files[0])
    predictor = latprof.load_predictor(files[1], table)
    archs = candidates(5, 9)
    one = [latprof.latency(arch, table, predictor) for arch in archs]
    assert [p.latency_ms for p in one] == pytest.approx(latprof.latencies(archs, table, predictor), abs=1e-4)
    assert all(p.latency_ms > 0 and {row["source"] for row in p.breakdown} <= {"lut", "predictor"} for p in one)
    assert latprof.latencies(archs, table) == [None] * 5  # without the predictor: ops missing, not a guess
    assert latprof.reward(0.8, 20.0, 10.0, "hard") == pytest.approx(0.4)
    assert latprof.reward(0.8, 5.0, 10.0) == pytest.approx(0.8 * 0.5 ** -0.07)
    space = latprof.search_space()
    assert space.decode([0] * len(space.choices())).resolution == space.choices()[0].options[0]
    with pytest.raises(AttributeError):
        latprof.no_such_function  # noqa: B018


def test_a_predictor_of_another_device_is_refused(files, lut, tmp_path):  # noqa: F811
    import dataclasses

    other = dataclasses.replace(lut, provenance=dataclasses.replace(lut.provenance, threads=4))
    with pytest.raises(LatprofError, match="thread"):
        latprof.load_predictor(files[1], other)


@pytest.mark.parametrize("objective", ["constraint", "pareto"])
def test_the_optuna_example_runs(files, objective):
    done = subprocess.run([sys.executable, str(EXAMPLE), "--lut", str(files[0]), "--predictor", str(files[1]),
                           "--trials", "12", "--target-ms", "3", "--objective", objective],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr[-2000:]
    if objective == "constraint":
        assert done.stdout.startswith("best under 3.0 ms: accuracy 0.")
    else:
        fronts = [line.split() for line in done.stdout.splitlines()[1:]]
        assert fronts and all(float(a[1]) > 0 and float(a[2]) > 0 for a in fronts)
