"""The quickstart: the whole host workflow on a small sample, explained as it goes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from latprof.arch import Architecture
from latprof.convert import ModelCache
from latprof.devices import HostDevice
from latprof.lut import build_lut
from latprof.network import Network
from latprof.predict import predict
from latprof.profiling import profile
from latprof.reference import REFERENCE_NAMES
from latprof.space import get_space
from latprof.validate import validate

DEMO_SETTLE_SECONDS = 60  # a busy machine gets a minute to settle: the Quickstart stays a few minutes


def run_demo(out_dir: Path, sample: int, seed: int, cache: ModelCache, progress: Callable, say: Callable) -> None:
    space, device = get_space("mnasnet"), HostDevice()
    archs = space.sample_many(sample, seed)
    references = [Architecture.from_string(name) for name in REFERENCE_NAMES]
    specs = [op for arch in archs + references for op in Network(arch).ops]
    p = device.provenance()
    say(f"1/4 profiling {len(set(specs))} unique ops of {sample} sampled MnasNet-space architectures and "
        f"MobileNetV2/MnasNet-A1 on {p.hardware}, {p.threads} thread, {p.delegate}, {p.dtype}")
    summary = profile(specs, device, out_dir / "run", cache, {"demo": True, "sample": sample, "seed": seed}, progress)
    say(f"    {summary.measured_now} measured now, {summary.already_measured} already measured ({summary.seconds} s)")
    table = build_lut([out_dir / "run"])
    table.save(out_dir / "lut.json")
    say(f"2/4 built the lookup table {out_dir / 'lut.json'}: {len(table)} ops, invoke overhead "
        f"{table.overhead_us:.2f} us")
    say("3/4 predicted latency from the table (no model built or run):")
    for arch in references:
        say(f"    {arch.name:12s} {predict(arch.name, table).latency_ms:8.3f} ms   "
            f"({Network(arch).macs / 1e6:.0f}M MACs, {Network(arch).params / 1e6:.2f}M params)")
    say(f"4/4 building, converting and measuring the {sample} sampled architectures end to end:")
    result = validate(archs, table, device, out_dir / "validate", cache, progress, settle_seconds=DEMO_SETTLE_SECONDS)
    for row in result.table.itertuples():
        say(f"    predicted {row.predicted_ms:7.3f} ms  measured {row.measured_ms:7.3f} ms  "
            f"error {row.error_pct:+6.2f}%  ({row.macs_m:.0f}M MACs)")
    m = result.metrics
    say(f"    MAPE {m['mape_pct']}%, {m['within_5_pct']}% within ±5%, {m['within_10_pct']}% within ±10%, "
        f"Spearman {m['spearman']}; plot: {result.plot}")
    if "reference_drift_pct" in m:
        say(f"    (MobileNetV2 and MnasNet-A1, timed in the same rounds, took {m['reference_drift_pct']:+.1f}% of their "
            "latency when the LUT was profiled: on a busy machine, errors include that drift)")
    if m["measure_attempts"] > 1:
        say(f"    (measured {m['measure_attempts']} times: the machine ran off its speed when profiled; earlier "
            f"attempts are in {out_dir / 'validate' / 'discarded.jsonl'})")
    say("Next: 'latprof predict ARCH --lut " + str(out_dir / "lut.json") + "', or profile more with "
        "'latprof profile --sample N -o RUN_DIR'.")
