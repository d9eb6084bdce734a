"""Where a candidate's latency comes from: the LUT (with the predictor for ops it lacks, or
profiling them), or a measurement of the whole model.

Every source answers ``latency_ms(arch) -> (ms, source)``; the search log records the source next
to each value, so a reward is never fed by a number of unknown origin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from latprof.arch import Architecture
from latprof.convert import ModelCache, ensure_architectures
from latprof.errors import LatprofError
from latprof.lut import LUT, build_lut
from latprof.network import Network
from latprof.predict import predict_ops
from latprof.profiling import profile


class _Remembered:
    """A predictor whose estimates are kept per op: a search meets the same ops in candidate after
    candidate, and asking a forest costs about a hundred milliseconds a candidate."""

    def __init__(self, predictor):
        self.predictor, self.known = predictor, {}

    def predict(self, specs) -> np.ndarray:
        new = [spec for spec in dict.fromkeys(specs) if spec.key not in self.known]
        if new:
            self.known.update(zip((spec.key for spec in new), self.predictor.predict(new)))
        return np.array([self.known[spec.key] for spec in specs], dtype=float)


class LutLatency:
    """Sum of the LUT's layer rows (imported tables) or op latencies.  Ops the LUT lacks are
    estimated by ``predictor`` when one is given (source "predictor" for such a candidate), else
    profiled on ``device`` into ``extra_run`` and added, so a partial LUT grows instead of failing
    the search."""

    name = "lut"

    def __init__(self, lut: LUT, device=None, cache: ModelCache | None = None, extra_run: Path | None = None,
                 predictor=None):
        self.lut, self.device, self.cache, self.extra_run = lut, device, cache, extra_run
        self.predictor = None if predictor is None else _Remembered(predictor)
        if device is not None:
            lut.provenance.require_same(device.provenance(), "the LUT", "search with the device the LUT was made on")

    def latency_ms(self, arch: Architecture) -> tuple[float, str]:
        from latprof.proxyless import arch_layer_prediction  # imported layer rows (ProxylessNAS/OFA) first

        layered = arch_layer_prediction(arch, self.lut)
        if layered is not None and layered.latency_ms is not None:
            return layered.latency_ms, self.name
        ops = list(Network(arch).ops)
        prediction = predict_ops(arch.to_string(), ops, self.lut, self.predictor)
        if prediction.predicted_ops:
            return prediction.latency_ms, "predictor"
        if prediction.latency_ms is None:
            if self.device is None or self.cache is None or self.extra_run is None:
                raise LatprofError(f"the LUT lacks {len(prediction.missing)} ops of {arch.to_string()}: build it from "
                                   "'latprof profile --all', or give the search a device to profile them on")
            self._add([op for op in ops if op.key in set(prediction.missing)])
            prediction = predict_ops(arch.to_string(), ops, self.lut)
            if prediction.latency_ms is None:
                raise LatprofError(f"ops of {arch.to_string()} cannot be profiled: {prediction.missing[0]}")
        return prediction.latency_ms, self.name

    def _add(self, specs) -> None:
        profile(specs, self.device, self.extra_run, self.cache, request={"search": "ops missing from the LUT"},
                record_state=False)
        extra = build_lut([self.extra_run])
        new = extra.table[~extra.table.index.isin(self.lut.table.index)]
        self.lut.table = pd.concat([self.lut.table, new])


class MeasuredLatency:
    """Build, convert and measure the whole model on the device, as the MnasNet paper did."""

    name = "measure"

    def __init__(self, device, cache: ModelCache):
        self.device, self.cache = device, cache
        self.dtype = device.provenance().dtype

    def latency_ms(self, arch: Architecture) -> tuple[float, str]:
        path = ensure_architectures([arch], self.dtype, self.cache)[arch.to_string()]
        (timing,) = self.device.measure_models([path])
        return round(timing.latency_us / 1000, 4), self.name
