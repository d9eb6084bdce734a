"""Where each controller's samples sit against the latency target, sample by sample: why PPO is slow
under the hard constraint.

The controllers bench shows PPO's regret; this shows its cause.  For each controller and preset it
runs ``--seeds`` searches of ``--budget`` samples on the bench's stand-in (``controllers.py``: the
same accuracy, LUT latency and target T) and prints, per window of 50 samples, the mean of LAT / T
over the candidates asked and the share that lands within 5% under T, where the hard preset's best
networks are.  Random search stays put; a policy that overshoots shows its mean falling far below 1
(networks smaller than the budget allows, accuracy given away) before it climbs back.

    python bench/controller_drift.py --lut LUT [--budget 300] [--seeds 3]

Run from the repo root.  A few minutes on 2 cores.
"""

from __future__ import annotations

import time

import common
import numpy as np
from controllers import Scorer, random_target, samples

from latprof.search.reward import PRESETS, Reward

NAMES = ("random", "ppo", "ppo-tuned", "evolution", "evolution-guided")
WINDOW = 50


def main() -> None:
    parser = common.parser(__doc__, "controller_drift")
    parser.add_argument("--lut", required=True, help="LUT of the whole space")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    scorer = Scorer(args.lut)
    target_ms, started, rows = random_target(scorer), time.monotonic(), []
    for preset in PRESETS:
        reward = Reward.preset(preset, target_ms)
        for name in NAMES:
            ratios = np.array([[latency / target_ms for _, _, latency, _ in samples(name, seed, reward, scorer, args.budget)]
                               for seed in range(args.seeds)])
            for start in range(0, args.budget, WINDOW):
                window = ratios[:, start:start + WINDOW]
                rows.append({"preset": preset, "controller": name, "samples": f"{start + 1}-{start + window.shape[1]}",
                             "mean_lat_over_t": round(float(window.mean()), 2),
                             "share_within_5pct_under_t": round(float(((window > 0.95) & (window <= 1)).mean()), 3)})
    for preset in PRESETS:
        common.print_table([{k: v for k, v in row.items() if k != "preset"} for row in rows if row["preset"] == preset],
                           title=f"{preset} constraint (T = {target_ms} ms): where the asked candidates sit, "
                                 f"{args.seeds} seeds")
    print(f"\n{time.monotonic() - started:.0f} s")
    common.write_json(args.output, {**common.context("controller_drift"), "lut": args.lut, "target_ms": target_ms,
                                    "seeds": args.seeds, "budget": args.budget, "rows": rows})


if __name__ == "__main__":
    main()
