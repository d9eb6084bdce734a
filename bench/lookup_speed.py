"""How long a latency estimate takes: a LUT sum, the LUT plus the predictor, a .tflite file,
against building, converting and measuring the network.

Without ``--lut``, profiles 8 sampled architectures (seed 0) on the host with the default method
and builds the LUT from them (a minute or two); any LUT works with ``--lut``: in-network or
isolated, profiled here or on a phone, or imported (layer rows).  A predictor is trained on its
op rows (none for a table without any).  Then, per candidate, the median over ``--repeats``
passes (each with fresh estimators, so nothing carries over) of:

- the LUT sum (the search's ``LutLatency`` without a predictor) of the architectures whose every
  op or layer the LUT holds: the profiled ones, ``--count`` random ones and the networks of the
  LUT's run folders when they are at hand (none covered: the row says so);
- ``LutLatency`` with the predictor on ``--count`` random architectures (seed 1): the predictor
  estimates the ops the LUT lacks, most of them with a small LUT;
- ``predict`` of a .tflite file (read and decomposed each time);
- building, converting (into an empty cache) and measuring one network on the host, once: what an
  estimate replaces.

    python bench/lookup_speed.py [--lut LUT] [--count 300] [--repeats 5] [-o runs/bench/lookup_speed.json]

Run from the repo root (bench/common.py is imported from the script's folder).  Expect a minute
or two with --lut (most of it the predictor's training and the one measured network), two or
three more without.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import common

from latprof.arch import Architecture
from latprof.convert import ModelCache, default_cache_dir, ensure_architectures
from latprof.devices import HostDevice
from latprof.errors import LatprofError
from latprof.lut import LUT, build_lut
from latprof.network import Network
from latprof.predict import predict
from latprof.predictor import train_predictor
from latprof.profiling import profile, read_run
from latprof.search.latency import LutLatency
from latprof.space import get_space

PROFILED, PROFILED_SEED, CANDIDATE_SEED = 8, 0, 1


def per_candidate_us(make_estimate, candidates: list, repeats: int) -> float | None:
    """Median over passes of the mean time per candidate, in microseconds (None without
    candidates); each pass starts from a fresh estimator, so nothing one pass remembered speeds up
    the next."""
    if not candidates:
        return None
    passes = []
    for _ in range(repeats):
        estimate = make_estimate()
        start = time.perf_counter()
        for candidate in candidates:
            estimate(candidate)
        passes.append((time.perf_counter() - start) / len(candidates) * 1e6)
    return statistics.median(passes)


def covered(lut: LUT, archs: list[Architecture]) -> list[Architecture]:
    """The architectures the LUT alone gives a latency (every op or layer in it)."""
    chosen = []
    for arch in dict.fromkeys(archs):
        try:
            LutLatency(lut).latency_ms(arch)
        except LatprofError:
            continue
        chosen.append(arch)
    return chosen


def run_networks(lut: LUT) -> list[Architecture]:
    """The architectures profiled into the LUT's run folders, where those are at hand."""
    archs = []
    for source in lut.sources:
        try:
            records = read_run(source)[1]
        except LatprofError:
            continue
        for name in dict.fromkeys(r["network"] for r in records if r.get("network")):
            try:
                archs.append(Architecture.from_string(name))
            except (LatprofError, ValueError):  # a .tflite file's network, not an architecture
                continue
    return archs


def main() -> None:
    parser = common.parser(__doc__, "lookup_speed")
    parser.add_argument("--lut", type=Path, help="LUT to time estimates with (default: profile 8 architectures here)")
    parser.add_argument("--count", type=int, default=300, help="random candidates (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="passes per row; the median is kept (default: %(default)s)")
    args = parser.parse_args()

    space, device = get_space("mnasnet"), HostDevice()
    profiled = space.sample_many(PROFILED, PROFILED_SEED)
    candidates = space.sample_many(args.count, CANDIDATE_SEED)
    with tempfile.TemporaryDirectory(prefix="latprof-bench-lookup-") as scratch:
        if args.lut:
            lut, lut_path, profiled = LUT.load(args.lut), args.lut, []
        else:
            cache, run = ModelCache(default_cache_dir()), Path(scratch) / "run"
            networks = ensure_architectures(profiled, device.config.dtype, cache)
            profile(device, run, cache, networks={text: Path(path) for text, path in networks.items()},
                    request={"bench": "lookup_speed"})
            lut, lut_path = build_lut([run]), Path(scratch) / "lut.json"
            lut.save(lut_path)
        try:
            model, untrained = train_predictor(lut, lut_path, folds=2).model, None
        except LatprofError as error:
            model, untrained = None, str(error)
        whole = covered(lut, [*profiled, *run_networks(lut), *candidates])
        ops = [op for arch in candidates for op in Network(arch).ops]
        lacking = sum(lut.op_latency_us(op) is None for op in ops) / len(ops) if ops else 0.0

        start = time.perf_counter()
        (tflite,) = ensure_architectures([space.sample_many(1, PROFILED_SEED)[0]], device.config.dtype,
                                         ModelCache(Path(scratch) / "fresh")).values()
        convert_s = time.perf_counter() - start
        start = time.perf_counter()
        device.measure_models([tflite])
        measure_s = time.perf_counter() - start

        rows = [{"estimate": "LUT sum, architectures the LUT covers", "candidates": len(whole),
                 "us_each": per_candidate_us(lambda: LutLatency(lut).latency_ms, whole, args.repeats)}]
        if model is not None:
            rows.append({"estimate": f"LUT + predictor, random architectures ({lacking:.0%} of ops not in the LUT)",
                         "candidates": len(candidates),
                         "us_each": per_candidate_us(lambda: LutLatency(lut, predictor=model).latency_ms, candidates,
                                                     args.repeats)})
        files = [tflite] if predict(str(tflite), lut, model).latency_ms is not None else []  # else the LUT lacks its ops
        rows += [{"estimate": ".tflite file read, decomposed and looked up", "candidates": len(files),
                  "us_each": per_candidate_us(lambda: lambda path: predict(str(path), lut, model), files, args.repeats)},
                 {"estimate": "build + convert + measure one network", "candidates": 1,
                  "us_each": (convert_s + measure_s) * 1e6}]
    for row in rows:
        row["us_each"] = None if row["us_each"] is None else round(row["us_each"], 1)

    p = lut.provenance
    print(f"LUT: {lut_path if args.lut else f'{PROFILED} architectures profiled here'} ({len(lut)} rows; {p.device}, "
          f"{p.method.split(' (')[0]}); predictor: {'trained on it' if model is not None else f'none ({untrained})'}")
    common.print_table(rows, title="time per estimate (median over passes)")
    fastest = min((row for row in rows[:-1] if row["us_each"]), key=lambda row: row["us_each"], default=None)
    if fastest is not None:
        print(f"\n{fastest['estimate']}: {rows[-1]['us_each'] / fastest['us_each']:,.0f}x faster than measuring "
              f"({convert_s:.1f} s to build and convert, {measure_s:.1f} s to measure)")
    common.write_json(args.output, {**common.context("lookup_speed"), "lut": str(args.lut) if args.lut else None,
                                    "lut_rows": len(lut), "lut_provenance": p.to_dict(),
                                    "predictor": model is not None, "predictor_error": untrained,
                                    "ops_not_in_lut_share": round(lacking, 4), "convert_s": round(convert_s, 2),
                                    "measure_s": round(measure_s, 2), "rows": rows})


if __name__ == "__main__":
    main()
