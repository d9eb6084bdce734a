"""The pipeline on a deterministic device: run folder -> LUT -> predictor -> predict -> validate
-> search, with exact results.

``FormulaDevice`` implements the device contract with latencies from a formula: an op costs
``op_us`` (its work), a model costs ``INVOKE_US`` plus ``REMAINDER`` times its ops, whatever
method or call times it.  So every step's result is known in advance: the LUT's rows, a
prediction of a network whose ops it holds (the formula, to rounding), a validation (no error,
no drift) and a search's latencies.  The real devices are tested end to end elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from latprof.arch import Architecture
from latprof.convert import ensure_architectures
from latprof.devices.base import Device, DeviceConfig, _no_progress
from latprof.lut import build_lut
from latprof.measurement import NetworkProfile, Provenance, Timing
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.predict import predict
from latprof.profiling import OVERHEAD_SPEC, profile
from latprof.tflite_file import decompose
from latprof.timing import IN_NETWORK, ISOLATED, method_tag
from latprof.validate import validate

INVOKE_US = 20.0  # one invoke of any model
REMAINDER = 1.02  # a whole model takes 2% more than the sum of its ops, beyond the invoke


def op_us(spec: OpSpec) -> float:
    """An op's time from its work; the overhead model's add costs nothing beyond the invoke."""
    if spec.key == OVERHEAD_SPEC.key:
        return 0.0
    elements = sum(int(np.prod(shape)) for shape in (*spec.inputs, spec.output))
    return 1.0 + spec.macs / 1e4 + elements / 1e3


def whole_us(ops: Sequence[OpSpec]) -> float:
    return INVOKE_US + REMAINDER * sum(op_us(op) for op in ops)


def exact(latency_us: float) -> Timing:
    return Timing(latency_us, latency_us, latency_us, latency_us, 1)


class FormulaDevice(Device):
    """The device contract with latencies from :func:`whole_us` and :func:`op_us`."""

    methods = frozenset({IN_NETWORK, ISOLATED})
    delegates = ("xnnpack",)

    def __init__(self, config: DeviceConfig = DeviceConfig()):
        self._check_config(config)
        self.config = config

    def provenance(self) -> Provenance:
        c = self.config
        return Provenance("formula", "a formula", "none", hashlib.sha256(b"formula").hexdigest(), c.threads, c.delegate,
                          c.dtype, method_tag(c.method, "op_us and whole_us of tests/test_pipeline.py"), {})

    def measure_models(self, models, progress=_no_progress) -> list[Timing]:
        return [exact(whole_us(decompose(Path(model)).ops)) for model in models]

    def time_isolated(self, models, progress=_no_progress) -> list[Timing]:
        return self.measure_models(models, progress)

    def profile_networks(self, models, ops, progress=_no_progress):
        return [NetworkProfile(str(model), exact(whole_us(model_ops)), [exact(op_us(op)) for op in model_ops])
                for model, model_ops in zip(models, ops)], {}


ARCHS = [Architecture.from_string(text) for text in ("res64_w0.5:r1_k3_s11_e1_i32_o16",
                                                     "res64_w0.5:r1_k5_s11_e1_i32_o16_se0.25",
                                                     "res64_w0.5:r2_k3_s11_e6_i32_o16")]


@pytest.fixture(scope="module")
def formula_lut(tmp_path_factory, model_cache):
    run_dir = tmp_path_factory.mktemp("formula") / "run"
    models = ensure_architectures(ARCHS, "float32", model_cache)
    profile(FormulaDevice(), run_dir, model_cache, networks=models, request={"test": "formula"})
    return run_dir, build_lut([run_dir])


def test_the_lut_holds_each_op_at_its_share_of_the_whole_plus_the_invoke(formula_lut):
    _, lut = formula_lut
    assert lut.overhead_us == INVOKE_US
    ops = {op.key: op for arch in ARCHS for op in Network(arch).ops}
    assert set(ops) <= set(lut.table.index)
    for key, op in ops.items():
        # to the run folder's rounding (0.001 us)
        assert lut.table.loc[key, "latency_us"] == pytest.approx(INVOKE_US + REMAINDER * op_us(op), rel=1e-6)


def test_predict_of_any_network_of_known_ops_is_the_formula(formula_lut):
    """A network the LUT never saw whole, made of ops it holds, is predicted exactly."""
    _, lut = formula_lut
    unseen = Architecture.from_string("res64_w0.5:r1_k3_s11_e1_i32_o16_se0.25")
    for arch in (*ARCHS, unseen):
        ops = Network(arch).ops
        if all(op.key in lut.table.index for op in ops):
            assert predict(arch.to_string(), lut).latency_ms == pytest.approx(whole_us(ops) / 1000, abs=1e-4)  # 0.1 us


def test_validate_finds_no_error_and_no_drift(formula_lut, model_cache, tmp_path):
    _, lut = formula_lut
    result = validate(ARCHS, lut, FormulaDevice(), tmp_path / "val", model_cache)
    assert result.metrics["models"] == len(ARCHS) and result.metrics["reference_drift_pct"] == 0.0
    assert np.abs(result.table["error_pct"].to_numpy()).max() <= 0.01
    assert result.table["measured_ms"].tolist() == pytest.approx(
        [whole_us(Network(arch).ops) / 1000 for arch in ARCHS], abs=1e-4)


def test_the_predictor_fills_an_op_the_lut_lacks_from_the_same_formula(formula_lut):
    from latprof.predictor import train_predictor

    _, lut = formula_lut
    trained = train_predictor(lut, "formula.json", folds=2)
    wider = Architecture.from_string("res64_w0.5:r1_k3_s11_e1_i32_o24")
    prediction = predict(wider.to_string(), lut, trained.model)
    assert prediction.predicted_ops >= 1 and prediction.latency_ms is not None
    assert prediction.latency_ms == pytest.approx(whole_us(Network(wider).ops) / 1000, rel=0.5)


def test_a_search_prices_its_candidates_with_the_formula(formula_lut, model_cache, tmp_path):
    from latprof.search.latency import LutLatency

    _, lut = formula_lut
    prices = LutLatency(lut, FormulaDevice(), model_cache, tmp_path / "extra")
    for arch in ARCHS:
        latency_ms, source = prices.latency_ms(arch)
        assert source == "lut" and latency_ms == pytest.approx(whole_us(Network(arch).ops) / 1000, abs=1e-4)
