"""Do ops timed inside some networks (host method v10) predict other networks?

Profiles ``--networks`` sampled architectures in one set of interleaved rounds, so every network
and every op share the same stretch of the host's time and the host's drift between calls is out
of the comparison.  The networks are split in two halves; each half is predicted from the other
half's ops (the median over the networks an op was found in), with a predictor trained on that
half's LUT for the ops it lacks, and compared with its own whole latency from the same rounds.
Its own ops (each network's shares plus the overhead) are the ceiling: that comparison holds
only the profiler's noise.  Prints a table.

    python bench/in_network_transfer.py [--networks 80] [--seed 3]

All the networks are loaded at once (about 150 MB each), so 120 is about the most this 24 GB host
takes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from host_accuracy import share_rows  # bench/ is the script's folder, so on its path
from in_network_accuracy import network_lut

from latprof.convert import ModelCache, default_cache_dir, ensure_architectures
from latprof.devices import HostDevice
from latprof.devices.host import MeasureSettings
from latprof.host_methods import IN_NETWORK
from latprof.predict import predict_ops
from latprof.profiling import RESIDUAL_KEY, invoke_record, network_records
from latprof.space import get_space
from latprof.tflite_file import decompose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=80)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    device, cache = HostDevice(MeasureSettings(sample_eviction=IN_NETWORK)), ModelCache(default_cache_dir())
    archs = get_space("mnasnet").sample_many(args.networks, args.seed)
    paths = ensure_architectures(archs, device.provenance().dtype, cache)
    names = [arch.to_string() for arch in archs]
    ops = [list(decompose(paths[name]).ops) for name in names]
    t0 = time.perf_counter()
    profiles, failed = device.profile_networks([Path(paths[name]) for name in names], ops)
    minutes = (time.perf_counter() - t0) / 60
    assert not failed, failed
    records = pd.DataFrame([invoke_record(device, cache), *(line for name, network_ops, profile in zip(names, ops, profiles)
                                                            for line in network_records(name, network_ops, profile, ""))])
    shares = records[records["key"] != RESIDUAL_KEY]
    whole = pd.Series({name: profile.latency.latency_us for name, profile in zip(names, profiles)})
    halves = [names[::2], names[1::2]]
    errors, own_errors, known, parts = [], [], [], []
    for train, test in (halves, halves[::-1]):
        lut, predictor = network_lut(records, train, device)
        for name, network_ops in zip(names, ops):
            if name in test:
                prediction = predict_ops(name, network_ops, lut, predictor)
                errors.append(prediction.latency_ms * 1000 / whole[name] - 1)
                own = shares.loc[shares["network"] == name, "latency_us"].to_numpy()
                own_errors.append((own.sum() + lut.overhead_us) / whole[name] - 1)
                known.append(1 - prediction.predicted_ops / len(network_ops))
                sources = np.array([row["source"] for row in prediction.breakdown])
                given = np.array([row["latency_us"] for row in prediction.breakdown])
                parts.append({source: (given[sources == source].sum(), own[sources == source].sum())
                              for source in ("lut", "predictor")})
    rows = [("networks, profiled in one set of rounds", f"{len(names)} ({minutes:.1f} min)"),
            ("overhead: median residual (us)", f"{records.loc[records['key'] == RESIDUAL_KEY, 'latency_us'].median():.1f}"),
            ("ops of a network in the other half's LUT (median %)", f"{100 * np.median(known):.1f}"),
            ("other half's ops + predictor vs the network: MAPE (%)", f"{100 * np.abs(errors).mean():.2f}"),
            *share_rows("other half's ops + predictor vs the network", pd.Series(errors)),
            *share_rows("its own ops vs the network (profiler noise)", pd.Series(own_errors)),
            *part_rows("ops in the other half's LUT", parts, "lut"),
            *part_rows("ops predicted", parts, "predictor")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def part_rows(title: str, parts: list[dict], source: str) -> list[tuple[str, object]]:
    """How the ops of one source (the LUT or the predictor) added up against the same ops' own
    shares, network by network, and how much of a network's op time they are."""
    given, own = np.array([part[source] for part in parts]).T
    total = np.array([sum(own_us for _, own_us in part.values()) for part in parts])
    ratio = 100 * (given[own > 0] / own[own > 0] - 1)
    return [(f"{title}: their share of a network's op time (median %)", f"{100 * np.median(own / total):.1f}"),
            (f"{title}: sum vs their own shares, mean, sd (%)", f"{ratio.mean():+.2f}, {ratio.std():.2f}")]


if __name__ == "__main__":
    main()
