"""Profiling runs: measure op specs on a device into a run folder that survives interruption.

A run folder holds ``run.json`` (provenance and what was asked for), ``measurements.jsonl``
(one line per measured op, appended and flushed as soon as a chunk of ops is timed; with the
host's method v10, one line per op of each network profiled, and one with the network's
residual, see :func:`profile_networks`) and
``reference.jsonl`` (the reference networks timed after each profiling call, which record the
state the device was in: see ``latprof.reference``).  Running
the same command again measures only what is missing; a folder measured with other provenance
is refused, so one folder never mixes devices, runtimes, threads or dtypes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from latprof.convert import ModelCache, ensure_models
from latprof.errors import LatprofError
from latprof.jsonl import append_jsonl, read_jsonl, write_json
from latprof.measurement import NetworkProfile, Provenance, Timing
from latprof.ops import OpSpec
from latprof.reference import record_references

RUN_FILE, MEASUREMENTS_FILE = "run.json", "measurements.jsonl"
# Timed with every run: its latency is the fixed cost of one invoke, which every single-op
# microbenchmark pays once and a whole model pays once in all.
OVERHEAD_SPEC = OpSpec("ADD", ((4, 4, 8), (4, 4, 8)), (4, 4, 8))
CHUNK = 128  # ops measured between two appends to the results file: what a kill can lose
# Method v10: networks profiled between two appends.  A chunk's networks are timed in the same
# rounds, so their ops share one stretch of the host's time (about a minute for 32 networks; each holds some 150 MB loaded).
NETWORK_CHUNK = 32
# The line of a profiled network that holds what it takes beyond the sum of its ops.
RESIDUAL_KEY = "network-residual"


def measuring_order(specs: list[OpSpec]) -> list[OpSpec]:
    """The order ops are measured in: the overhead first, then by a hash of each key.

    Chunks of ops are timed one after another, each in rounds of its own, so the ops of a chunk
    share the device's state of that moment (on the shared host, blocks of 100 ops ran from
    -10% to +8% of another profile of the same ops).  Measured in the order asked for (network by
    network), a network's ops would share one or two chunks, and their moment would become the
    network's error: two such profiles put 50 networks' sums an sd of 5.3% apart, two in random
    orders 2.8% (bench/chunk_order.py).  In an order that has nothing to do with networks, each
    network's ops spread over every chunk and the chunks' states average out in its sum.  A
    hash keeps the order the same when a run is resumed or the same ops are asked for in
    another order."""
    return sorted(specs, key=lambda spec: (spec != OVERHEAD_SPEC,
                                           hashlib.blake2b(spec.key.encode(), digest_size=8).digest()))


@dataclass
class ProfileSummary:
    run_dir: str
    requested: int
    measured_now: int
    already_measured: int
    unsupported: dict[str, str]
    seconds: float
    unit: str = "op specs"  # what requested/measured count: op specs, or networks (method v10)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def read_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """The run description and its measurement records; clear errors for a foreign folder."""
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise LatprofError(f"{run_dir}: not a latprof run folder (no {RUN_FILE}); make one with 'latprof profile -o'")
    try:
        run = json.loads(run_file.read_text())
        Provenance.from_dict(run["provenance"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LatprofError(f"{run_file}: corrupt run description ({exc}); re-run 'latprof profile' into a new folder") from None
    records = read_jsonl(run_dir / MEASUREMENTS_FILE, required=("key", "latency_us"))
    return run, records


def _open_run(run_dir: Path, provenance: Provenance, request: dict | None, requested: int) -> list[dict]:
    """Create or re-open a run folder, noting the request; returns the records already there."""
    records = []
    if (run_dir / RUN_FILE).is_file():
        run, records = read_run(run_dir)
        Provenance.from_dict(run["provenance"]).require_same(provenance, str(run_dir), "profile into a new folder")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise LatprofError(f"{run_dir} exists and is not a latprof run folder; choose another -o")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RUN_FILE, {"format": "latprof-run", "version": 1, "provenance": provenance.to_dict(),
                                         "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "requests": []})
    if request is not None:
        run = json.loads((run_dir / RUN_FILE).read_text())
        run["requests"].append({**request, "specs": requested})
        write_json(run_dir / RUN_FILE, run, indent=1)
    return records


def profile(specs: list[OpSpec], device, run_dir: str | Path, cache: ModelCache, request: dict | None = None,
            progress: Callable[[str, int, int], None] = lambda stage, done, total: None,
            record_state: bool = True) -> ProfileSummary:
    """Measure every spec (and the invoke overhead) not yet in ``run_dir`` on ``device``; then,
    unless told not to (a search topping up its LUT has no use for it), time the reference
    networks that record the device's state."""
    start = time.time()
    run_dir = Path(run_dir)
    provenance = device.provenance()
    wanted = list(dict.fromkeys([OVERHEAD_SPEC, *specs]))
    done = {r["key"] for r in _open_run(run_dir, provenance, request, len(wanted))}
    todo = [spec for spec in wanted if spec.key not in done]
    already = len(wanted) - len(todo)

    unsupported = ensure_models(todo, provenance.dtype, cache,
                                progress=lambda done: progress("convert", done, len(todo)))
    todo = measuring_order([spec for spec in todo if spec not in unsupported])
    measured = 0
    for first in range(0, len(todo), CHUNK):
        chunk = todo[first:first + CHUNK]
        timings = device.measure_ops([cache.path(spec, provenance.dtype) for spec in chunk],
                                     progress=lambda done, base=measured: progress("measure", base + done, len(todo)))
        append_jsonl(run_dir / MEASUREMENTS_FILE, [_record(spec, timing) for spec, timing in zip(chunk, timings)])
        measured += len(chunk)
        progress("measure", measured, len(todo))
    if measured and record_state:
        record_references(run_dir, device, cache, provenance.dtype)
    return ProfileSummary(str(run_dir), len(wanted), measured, already,
                          {spec.key: reason for spec, reason in unsupported.items()}, round(time.time() - start, 1))


