"""The quickstart: the whole host workflow on a small sample, explained as it goes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from latprof.arch import Architecture
from latprof.convert import ModelCache, ensure_architectures
from latprof.devices import HostDevice
from latprof.lut import build_lut
from latprof.network import Network
from latprof.predict import predict
from latprof.profiling import profile
from latprof.reference import REFERENCE_NAMES
from latprof.space import get_space
from latprof.validate import slower_or_faster, validate

DEMO_SETTLE_SECONDS = 60  # a busy machine gets a minute to settle: the Quickstart stays a few minutes


def run_demo(out_dir: Path, sample: int, seed: int, cache: ModelCache, progress: Callable, say: Callable) -> None:
    """With the default timing method, in-network: ops are timed inside the networks, so their
    sums add up to the networks (docs/timing.md).  The folders are named after the method, so a
    demo folder that another method measured is never mixed with this one."""
    space, device = get_space("mnasnet"), HostDevice()
    run_dir, val_dir = out_dir / f"run-{device.config.method}", out_dir / f"validate-{device.config.method}"
    archs = space.sample_many(sample, seed)
    references = [Architecture.from_string(name) for name in REFERENCE_NAMES]
    p = device.provenance()
    say(f"1/4 timing every op of {sample} sampled MnasNet-space architectures and MobileNetV2/MnasNet-A1 inside "
        f"them (LiteRT's profiler), on {p.hardware}, {p.threads} thread, {p.delegate}, {p.dtype}")
    networks = ensure_architectures(archs + references, p.dtype, cache,
                                    progress=lambda done: progress("convert", done, len(archs) + len(references)))
    summary = profile(device, run_dir, cache, networks={text: Path(path) for text, path in networks.items()},
                      request={"demo": True, "sample": sample, "seed": seed}, progress=progress)
    say(f"    {summary.measured_now} networks profiled now, {summary.already_measured} already ({summary.seconds} s)")
    table = build_lut([run_dir])
    table.save(out_dir / "lut.json")
    say(f"2/4 built the lookup table {out_dir / 'lut.json'}: {len(table)} ops, invoke overhead "
        f"{table.overhead_us:.2f} us")
    say("3/4 predicted latency from the table (no model built or run):")
    for arch in references:
        say(f"    {arch.name:12s} {predict(arch.name, table).latency_ms:8.3f} ms   "
            f"({Network(arch).macs / 1e6:.0f}M MACs, {Network(arch).params / 1e6:.2f}M params)")
    say(f"4/4 measuring the {sample} sampled architectures end to end, in a call of their own:")
    result = validate(archs, table, device, val_dir, cache, progress,
                      settle_seconds=DEMO_SETTLE_SECONDS)
    for row in result.table.itertuples():
        say(f"    predicted {row.predicted_now_ms:7.3f} ms  measured {row.measured_ms:7.3f} ms  "
            f"error {row.error_pct:+6.2f}%  ({row.macs_m:.0f}M MACs)")
    m = result.metrics
    say(f"    MAPE {m['mape_pct']}%, {m['within_5_pct']}% within ±5%, {m['within_10_pct']}% within ±10%, "
        f"Spearman {m['spearman']}; plot: {result.plot}")
    if "reference_drift_pct" in m:
        say(f"    (MobileNetV2 and MnasNet-A1, timed in the same rounds, ran {slower_or_faster(m['reference_drift_pct'])} "
            "than when the LUT was profiled; the predictions above are the LUT's on that pace)")
    if m["measure_attempts"] > 1:
        say(f"    (measured {m['measure_attempts']} times: the machine ran off its speed when profiled; earlier "
            f"attempts are in {val_dir / 'discarded.jsonl'})")
    say("Next: 'latprof predict ARCH --lut " + str(out_dir / "lut.json") + "', or profile more with "
        "'latprof profile --sample N -o RUN_DIR'.")
