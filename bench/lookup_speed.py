"""How fast latency estimates come: batches of candidates priced from a LUT, with and without the
predictor, against asking ``predict`` one candidate at a time.

Give it any LUT (``--lut``): in-network or isolated, profiled here or on a phone, or imported
(layer rows).  A LUT of the whole space comes from ``latprof profile --all -o RUN`` and ``latprof
lut build RUN -o lut.json``.  Rows, each the median over ``--repeats`` passes, each pass with a
fresh ``latprof.pricing.Pricer`` (nothing remembered from the pass before) unless it says warm:

- the LUT alone on ``--count`` random candidates of the MnasNet space (seed 1) in one batch from a
  cold pricer (a user filtering a space), on the first ``--count-start`` of them alone (the cold
  start, where nearly every block is new), then on all of them again from the warm pricer (a
  search loop's steady state);
- the LUT cut down to the ops of 8 sampled architectures (seed 0) with a predictor trained on
  those rows filling the ops it lacks, on the same candidates: most ops are estimated (none for a
  LUT without op rows: the row says so);
- ``latprof.predict.predict`` one candidate at a time, on the first ``--count-single`` of them.

    python bench/lookup_speed.py --lut LUT [--count 100000] [--repeats 3] [-o runs/bench/lookup_speed.json]

Run from the repo root.  A few minutes on 2 cores, a third of it sampling the candidates.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

import common

from latprof.errors import LatprofError
from latprof.lut import LUT
from latprof.network import Network
from latprof.predict import predict
from latprof.predictor import fit_predictor, lut_training_data
from latprof.pricing import Pricer
from latprof.space import get_space

PROFILED, PROFILED_SEED, CANDIDATE_SEED = 8, 0, 1


def rate(price, candidates: list, repeats: int) -> tuple[float, list]:
    """Median candidates per second over ``repeats`` calls of ``price(candidates)``, and the last
    call's prices."""
    seconds, prices = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        prices = price(candidates)
        seconds.append(time.perf_counter() - start)
    return len(candidates) / statistics.median(seconds), prices


def partial(lut: LUT, space) -> LUT:
    """``lut`` with only the op rows of ``PROFILED`` sampled architectures: a small profiled LUT."""
    keep = {op.key for arch in space.sample_many(PROFILED, PROFILED_SEED) for op in Network(arch).ops}
    return replace(lut, table=lut.table[lut.table.index.isin(keep)])


def main() -> None:
    parser = common.parser(__doc__, "lookup_speed")
    parser.add_argument("--lut", type=Path, required=True, help="LUT to price candidates with")
    parser.add_argument("--count", type=int, default=100_000, help="random candidates (default: %(default)s)")
    parser.add_argument("--count-start", type=int, default=10_000,
                        help="candidates of the cold-start row (default: %(default)s)")
    parser.add_argument("--count-single", type=int, default=200,
                        help="candidates for the one-at-a-time row (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per row; the median is kept (default: %(default)s)")
    args = parser.parse_args()

    space = get_space("mnasnet")
    lut = LUT.load(args.lut, allow_mixed=True)
    candidates = space.sample_many(args.count, CANDIDATE_SEED)
    rows = []

    cold, prices = rate(lambda archs: Pricer(lut).price(archs), candidates, args.repeats)
    start, _ = rate(lambda archs: Pricer(lut).price(archs), candidates[:args.count_start], args.repeats)
    warm_pricer = Pricer(lut)
    warm_pricer.price(candidates)
    warm, _ = rate(warm_pricer.price, candidates, args.repeats)
    priced = sum(p.latency_ms is not None for p in prices)
    rows += [{"estimate": "LUT, one batch, cold pricer", "candidates": len(candidates), "priced": priced,
              "per_second": round(cold)},
             {"estimate": "LUT, cold start: the first candidates alone", "candidates": args.count_start,
              "priced": sum(p.latency_ms is not None for p in prices[:args.count_start]), "per_second": round(start)},
             {"estimate": "LUT, warm pricer (the same candidates again)", "candidates": len(candidates),
              "priced": priced, "per_second": round(warm)}]

    small = partial(lut, space)
    model, untrained = None, "the LUT has no op rows of those architectures to learn from"
    if len(lut_training_data(small)[0]) >= 2:
        try:
            model = fit_predictor(small)
        except (LatprofError, ValueError) as error:
            untrained = str(error).splitlines()[0]
    if model is not None:
        with_predictor, prices = rate(lambda archs: Pricer(small, model).price(archs), candidates, args.repeats)
        ops = [op for arch in candidates[:500] for op in Network(arch).ops]
        lacking = sum(small.op_latency_us(op) is None for op in ops) / len(ops)
        rows.append({"estimate": f"LUT of {PROFILED} architectures ({len(small)} rows) + predictor, one batch, cold "
                                 f"({lacking:.0%} of ops estimated)", "candidates": len(candidates),
                     "priced": sum(p.latency_ms is not None for p in prices), "per_second": round(with_predictor)})
    else:
        rows.append({"estimate": f"LUT + predictor: none ({untrained})", "candidates": 0, "priced": 0,
                     "per_second": None})

    single = candidates[:args.count_single]
    one_by_one, _ = rate(lambda archs: [predict(a.to_string(), lut) for a in archs], single, args.repeats)
    rows.append({"estimate": "predict(), one candidate at a time", "candidates": len(single),
                 "priced": priced if len(single) == len(candidates) else None, "per_second": round(one_by_one)})

    p = lut.provenance
    print(f"LUT: {args.lut} ({len(lut)} rows; {p.device}, {p.method.split(' (')[0]})")
    common.print_table(rows, title="candidates priced per second (median over passes)")
    if not priced:
        print("no candidate of the MnasNet space is made only of this LUT's rows: the rows time what a candidate "
              "the LUT lacks costs to find out")
    common.write_json(args.output, {**common.context("lookup_speed"), "lut": str(args.lut), "lut_rows": len(lut),
                                    "lut_provenance": p.to_dict(), "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
