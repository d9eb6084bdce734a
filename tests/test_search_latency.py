"""The search's LUT latency when the predictor estimates some of a candidate's ops and another op
type is unknown to both the LUT and the predictor: that op is profiled on the device when there is
one, and otherwise the candidate is refused with a one-line error naming the op.  A latency of
None (which crashed the search in the reward, after training the candidate) is never returned."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from latprof.arch import Architecture
from latprof.errors import LatprofError
from latprof.lut import ISOLATED_SOURCE, LUT
from latprof.measurement import Provenance
from latprof.network import Network
from latprof.ops import OpSpec
from latprof.predict import predict_ops
from latprof.predictor import LatencyPredictor
from latprof.search.latency import LutLatency
from latprof.space import get_space

ARCH = Architecture.from_string("res64_w0.5:r1_k3_s11_e1_i32_o16")  # seven ops, SOFTMAX last
SOFTMAX = "SOFTMAX|in=1000|out=1000"
ESTIMATED = "DEPTHWISE_CONV_2D|in=32x32x16|out=32x32x16|k=3|s=1|pad=SAME|act=RELU"  # left to the predictor
OVERHEAD_US = 2.0
PROVENANCE = Provenance("test-device", "test-cpu", "test-runtime", "0" * 64, 1, "xnnpack", "float32", "test/1")


def _cost_us(spec: OpSpec) -> float:
    elements = sum(int(np.prod(shape)) for shape in (*spec.inputs, spec.output))
    return OVERHEAD_US + 0.5 + spec.macs / 2e4 + elements / 2e4


def _synthetic_lut(provenance: Provenance) -> LUT:
    """Every op of a few sampled networks and of ARCH, less every SOFTMAX (an op type the
    predictor will never see) and ARCH's depthwise conv (which the predictor estimates)."""
    archs = [dataclasses.replace(a, resolution=64) for a in get_space("mnasnet").sample_many(6, 1)]
    specs = {op for arch in (*archs, ARCH) for op in Network(arch).ops}
    specs = sorted(spec for spec in specs if spec.op != "SOFTMAX" and spec.key != ESTIMATED)
    rows = [{"key": spec.key, "op": spec.op, "latency_us": _cost_us(spec), "median_us": _cost_us(spec),
             "p5_us": _cost_us(spec), "p95_us": _cost_us(spec), "runs": 10, "source": ISOLATED_SOURCE} for spec in specs]
    return LUT(provenance=provenance, table=pd.DataFrame(rows).set_index("key"), overhead_us=OVERHEAD_US)


def _fitted(lut: LUT) -> LatencyPredictor:
    specs = [OpSpec.from_key(key) for key in lut.table.index]
    return LatencyPredictor(n_estimators=20, overhead_us=lut.overhead_us).fit(specs, lut.table["latency_us"])


@pytest.fixture(scope="module")
def lut() -> LUT:
    return _synthetic_lut(PROVENANCE)


@pytest.fixture(scope="module")
def predictor(lut) -> LatencyPredictor:
    return _fitted(lut)


def test_the_case_is_what_it_claims(lut, predictor):
    """ARCH's ops: the depthwise conv is estimated, SOFTMAX is unknown to both, the rest in the LUT."""
    ops = list(Network(ARCH).ops)
    assert {op.key for op in ops if lut.op_latency_us(op) is None} == {ESTIMATED, SOFTMAX}
    assert "SOFTMAX" not in predictor.op_types_ and "DEPTHWISE_CONV_2D" in predictor.op_types_
    partial = predict_ops(ARCH.to_string(), ops, lut, predictor)
    assert partial.latency_ms is None and partial.predicted_ops == 1 and partial.missing == [SOFTMAX]


def test_without_a_device_the_missing_op_is_named_in_one_line(lut, predictor):
    with pytest.raises(LatprofError) as caught:
        LutLatency(lut, predictor=predictor).latency_ms(ARCH)
    message = str(caught.value)
    assert "\n" not in message
    assert SOFTMAX in message and "predictor cannot estimate" in message and ARCH.to_string() in message
    assert ESTIMATED not in message  # the predictor knows that one