def profile_networks(models: dict[str, Path], device, run_dir: str | Path, cache: ModelCache,
                     request: dict | None = None,
                     progress: Callable[[str, int, int], None] = lambda stage, done, total: None,
                     record_state: bool = True) -> ProfileSummary:
    """Profile whole networks (name -> .tflite) not yet in ``run_dir``: each op's time inside its
    network and the network's residual (host method v10, ``HostDevice.profile_networks``).

    Each op of a network gets a line (``network`` names it), so an op found in several
    networks has a time from each and the LUT keeps their median; one more line per network
    (key ``RESIDUAL_KEY``) holds what the network took beyond the sum of its ops, which the LUT
    spreads over its ops, and the run's first line the tiny overhead model timed whole (the LUT's
    invoke overhead).  Networks are timed in chunks, a chunk's lines appended when it
    is done; a re-run profiles the networks that have no lines yet."""
    from latprof.tflite_file import decompose

    start = time.time()
    run_dir = Path(run_dir)
    provenance = device.provenance()
    records = _open_run(run_dir, provenance, request, len(models))
    if OVERHEAD_SPEC.key not in {r["key"] for r in records}:
        append_jsonl(run_dir / MEASUREMENTS_FILE, [invoke_record(device, cache)])
    done = {r.get("network") for r in records}
    todo = sorted((name for name in models if name not in done),
                  key=lambda name: hashlib.blake2b(name.encode(), digest_size=8).digest())
    failed: dict[str, str] = {}
    for first in range(0, len(todo), NETWORK_CHUNK):
        chunk = todo[first:first + NETWORK_CHUNK]
        ops = [list(decompose(models[name]).ops) for name in chunk]
        profiles, unsupported = device.profile_networks(
            [models[name] for name in chunk], ops,
            progress=lambda done, base=first: progress("measure", base + done, len(todo)))
        names = {str(models[name]): name for name in chunk}
        failed.update({names[model]: reason for model, reason in unsupported.items()})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        records = []
        for network in profiles:
            name = names[network.model]
            records += network_records(name, ops[chunk.index(name)], network, stamp)
        append_jsonl(run_dir / MEASUREMENTS_FILE, records)
        progress("measure", first + len(chunk), len(todo))
    measured = len(todo) - len(failed)
    if measured and record_state:
        record_references(run_dir, device, cache, provenance.dtype)
    return ProfileSummary(str(run_dir), len(models), measured, len(models) - len(todo), failed,
                          round(time.time() - start, 1), unit="networks")


def invoke_record(device, cache: ModelCache) -> dict:
    """The measurement line of one invoke (the tiny overhead model timed whole): a v10 LUT's
    overhead, the least a network costs."""
    dtype = device.provenance().dtype
    ensure_models([OVERHEAD_SPEC], dtype, cache)
    (invoke,) = device.measure_models([cache.path(OVERHEAD_SPEC, dtype)])
    return _record(OVERHEAD_SPEC, invoke)


def network_records(name: str, ops: list[OpSpec], network: NetworkProfile, stamp: str) -> list[dict]:
    """The measurement lines of one network profiled by v10: one per op (its share of the
    network) and one (key ``RESIDUAL_KEY``) for what the network took beyond their sum."""
    return [*({"key": spec.key, "op": spec.op, **timing.to_dict(), "network": name, "time": stamp}
              for spec, timing in zip(ops, network.ops)),
            {"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": round(network.residual_us, 3),
             "network_us": network.latency.latency_us, "network": name, "time": stamp}]


def _record(spec: OpSpec, timing: Timing) -> dict:
    return {"key": spec.key, "op": spec.op, **timing.to_dict(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
