"""Latencies of many architectures at once, for search loops and users filtering a space.

:func:`latprof.predict.predict` explains one target op by op; a sampler proposing thousands of
candidates needs the same numbers in microseconds.  Architectures of one space share most of their
parts: a block entered at the same size and width has the same layers, so :class:`Pricer` prices a
placed block (``latprof.network.placed_blocks``) once, as the sum of its layers' LUT values, and a
candidate is a handful of dictionary lookups.  Ops the LUT lacks are collected over the whole batch
and the predictor runs once for all of them.

The numbers are :func:`latprof.predict.predict`'s: per layer, the LUT's layer row (imported
ProxylessNAS/OFA tables) or else the sum of its ops; when some layer has neither, every op of the
candidate is priced from its op row or, failing that, from the predictor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latprof.arch import Architecture
from latprof.lut import LUT
from latprof.network import LayerSpec, block_layers, head_layer, placed_blocks, stem_layer
from latprof.ops import OpSpec

LUT_SOURCE, PREDICTOR_SOURCE = "lut", "predictor"


@dataclass(frozen=True)
class _Part:
    """What some layers add: ``layer_us`` from layer rows or whole op sets (None when a layer has
    neither), ``op_us`` from the op rows the LUT has, and the ops it lacks."""

    layer_us: float | None
    op_us: float
    missing: tuple[OpSpec, ...]


@dataclass(frozen=True)
class Price:
    """A candidate's latency in ms (None when ops neither the LUT nor the predictor knows are
    ``missing``), and where it came from: "lut", or "predictor" when it estimated some op."""

    latency_ms: float | None
    source: str
    missing: tuple[str, ...] = ()


class Pricer:
    """Prices architectures from ``lut``, with ``predictor`` (a fitted ``LatencyPredictor``) for
    the ops it lacks.  Remembers every placed block, layer and predicted op: build one per LUT and
    keep it.  If the LUT's table is replaced (a search adds the ops it profiled), it starts over."""

    def __init__(self, lut: LUT, predictor=None) -> None:
        self.lut, self.predictor = lut, predictor
        self._reset()

    def _reset(self) -> None:
        from latprof.proxyless import keys_variant, layer_rows

        self._table = self.lut.table
        rows = layer_rows(self.lut).index
        self._layer_rows = set(rows)
        self._variant = keys_variant(rows)
        self._parts: dict[tuple, _Part] = {}  # by placed block (or stem/head layer)
        self._layers: dict[LayerSpec, _Part] = {}
        self._ops: dict[OpSpec, float | None] = {}  # hashing a spec is faster than building its key
        self._estimates: dict[str, float | None] = {}  # op key -> share in us (None: no estimate)

    def latency_ms(self, arch: Architecture) -> Price:
        (price,) = self.price([arch])
        return price

    def price(self, archs: Sequence[Architecture]) -> list[Price]:
        """Each architecture's price, in order."""
        if self.lut.table is not self._table:
            self._reset()
        parts = [self._parts_of(arch) for arch in archs]
        lacking = [part for arch_parts in parts if any(p.layer_us is None for p in arch_parts) for part in arch_parts]
        self._estimate([op for part in lacking for op in part.missing])
        return [self._total(arch_parts) for arch_parts in parts]

    def _parts_of(self, arch: Architecture) -> list[_Part]:
        placed, (size, channels) = placed_blocks(arch)
        stem, head = stem_layer(arch), head_layer(arch, size, channels)
        return [self._part(("layer", stem), lambda: (stem,)), *(self._part(entry, lambda e=entry: block_layers(*e))
                                                                for entry in placed),
                self._part(("layer", head), lambda: (head,))]

    def _part(self, key: tuple, layers) -> _Part:
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = self._sum(layers())
        return part

    def _sum(self, layers: Sequence[LayerSpec]) -> _Part:
        parts = [self._layer(layer) for layer in layers]
        layer_us = None if any(p.layer_us is None for p in parts) else sum(p.layer_us for p in parts)
        return _Part(layer_us, sum(p.op_us for p in parts), tuple(op for p in parts for op in p.missing))

    def _layer(self, layer: LayerSpec) -> _Part:
        """One layer's part, remembered: the ops of a space repeat in layer after layer, and an op's
        key is a string built from its shapes, the slowest step of all."""
        part = self._layers.get(layer)
        if part is not None:
            return part
        from latprof.proxyless import layer_terms

        ops = tuple(layer.ops())
        shares = {op: self._share(op) for op in ops}
        missing = tuple(op for op in ops if shares[op] is None)
        terms = [latency for _, latency, _ in layer_terms(layer, ops, self._layer_rows, self._variant,
                                                          self.lut.row_latency_us, shares.__getitem__)]
        layer_us = None if None in terms else sum(terms)
        part = self._layers[layer] = _Part(layer_us, sum(v for v in shares.values() if v is not None), missing)
        return part

    def _share(self, op: OpSpec) -> float | None:
        if op not in self._ops:
            self._ops[op] = self.lut.op_latency_us(op)
        return self._ops[op]

    def _estimate(self, ops: list[OpSpec]) -> None:
        """The predictor's share of each op not estimated yet, all in one call."""
        new = list({op.key: op for op in ops if op.key not in self._estimates}.values())
        if not new:
            return
        if self.predictor is None:
            self._estimates.update(dict.fromkeys((op.key for op in new), None))
            return
        for op, value in zip(new, self.predictor.predict(new)):
            self._estimates[op.key] = max(0.0, float(value) - self.lut.overhead_us) if np.isfinite(value) else None

    def _total(self, parts: list[_Part]) -> Price:
        overhead = self.lut.overhead_us
        if all(part.layer_us is not None for part in parts):
            return Price(round((overhead + sum(part.layer_us for part in parts)) / 1000, 4), LUT_SOURCE)
        missing = [op for part in parts for op in part.missing]
        estimates = [self._estimates.get(op.key) for op in missing]
        unknown = tuple(dict.fromkeys(op.key for op, e in zip(missing, estimates) if e is None))
        if unknown:
            return Price(None, LUT_SOURCE, unknown)
        total = overhead + sum(part.op_us for part in parts) + sum(estimates)
        return Price(round(total / 1000, 4), PREDICTOR_SOURCE if missing else LUT_SOURCE)
