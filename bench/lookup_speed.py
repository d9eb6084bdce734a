"""How long a latency estimate takes: LUT lookup, LUT + predictor, a .tflite file, against measuring.

Without --lut, profiles the ops of a few sampled architectures (about a minute) and builds the
LUT from them; either way a predictor is trained on the LUT.  Then times, per candidate, the
median of --repeats passes: the LUT sum of architectures whose ops it holds, the search's
``LutLatency`` with the predictor on random architectures (the predictor estimates the ops the
LUT lacks: most of them, with the default small LUT), and
``predict`` of a .tflite file (read and decomposed each time).  The last row builds, converts and
measures one network end to end, which is what an estimate replaces.

    python bench/lookup_speed.py [--lut LUT] [--count 300] [--repeats 5]

Measured (AMD EPYC, 2 cores shared): a LUT sum 3-4 ms a candidate on the 7,743-op space LUT;
LUT + predictor 78 ms a candidate with a 396-op LUT (75% of ops predicted, 300 fresh candidates);
a .tflite file 33-60 ms; building, converting and measuring one network 18-23 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from latprof.convert import ModelCache, default_cache_dir, ensure_architectures
from latprof.devices.host import HostDevice
from latprof.lut import LUT, build_lut
from latprof.network import Network
from latprof.predict import predict
from latprof.predictor import train_predictor
from latprof.profiling import profile
from latprof.search.latency import LutLatency
from latprof.space import get_space


def per_candidate_us(make_estimate, candidates, repeats: int) -> float:
    """Median over passes of the mean time per candidate, in microseconds; each pass starts from
    a fresh estimator, so nothing one pass remembered speeds up the next."""
    passes = []
    for _ in range(repeats):
        estimate = make_estimate()
        start = time.perf_counter()
        for candidate in candidates:
            estimate(candidate)
        passes.append((time.perf_counter() - start) / len(candidates) * 1e6)
    return statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", type=Path, help="LUT to time lookups in (default: profile a few architectures).")
    parser.add_argument("--count", type=int, default=300, help="Random candidates for the predictor row.")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    space, device, cache = get_space("mnasnet"), HostDevice(), ModelCache(default_cache_dir())
    with tempfile.TemporaryDirectory() as scratch:
        profiled = space.sample_many(8, 0)
        if args.lut:
            lut, lut_path = LUT.load(args.lut), args.lut
        else:
            run = Path(scratch) / "run"
            profile([op for arch in profiled for op in Network(arch).ops], device, run, cache)
            lut, lut_path = build_lut([run]), Path(scratch) / "lut.json"
            lut.save(lut_path)
        trained = train_predictor(lut, lut_path, folds=2)
        covered = [a for a in profiled if all(lut.op_latency_us(op) is not None for op in Network(a).ops)]
        candidates = space.sample_many(args.count, 1)
        ops = [op for arch in candidates for op in Network(arch).ops]
        predicted = sum(lut.op_latency_us(op) is None for op in ops) / len(ops)

        start = time.perf_counter()
        (tflite,) = ensure_architectures([profiled[0]], "float32", ModelCache(Path(scratch) / "fresh")).values()
        convert_s = time.perf_counter() - start
        start = time.perf_counter()
        device.measure_models([tflite])
        measure_s = time.perf_counter() - start

        rows = [("LUT sum, architectures whose ops it holds", len(covered),
                 per_candidate_us(lambda: LutLatency(lut).latency_ms, covered, args.repeats)),
                (f"LUT + predictor, random architectures ({predicted:.0%} of ops predicted)", len(candidates),
                 per_candidate_us(lambda: LutLatency(lut, predictor=trained.model).latency_ms, candidates,
                                  args.repeats)),
                (".tflite file read, decomposed and looked up", 1,
                 per_candidate_us(lambda: lambda path: predict(str(path), lut, trained.model), [tflite],
                                  args.repeats)),
                ("build + convert + measure one network end to end", 1, (convert_s + measure_s) * 1e6)]
    print(f"LUT: {lut_path} ({len(lut)} rows), predictor trained on it")
    print(f"{'estimate':62} {'candidates':>10} {'us each':>12}")
    for name, count, us in rows:
        print(f"{name:62} {count:>10} {us:>12,.0f}")
    print(f"an estimate from the LUT is {rows[-1][2] / rows[0][2]:,.0f}x faster than measuring "
          f"({convert_s:.1f} s to build and convert, {measure_s:.1f} s to measure)")


if __name__ == "__main__":
    main()
