"""Where a candidate's latency comes from: the LUT (with the predictor for ops it lacks, or
profiling them), or a measurement of the whole model.

Every source answers ``latency_ms(arch) -> (ms, source)``; the search log records the source next
to each value, so a reward is never fed by a number of unknown origin.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from latprof.arch import Architecture
from latprof.convert import ModelCache, ensure_architectures
from latprof.errors import LatprofError
from latprof.lut import LUT, build_lut
from latprof.network import Network
from latprof.pricing import Pricer
from latprof.profiling import profile


class LutLatency:
    """Sum of the LUT's layer rows (imported tables) or op latencies.  Ops the LUT lacks are
    estimated by ``predictor`` when one is given (source "predictor" for such a candidate); ops
    neither knows (an op type the predictor never saw) are profiled on ``device`` into
    ``extra_run`` and added, so a partial LUT grows instead of failing the search.  A latency is
    always a number: an op that can be neither estimated nor profiled raises ``LatprofError``
    before the candidate is trained."""

    name = "lut"

    def __init__(self, lut: LUT, device=None, cache: ModelCache | None = None, extra_run: Path | None = None,
                 predictor=None):
        self.lut, self.device, self.cache, self.extra_run = lut, device, cache, extra_run
        self.pricer = Pricer(lut, predictor)
        if device is not None:
            lut.provenance.require_same(device.provenance(), "the LUT", "search with the device the LUT was made on")

    def latency_ms(self, arch: Architecture) -> tuple[float, str]:
        price = self.pricer.latency_ms(arch)
        if price.latency_ms is None:  # ops neither the LUT nor the predictor knows: profile them
            text = arch.to_string()
            if self.device is None or self.cache is None or self.extra_run is None:
                more = len(price.missing) - 1
                others = f" and {more} more op{'s' * (more > 1)}" if more else ""
                neither = ", which the predictor cannot estimate either" if self.pricer.predictor is not None else ""
                raise LatprofError(f"the LUT lacks {price.missing[0]}{others} of {text}{neither}: build it from "
                                   "'latprof profile --all', or give the search a device to profile them on")
            ops = list(Network(arch).ops)
            missing = set(price.missing)
            refused = self._add([op for op in ops if op.key in missing])
            price = self.pricer.latency_ms(arch)
            if price.latency_ms is None:
                key = price.missing[0]
                unsupported = {op.key: op.unsupported for op in ops if op.unsupported}
                reason = (refused.get(key) or unsupported.get(key) or "").strip().splitlines()
                why = reason[0] if reason else "no measurement came back"
                raise LatprofError(f"an op of {text} can be neither looked up, estimated nor profiled: "
                                   + (why if key in why else f"{key} ({why})"))
        return price.latency_ms, price.source

    def _add(self, specs) -> dict[str, str]:
        """Profile ``specs`` into ``extra_run`` and add what was measured to the LUT; returns why
        each op that could not be measured was not (by key)."""
        summary = profile(specs=specs, device=self.device, run_dir=self.extra_run, cache=self.cache,
                          request={"search": "ops missing from the LUT"}, record_state=False)
        extra = build_lut([self.extra_run])
        new = extra.table[~extra.table.index.isin(self.lut.table.index)]
        self.lut.table = pd.concat([self.lut.table, new])
        return dict(summary.unsupported)


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
