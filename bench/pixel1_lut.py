"""Pixel 1 latency of MobileNetV2-like networks of the ProxylessNAS space, from the published yaml LUT.

Imports ProxylessNAS's "mobile" LUT (a Google Pixel 1, layer level; not shipped with latprof, see
/work/shared/data/pixel1-proxylessnas/README.md) with ``latprof.proxyless.import_yaml``, writes the
networks as latprof architectures (stem 32 s2 at 224, a first MBConv 32->16 e1 k3, stages of 4, 4,
4, 4, 4, 1 layers of widths 24, 40, 80, 96, 192, 320, head 1280) and predicts them with
``predict_layers`` (what ``latprof predict`` does for architectures).  Checks two sums against the
ones the table's README states.  Exits 0 with a message when the file is absent.

    python bench/pixel1_lut.py [YAML] [--random 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import pandas as pd

from latprof.arch import Architecture
from latprof.network import Network
from latprof.proxyless import import_yaml, predict_layers

DEFAULT = Path("/work/shared/data/pixel1-proxylessnas/mobile_trim.yaml")
STAGES = ((4, 2, 24), (4, 2, 40), (4, 2, 80), (4, 1, 96), (4, 2, 192), (1, 1, 320))  # layers, stride, width
OPS = [(e, k) for e in (3, 6) for k in (3, 5, 7)]
README_SUMS = {"all e3 k3": 76.0, "all e6 k7": 191.0}  # ms, rounded to 0.1 in the README


def proxyless_arch(layers: list[list[tuple[int, int] | None]]) -> Architecture:
    """One (expand, kernel) per MBConv layer of each stage, None for a skipped layer (ProxylessNAS's
    zero op, allowed where the layer has an identity shortcut, i.e. not a stage's first)."""
    blocks, width = ["r1_k3_s11_e1_i32_o16"], 16
    for (_, stride, out), choices in zip(STAGES, layers):
        for index, choice in enumerate(choices):
            if choice is None:
                continue
            s = stride if index == 0 else 1
            blocks.append(f"r1_k{choice[1]}_s{s}{s}_e{choice[0]}_i{width}_o{out}")
            width = out
    return Architecture.from_string("res224_w1.0_stem32_head1280_cls1000:" + ",".join(blocks))


def uniform(expand: int, kernel: int) -> list[list[tuple[int, int]]]:
    return [[(expand, kernel)] * count for count, _, _ in STAGES]


def sampled(rng: random.Random) -> list[list[tuple[int, int] | None]]:
    return [[rng.choice(OPS + ([None] if index else [])) for index in range(count)] for count, _, _ in STAGES]


def describe(layers) -> str:
    return " | ".join(" ".join("-" if c is None else f"{c[0]}{c[1]}" for c in stage) for stage in layers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("yaml", nargs="?", default=str(DEFAULT))
    parser.add_argument("--random", type=int, default=5, help="Random networks of the space to add.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not Path(args.yaml).is_file():
        print(f"{args.yaml}: not found; nothing to do (the Pixel 1 LUT is not shipped with latprof)")
        return 0

    lut = import_yaml(args.yaml, device="pixel1", hardware="Google Pixel 1 (ProxylessNAS mobile LUT)")
    networks = {f"all e{e} k{k}": uniform(e, k) for e, k in OPS}
    rng = random.Random(args.seed)
    networks.update({f"random {i + 1}": sampled(rng) for i in range(args.random)})
    rows, latencies = [], {}
    for name, layers in networks.items():
        arch = proxyless_arch(layers)
        prediction = predict_layers(arch, lut)
        if prediction.latency_ms is None:
            print(f"{name}: the LUT lacks {prediction.missing}", file=sys.stderr)
            return 1
        net = Network(arch)
        latencies[name] = prediction.latency_ms
        rows.append({"network": name, "searched layers": len(net.layers) - 3, "MMACs": round(net.macs / 1e6, 1),
                     "Pixel 1 ms": round(prediction.latency_ms, 2), "layers (expand+kernel per stage; - = skipped)":
                     describe(layers)})
    print(f"{lut.provenance.details['source_file']} (sha256 {lut.provenance.binary_sha256[:12]}...), "
          f"{len(lut)} layer rows; first MBConv e1 k3 in every network")
    print(pd.DataFrame(rows).to_string(index=False))
    failed = False
    for name, expected in README_SUMS.items():
        got = latencies[name]
        ok = round(got, 1) == expected
        failed |= not ok
        print(f"check {name}: {got:.4f} ms, README {expected} ms (to 0.1 ms): {'ok' if ok else 'MISMATCH'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
