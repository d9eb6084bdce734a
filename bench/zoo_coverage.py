"""Whether every op of the zoo's models has a microbenchmark, and what converting the zoo costs.

Builds and converts each catalogue model in this process (timed: Keras build, then conversion),
decomposes it, then converts the microbenchmark of every unique op spec of all of them (in the
conversion pool) and lists the specs that have none.  Uses a fresh cache unless --cache is given.

    python bench/zoo_coverage.py [--dtype float32|int8] [--family mobilenet_v2 ...] [--cache DIR]

Measured (AMD EPYC, 2 cores shared, TensorFlow 2.21, fp32): the 28 models convert in 1.3 to 9.0 s
each (87 s in all, plus 0.4 to 1.8 s of Keras build each); they hold 1025 unique op specs of 10
kinds, and every one converts to a microbenchmark of exactly that op, in fp32 and in int8 (about
8 minutes of microbenchmark conversion on 2 cores in fp32, 12 in int8, in a fresh cache).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from latprof.convert import ModelCache, convert_keras, ensure_models
from latprof.tflite_file import decompose_bytes
from latprof.zoo import select


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "int8"])
    parser.add_argument("--family", action="append", default=[])
    parser.add_argument("--cache", type=Path, help="Model cache folder to use (default: a fresh one).")
    args = parser.parse_args()

    import keras

    with tempfile.TemporaryDirectory() as fresh:
        cache = ModelCache(args.cache or Path(fresh))
        specs: dict = {}
        print(f"{'model':42} {'build s':>7} {'convert s':>9} {'MB':>6} {'ops':>4} {'unique':>6}")
        total = 0.0
        for model in select(families=args.family):
            t0 = time.perf_counter()
            built = model.build()
            t1 = time.perf_counter()
            data = convert_keras(built, args.dtype)
            t2 = time.perf_counter()
            total += t2 - t1
            cache.write(model.cache_key, args.dtype, data)
            ops = decompose_bytes(data, model.name).ops
            for op in ops:
                specs.setdefault(op, model.name)
            print(f"{model.name:42} {t1 - t0:7.2f} {t2 - t1:9.2f} {len(data) / 1e6:6.1f} {len(ops):4} {len(set(ops)):6}",
                  flush=True)
            keras.backend.clear_session()
        kinds = Counter(spec.op for spec in specs)
        print(f"\nconversion {total:.1f} s in all; {len(specs)} unique op specs: "
              + ", ".join(f"{op} {n}" for op, n in kinds.most_common()))
        t0 = time.perf_counter()
        failed = ensure_models(list(specs), args.dtype, cache)
        print(f"{len(specs) - len(failed)} of {len(specs)} op specs have a microbenchmark of exactly that op "
              f"({time.perf_counter() - t0:.0f} s to convert those the cache lacked)")
        for spec, reason in failed.items():
            print(f"  {specs[spec]}: {reason}")


if __name__ == "__main__":
    main()