def test_without_a_predictor_or_device_every_missing_op_counts(lut):
    with pytest.raises(LatprofError, match="lacks") as caught:
        LutLatency(lut).latency_ms(ARCH)
    assert f"the LUT lacks {ESTIMATED} and 1 more op of" in str(caught.value)


def test_candidates_the_lut_and_predictor_cover_get_numbers(lut, predictor):
    """With a SOFTMAX row, unseen candidates (most of their ops estimated) get a number each."""
    row = pd.DataFrame([{"key": SOFTMAX, "op": "SOFTMAX", "latency_us": 3.0, "median_us": 3.0, "p5_us": 3.0,
                         "p95_us": 3.0, "runs": 10, "source": ISOLATED_SOURCE}]).set_index("key")
    full = dataclasses.replace(lut, table=pd.concat([lut.table, row]))
    source = LutLatency(full, predictor=predictor)
    for arch in [dataclasses.replace(a, resolution=96) for a in get_space("mnasnet").sample_many(3, 7)]:
        latency, kind = source.latency_ms(arch)
        assert isinstance(latency, float) and latency > 0 and kind == "predictor"
    assert source.latency_ms(ARCH) == (predict_ops("x", list(Network(ARCH).ops), full, predictor).latency_ms,
                                       "predictor")


@pytest.fixture(scope="module")
def device(isolated_device):
    """The host timing single-op models quickly."""
    return isolated_device


def _measured_keys(run_dir) -> list[str]:
    path = run_dir / "measurements.jsonl"
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_with_a_device_the_unknown_op_is_profiled_and_the_rest_estimated(device, model_cache, tmp_path):
    lut = _synthetic_lut(device.provenance())
    predictor = _fitted(lut)
    extra = tmp_path / "extra"
    source = LutLatency(lut, device, model_cache, extra, predictor=predictor)
    before = len(lut)
    latency, kind = source.latency_ms(ARCH)
    assert isinstance(latency, float) and latency > 0 and kind == "predictor"
    assert SOFTMAX in _measured_keys(extra)  # profiled on the device ...
    assert ESTIMATED not in _measured_keys(extra)  # ... and only what the predictor could not estimate
    assert SOFTMAX in source.lut.table.index and ESTIMATED not in source.lut.table.index
    assert len(source.lut) > before
    ops = list(Network(ARCH).ops)
    assert latency == predict_ops(ARCH.to_string(), ops, source.lut, predictor).latency_ms
    measured = len(_measured_keys(extra))
    assert source.latency_ms(ARCH) == (latency, "predictor")
    assert len(_measured_keys(extra)) == measured  # the next candidate with the op finds it in the LUT


def test_with_a_device_an_op_that_cannot_be_profiled_raises_naming_it(device, model_cache, tmp_path, monkeypatch):
    """An op neither known nor buildable as a microbenchmark (a 1x7 kernel): one line, its key and why."""
    from latprof.network import HEAD, LayerSpec

    odd = OpSpec("CONV_2D", ((32, 32, 16),), (32, 32, 16), 1, 1, "SAME", kernel_w=7)
    lut = _synthetic_lut(device.provenance())
    ops = LayerSpec.ops  # every network's head gets the odd op, after the LUT was made without it
    monkeypatch.setattr(LayerSpec, "ops", lambda layer: ops(layer) + ([odd] if layer.kind == HEAD else []))
    source = LutLatency(lut, device, model_cache, tmp_path / "extra", predictor=_fitted(lut))
    with pytest.raises(LatprofError) as caught:
        source.latency_ms(ARCH)
    message = str(caught.value)
    assert "\n" not in message and odd.key in message and "1x7 kernel" in message
    assert SOFTMAX in source.lut.table.index  # the op that could be profiled was
