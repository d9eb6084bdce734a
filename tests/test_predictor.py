"""The latency predictor on real measurements: estimator contract, per-type error, safe files,
prediction that says which ops were estimated, and adaptive profiling with resume."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import KFold, cross_val_predict
from test_cli import assert_one_line_error

from latprof.adaptive import ROUNDS_FILE, AdaptivePlan, adaptive_profile
from latprof.errors import LatprofError
from latprof.lut import build_lut
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.predict import predict_ops
from latprof.predictor import LatencyPredictor, TrainedPredictor, lut_training_data, train_predictor
from latprof.profiling import read_run
from latprof.space import get_space

RESOLUTION = 96  # sampled networks at a small input: same op kinds, cheap to convert and time


def _archs(count: int, seed: int):
    return [dataclasses.replace(a, resolution=RESOLUTION) for a in get_space("mnasnet").sample_many(count, seed)]


@pytest.fixture(scope="module")
def pool() -> list[OpSpec]:
    """Unique ops of three sampled networks: the pool adaptive profiling chooses from."""
    return sorted({op for arch in _archs(3, 11) for op in Network(arch).ops})


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory, pool, host_device, model_cache):
    run_dir = tmp_path_factory.mktemp("adaptive") / "run"
    plan = AdaptivePlan(budget=50, rounds=2, check=20, seed=0)
    return run_dir, plan, adaptive_profile(pool, plan, host_device, run_dir, model_cache)


@pytest.fixture(scope="module")
def lut_path(tmp_path_factory, adaptive_run):
    path = tmp_path_factory.mktemp("predictor-lut") / "lut.json"
    build_lut([adaptive_run[0]]).save(path)
    return path


@pytest.fixture(scope="module")
def trained(adaptive_run, lut_path):
    from latprof.lut import LUT

    return train_predictor(LUT.load(lut_path), lut_path, folds=4)


def test_adaptive_profile_spends_the_budget_in_rounds(adaptive_run, pool):
    run_dir, plan, reports = adaptive_run
    _, records = read_run(run_dir)
    keys = {r["key"] for r in records}
    assert len(keys & {s.key for s in pool}) == plan.budget + plan.check
    # Ops the calibration networks timed in context count toward a round's target as well.
    assert plan.targets() == [20, 35, 50]
    assert [r.round for r in reports] == [0, 1, 2]
    assert all(r.trained_on >= target for r, target in zip(reports, plan.targets()))
    assert reports[-1].trained_on == plan.budget
    assert all(r.check_ops == plan.check and np.isfinite(r.mape_pct) for r in reports)


def test_adaptive_profile_resumes_without_measuring_again(adaptive_run, pool, host_device, model_cache):
    run_dir, plan, reports = adaptive_run
    before = (run_dir / "measurements.jsonl").read_text()
    again = adaptive_profile(pool, plan, host_device, run_dir, model_cache)
    assert (run_dir / "measurements.jsonl").read_text() == before
    assert again == reports
    assert len((run_dir / ROUNDS_FILE).read_text().splitlines()) == len(reports)


def test_adaptive_picks_unknown_op_types_first(trained):
    model = trained.model
    known = [OpSpec.from_key(k) for k in trained.keys[:5]]
    stranger = OpSpec("HARD_SWISH", ((12, 12, 40),), (12, 12, 40))
    from latprof.adaptive import select

    assert select(model, [*known, stranger], 1) == [stranger]


def test_predictor_is_a_scikit_learn_estimator(trained):
    specs, latency = lut_training_data(trained_lut(trained))
    keys = np.array([s.key for s in specs], dtype=object)
    twin = clone(trained.model)
    assert twin.get_params() == trained.model.get_params()
    held_out = cross_val_predict(twin, keys, latency, cv=KFold(3, shuffle=True, random_state=0))
    assert held_out.shape == latency.shape
    # LUT rows are sorted by key, so folds must be shuffled for every fold to see every common type.
    common = [sum(t.op == s.op for t in specs) >= 10 for s in specs]
    assert any(common) and np.isfinite(held_out[common]).all()
    unknown = trained.model.predict(["HARD_SWISH|in=12x12x40|out=12x12x40"])
    assert np.isnan(unknown).all()


def trained_lut(trained):
    from latprof.lut import LUT

    return LUT.load(trained.lut["path"])


def test_cross_validation_reports_each_op_type(trained):
    rows = {row["op"]: row for row in trained.cross_validation}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "all"} <= set(rows)
    # A type with one example has nothing to learn from in the fold that holds it out.
    assert len(trained.keys) - len(trained.model.op_types_) <= rows["all"]["count"] <= len(trained.keys)
    # Thirty-odd convolutions at one resolution already give a rough fit; a broken feature set
    # or target (say, latency instead of its logarithm) is off by far more.
    assert rows["CONV_2D"]["mape_pct"] < 50, rows["CONV_2D"]


def test_predictor_file_is_json_and_refits_to_the_same_predictions(trained, tmp_path):
    path = tmp_path / "predictor.json"
    trained.save(path)
    document = json.loads(path.read_text())  # plain data: loading it runs no code
    assert document["lut"]["sha256"] == trained.lut["sha256"]
    assert document["provenance"] == trained.provenance
    loaded = TrainedPredictor.load(path)
    probe = [OpSpec.from_key(k) for k in trained.keys[::7]]
    np.testing.assert_allclose(loaded.model.predict(probe), trained.model.predict(probe), rtol=1e-9)


def test_an_op_off_the_spaces_pattern_does_not_run_away():
    """The space's MULs scale a map by a vector (SE); EfficientNet's swish multiplies two maps, so
    its input is twice its output where the space's is not.  Where the counts move together a
    barely penalised log-log line splits its slope into huge opposite coefficients and runs away
    on such an op (780x on a measured LUT; 2.5x here).  Labels are an elementwise op's
    cost, a fixed part plus time per element moved, with 5% noise: what the line must extrapolate."""
    se = sorted({op for arch in get_space("mnasnet").sample_many(20, 3) for op in Network(arch).ops if op.op == "MUL"})
    assert len(se) >= 50 and all(op.inputs[1][:2] == (1, 1) for op in se)

    def cost_us(op: OpSpec) -> float:
        return 0.5 + 2e-4 * sum(math.prod(shape) for shape in (*op.inputs, op.output))

    noise = np.random.default_rng(0).lognormal(0, 0.05, len(se))
    model = LatencyPredictor().fit(se, [cost_us(op) * n for op, n in zip(se, noise)])
    swish = [OpSpec.from_key(f"MUL|in={m},{m}|out={m}") for m in ("48x48x16", "112x112x32", "56x56x144")]
    assert model.predict(swish) == pytest.approx([cost_us(op) for op in swish], rel=0.25)


def test_predictor_learns_what_an_op_adds_beyond_the_overhead():
    """With ops timed inside networks every LUT row holds an overhead of about 90 us, more than
    most ops take.  Labels are the overhead plus a convolution's time per MAC, with 5% noise on
    the op; a predictor told the overhead must recover what held-out ops add (the part a network
    sums), and do better at it than one that fits the whole row."""
    convs = sorted({op for arch in get_space("mnasnet").sample_many(20, 3) for op in Network(arch).ops
                    if op.op == "CONV_2D"})
    overhead = 90.0
    cost = np.array([0.5 + op.macs / 2e3 for op in convs])
    rows = overhead + cost * np.random.default_rng(0).lognormal(0, 0.05, len(convs))
    train, test = np.arange(len(convs)) % 2 == 0, np.arange(len(convs)) % 2 == 1
    convs_train, convs_test = [op for op, t in zip(convs, train) if t], [op for op, t in zip(convs, test) if t]

    def added_error(overhead_us: float) -> float:
        model = LatencyPredictor(overhead_us=overhead_us).fit(convs_train, rows[train])
        return float(np.mean(np.abs((model.predict(convs_test) - overhead) / cost[test] - 1)))

    assert len(convs_test) >= 100
    assert added_error(overhead) < 0.1
    assert added_error(overhead) < added_error(0.0) / 2


def test_prediction_fills_what_the_lut_lacks_and_says_so(trained):
    lut = trained_lut(trained)
    arch = _archs(1, 99)[0]
    ops = list(Network(arch).ops)
    plain = predict_ops("x", ops, lut)
    filled = predict_ops("x", ops, lut, trained.model)
    assert plain.latency_ms is None and plain.missing
    assert filled.latency_ms is not None and not filled.missing
    assert filled.predicted_ops == sum(1 for op in ops if lut.op_latency_us(op) is None) > 0
    sources = {row["source"] for row in filled.breakdown}
    assert "predictor" in sources
    lut_rows = [row for row in filled.breakdown if row["source"] == "lut"]
    assert all(row["latency_us"] == pytest.approx(lut.op_latency_us(OpSpec.from_key(row["key"])), abs=1e-3)
               for row in lut_rows)


def test_cli_train_and_predict_with_a_predictor(run_cli, lut_path, tmp_path):
    predictor = tmp_path / "p.json"
    result = run_cli("predictor", "train", lut_path, "-o", predictor, "--folds", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ops"] > 50 and "CONV_2D" in report["op_types"]
    arch = _archs(1, 5)[0].to_string()
    without = run_cli("predict", arch, "--lut", lut_path)
    assert without.returncode == 1 and "incomplete" in without.stdout
    result = run_cli("predict", arch, "--lut", lut_path, "--predictor", predictor, "--json", "--breakdown")
    assert result.returncode == 0, result.stderr
    [data] = json.loads(result.stdout)
    assert data["latency_ms"] > 0 and data["predicted_ops"] > 0 and not data["missing"]
    assert data["lut_ops"] + data["predicted_ops"] == data["ops"]


@pytest.mark.parametrize("damage", ["truncate", "foreign", "missing"])
def test_cli_refuses_a_bad_predictor_file(run_cli, lut_path, trained, tmp_path, damage):
    path = tmp_path / "bad.json"
    if damage == "truncate":
        trained.save(path)
        path.write_text(path.read_text()[:200])
    elif damage == "foreign":
        path.write_text(json.dumps({"format": "something-else"}))
    result = run_cli("predict", "mobilenetv2", "--lut", lut_path, "--predictor", path)
    assert_one_line_error(result, str(path), "no such predictor" if damage == "missing" else "predictor train")


@pytest.mark.parametrize("change", [{"params": {"n_estimators": 10**9}}, {"params": {"n_estimators": "200"}},
                                    {"params": {"estimator": "forest"}}, {"params": {"max_depth": 3}},
                                    {"params": {"overhead_us": float("inf")}}, {"check": {"keys": 5}},
                                    {"check": {"keys": [["CONV_2D"]], "latency_us": [1.0]}}])
def test_a_predictor_file_asking_for_nonsense_is_refused_at_once(trained, tmp_path, change):
    """A billion trees would hang the re-fit; a malformed check block raised a traceback."""
    from latprof.predictor import TrainedPredictor

    path = tmp_path / "bad.json"
    trained.save(path)
    document = json.loads(path.read_text())
    for field, value in change.items():
        document[field] = {**document[field], **value} if field == "params" else value
    path.write_text(json.dumps(document))
    with pytest.raises(LatprofError, match="corrupt or foreign predictor file"):
        TrainedPredictor.load(path)


def test_cli_refuses_a_predictor_of_other_provenance(run_cli, tiny_lut_path, trained, tmp_path):
    path = tmp_path / "other.json"
    dataclasses.replace(trained, provenance={**trained.provenance, "threads": 4}).save(path)
    result = run_cli("predict", "mobilenetv2", "--lut", tiny_lut_path, "--predictor", path)
    assert_one_line_error(result, "threads", "train a predictor on this LUT")


def test_cli_adaptive_needs_a_budget(run_cli, tmp_path):
    assert_one_line_error(run_cli("profile", "--adaptive", "-o", tmp_path / "r"), "--budget")


def test_search_latency_source_uses_the_predictor_for_what_the_lut_lacks(trained):
    from latprof.search.latency import LutLatency

    lut = trained_lut(trained)
    source = LutLatency(lut, predictor=trained.model)
    unseen = _archs(1, 99)[0]
    latency, name = source.latency_ms(unseen)
    assert name == "predictor" and latency == predict_ops("x", list(Network(unseen).ops), lut, trained.model).latency_ms
    assert len(lut) == len(trained_lut(trained))  # nothing was profiled into the LUT


def test_search_latency_source_asks_the_predictor_once_per_op(trained):
    """A search meets the same ops again and again; their estimates are kept, not recomputed."""
    from latprof.search.latency import LutLatency

    asked = []

    class Counting:
        def predict(self, specs):
            asked.extend(spec.key for spec in specs)
            return trained.model.predict(specs)

    lut = trained_lut(trained)
    source = LutLatency(lut, predictor=Counting())
    first, second = _archs(2, 98)
    for arch in (first, second, first, second):
        assert source.latency_ms(arch) == LutLatency(lut, predictor=trained.model).latency_ms(arch)
    unseen = {op.key for arch in (first, second) for op in Network(arch).ops if op.key not in lut.table.index}
    assert unseen and sorted(asked) == sorted(unseen)


def test_cli_search_with_predictor_latency_needs_a_predictor(run_cli, lut_path, tmp_path):
    result = run_cli("search", "--target-ms", "5", "--latency", "predictor", "--lut", lut_path, "-o", tmp_path / "s")
    assert_one_line_error(result, "--predictor")
