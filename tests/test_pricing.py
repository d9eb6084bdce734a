"""Batch pricing gives predict()'s numbers, for every kind of LUT: op rows alone, op rows with the
predictor for the ops they lack, and an imported table of layer rows; and a replaced LUT table
(a search adding ops it profiled) is seen."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from test_proxyless import TINY, TINY_ENTRIES, UNUSED, write_yaml
from test_search_latency import PROVENANCE, _cost_us, _fitted, _synthetic_lut

from latprof.arch import Architecture
from latprof.network import Network
from latprof.predict import predict
from latprof.pricing import Pricer
from latprof.proxyless import import_yaml
from latprof.space import get_space


@pytest.fixture(scope="module")
def lut():
    """The synthetic LUT with its SOFTMAX row (the op type the predictor cannot estimate) back."""
    table = _synthetic_lut(PROVENANCE)
    softmax = Network(candidates(1, 1)[0]).ops[-1]
    row = table.table.iloc[[0]].copy()
    row.index = pd.Index([softmax.key], name=table.table.index.name)
    row["op"], row["latency_us"] = "SOFTMAX", _cost_us(softmax)
    return dataclasses.replace(table, table=pd.concat([table.table, row]))


def candidates(count: int, seed: int) -> list[Architecture]:
    return [dataclasses.replace(a, resolution=64) for a in get_space("mnasnet").sample_many(count, seed)]


def test_op_lut_with_and_without_the_predictor_matches_predict(lut):
    predictor = _fitted(lut)
    archs = candidates(40, 1) + candidates(40, 9)  # seed 1: the LUT's own networks; seed 9: ops it lacks
    for model in (None, predictor):
        prices = Pricer(lut, model).price(archs)
        for arch, price in zip(archs, prices):
            expected = predict(arch.to_string(), lut, model)
            assert price.latency_ms == pytest.approx(expected.latency_ms, abs=1e-4) if expected.latency_ms else \
                price.latency_ms is None and set(price.missing) == set(expected.missing)
            if expected.latency_ms is not None:
                assert price.source == ("predictor" if expected.predicted_ops else "lut")
    assert sum(p.source == "predictor" for p in Pricer(lut, predictor).price(archs)) >= 20  # the case is real
    assert sum(p.latency_ms is None for p in Pricer(lut).price(archs)) >= 20


def test_imported_layer_lut_matches_predict(tmp_path):
    table = import_yaml(write_yaml(tmp_path / "t.yaml", {**TINY_ENTRIES, **UNUSED}))
    arch = Architecture.from_string(TINY)
    (price,) = Pricer(table).price([arch])
    assert price.latency_ms == predict(TINY, table).latency_ms == round(sum(m for _, m, _ in TINY_ENTRIES.values())
                                                                       + table.overhead_us / 1000, 4)
    other = dataclasses.replace(arch, blocks=arch.blocks[:1])  # a layer the table lacks
    assert Pricer(table).latency_ms(other).latency_ms is None


def test_a_replaced_table_is_seen(lut):
    arch = candidates(1, 9)[0]
    pricer = Pricer(lut)
    missing = pricer.latency_ms(arch).missing
    assert missing
    rows = lut.table.iloc[:len(missing)].copy()
    rows.index = list(missing)
    grown = dataclasses.replace(lut, table=pd.concat([lut.table, rows]))
    pricer.lut = grown
    assert pricer.latency_ms(arch).latency_ms == pytest.approx(predict(arch.to_string(), grown).latency_ms, abs=1e-4)
