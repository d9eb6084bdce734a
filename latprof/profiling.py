"""Profiling runs: measure a device's ops into a run folder that survives interruption.

A run folder holds ``run.json`` (provenance and what was asked for), ``measurements.jsonl``
(measurement lines, appended and flushed as soon as a chunk is timed) and ``reference.jsonl``
(the reference networks timed after each profiling call, which record the state the device was
in: see ``latprof.reference``).  Running the same command again measures only what is missing; a
folder measured with other provenance is refused, so one folder never mixes devices, methods,
runtimes, threads or dtypes.

What the lines hold follows the run's timing method (``latprof.timing``):

- ``in-network``: one line per op of each profiled network (``network`` names it), one per
  network with what it took beyond the sum of its ops (key ``RESIDUAL_KEY``), and the invoke
  overhead (the tiny model, timed whole).  Op specs that no profiled network holds (``--all``,
  ``--kernels``, adaptive choices) are timed as single-op models, with ``"context":
  "isolated"``, together with a sample of the networks' own ops: the LUT learns from the ops
  timed both ways how an isolated time maps to a time inside a network (``latprof.lut``).
- ``isolated``: one line per single-op model, and the invoke overhead.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from latprof.convert import ModelCache, ensure_models
from latprof.errors import LatprofError
from latprof.jsonl import TMP_SUFFIX, append_jsonl, read_jsonl, write_json
from latprof.locks import LOCK_FILE, folder_lock
from latprof.measurement import NetworkProfile, Provenance, Timing
from latprof.ops import OpSpec
from latprof.reference import REFERENCE_NETWORKS, append_references, pace_us, record_references, reference_models
from latprof.timing import IN_NETWORK

RUN_FILE, MEASUREMENTS_FILE = "run.json", "measurements.jsonl"
# Timed with every run: its latency is the fixed cost of one invoke, which every single-op
# model pays once and a whole model pays once in all.
OVERHEAD_SPEC = OpSpec("ADD", ((4, 4, 8), (4, 4, 8)), (4, 4, 8))
CHUNK = 128  # ops measured between two appends to the results file: what a kill can lose
# Networks profiled between two appends.  A chunk's networks are timed in the same rounds, so
# their ops share one stretch of the device's time (each holds some 150 MB loaded on the host).
NETWORK_CHUNK = 32
# The line of a profiled network that holds what it takes beyond the sum of its ops.
RESIDUAL_KEY = "network-residual"
ISOLATED_CONTEXT = "isolated"  # the "context" of an in-network run's line timed as a single-op model
# In-network runs: how many of the networks' own ops are also timed isolated, to calibrate by;
# and the networks profiled for that when the run profiles none itself.
CALIBRATION_OPS = 240
CALIBRATION_NETWORKS, CALIBRATION_SEED = 8, 0


def measuring_order(specs: list[OpSpec]) -> list[OpSpec]:
    """The order ops are measured in: the overhead first, then by a hash of each key.

    Chunks of ops are timed one after another, each in rounds of its own, so the ops of a chunk
    share the device's state of that moment.  In the order asked for (network by network), a
    network's ops would share one or two chunks, and their moment would become the network's
    error; in an order that has nothing to do with networks, each network's ops spread over many
    chunks and the chunks' states average out in its sum.  A hash keeps the order the same when a
    run is resumed or the same ops are asked for in another order."""
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
    # Networks the runtime could not split into their ops (by name, why): their ops were timed alone.
    timed_alone: dict[str, str] = field(default_factory=dict)

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
    elif run_dir.exists() and any(not _bookkeeping(path) for path in run_dir.iterdir()):
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


def _bookkeeping(path: Path) -> bool:
    """latprof's own lock file, or a file a killed write left under its temporary name."""
    return path.name == LOCK_FILE or (path.name.startswith(".") and path.name.endswith(TMP_SUFFIX))


def profile(device, run_dir: str | Path, cache: ModelCache, networks: dict[str, Path] | None = None,
            specs: list[OpSpec] = (), request: dict | None = None,
            progress: Callable[[str, int, int], None] = lambda stage, done, total: None,
            record_state: bool = True) -> ProfileSummary:
    """Profile ``networks`` (name -> .tflite, method ``in-network`` only) and op ``specs`` into
    ``run_dir``, measuring only what it lacks, with the reference networks that record the
    device's state: timed in the same rounds as each chunk of networks, and after single-op
    models.  A search topping up its LUT (``record_state=False``) has no use for them.

    A network the runtime cannot split into its ops has them timed alone instead, as the specs
    are, and is named in the summary's ``timed_alone``.  The folder is locked meanwhile: a second
    process profiling into it is refused (``latprof.locks``)."""
    with folder_lock(run_dir, "profile"):
        return _profile(device, Path(run_dir), cache, networks, specs, request, progress, record_state)


def _profile(device, run_dir: Path, cache: ModelCache, networks: dict[str, Path] | None, specs: list[OpSpec],
             request: dict | None, progress: Callable[[str, int, int], None], record_state: bool) -> ProfileSummary:
    start = time.time()
    run_dir = Path(run_dir)
    networks = dict(networks or {})
    provenance = device.provenance()
    in_network = device.config.method == IN_NETWORK
    if networks and not in_network:
        raise LatprofError("isolated timing times single-op models; profile the networks' ops (their specs) instead")
    records = _open_run(run_dir, provenance, request, len(networks) + len(specs))
    measured, failed, timed_alone = 0, {}, {}
    if OVERHEAD_SPEC.key not in {r["key"] for r in records}:
        append_jsonl(run_dir / MEASUREMENTS_FILE, [invoke_record(device, cache)])
    paced = 0  # networks timed beside the reference networks, which then record the device's state
    if in_network:
        done, timed_alone = _profile_networks(networks, device, run_dir, cache, records, progress, record_state)
        measured += done
        paced += done if record_state else 0
        records = read_run(run_dir)[1]
        specs = [*specs, *(op for name in timed_alone for op in _network_ops(networks[name]))]
        if specs and not any(r.get("network") for r in records):  # nothing yet to calibrate by
            calibration = calibration_networks(provenance.dtype, cache, progress)
            done = _profile_networks(calibration, device, run_dir, cache, records, progress, record_state)[0]
            measured += done
            paced += done if record_state else 0
            networks.update(calibration)
            records = read_run(run_dir)[1]
        held = {r["key"] for r in records if r.get("network")}
        specs = [spec for spec in dict.fromkeys(specs) if spec.key not in held]
        if specs:
            specs += calibration_sample(held, records)
    done, unsupported = _time_isolated(specs, device, run_dir, cache, records, progress)
    measured += done
    failed.update({spec.key: reason for spec, reason in unsupported.items()})
    if measured > paced and record_state:
        record_references(run_dir, device, cache, provenance.dtype)
    requested = len(networks) + len(set(specs))  # calibration networks and ops included
    return ProfileSummary(str(run_dir), requested, measured, max(0, requested - measured - len(failed)), failed,
                          round(time.time() - start, 1), timed_alone)


def _network_ops(model: Path) -> list[OpSpec]:
    from latprof.tflite_file import decompose

    return list(decompose(model).ops)


def calibration_networks(dtype: str, cache: ModelCache, progress) -> dict[str, Path]:
    """Networks whose ops, timed both inside them and isolated, calibrate the isolated times of an
    in-network run that profiles no network of its own: a fixed sample of the MnasNet space."""
    from latprof.convert import ensure_architectures
    from latprof.space import get_space

    archs = get_space("mnasnet").sample_many(CALIBRATION_NETWORKS, CALIBRATION_SEED)
    return {text: Path(path) for text, path in ensure_architectures(
        archs, dtype, cache, progress=lambda done: progress("convert", done, len(archs))).items()}


def calibration_sample(held: set[str], records: list[dict]) -> list[OpSpec]:
    """Up to CALIBRATION_OPS of the ops the run's networks hold (a fixed choice, by hash), to be
    timed isolated too; fewer when some already are."""
    isolated = {r["key"] for r in records if r.get("context") == ISOLATED_CONTEXT}
    keys = sorted(held - {OVERHEAD_SPEC.key, RESIDUAL_KEY}, key=lambda key: hashlib.blake2b(key.encode(), digest_size=8).digest())
    wanted = keys[:CALIBRATION_OPS]
    return [OpSpec.from_key(key) for key in wanted if key not in isolated]


def _time_isolated(specs, device, run_dir: Path, cache: ModelCache, records: list[dict], progress) -> tuple[int, dict]:
    """Time the single-op models of the specs the run lacks, in chunks appended as they finish."""
    dtype = device.config.dtype
    context = {"context": ISOLATED_CONTEXT} if device.config.method == IN_NETWORK else {}
    done = {r["key"] for r in records if not r.get("network")}
    todo = [spec for spec in dict.fromkeys(specs) if spec.key not in done]
    unsupported = ensure_models(todo, dtype, cache, progress=lambda n: progress("convert", n, len(todo)))
    todo = measuring_order([spec for spec in todo if spec not in unsupported])
    measured = 0
    for first in range(0, len(todo), CHUNK):
        chunk = todo[first:first + CHUNK]
        timings = device.time_isolated([cache.path(spec, dtype) for spec in chunk],
                                       progress=lambda n, base=measured: progress("measure", base + n, len(todo)))
        append_jsonl(run_dir / MEASUREMENTS_FILE, [{**_record(spec, timing), **context}
                                                   for spec, timing in zip(chunk, timings)])
        measured += len(chunk)
        progress("measure", measured, len(todo))
    return measured, unsupported


def _profile_networks(models: dict[str, Path], device, run_dir: Path, cache: ModelCache, records: list[dict],
                      progress, paced: bool = True) -> tuple[int, dict[str, str]]:
    """Profile the networks (name -> .tflite) that have no lines in the run yet: each op's time
    inside its network and the network's residual (``Device.profile_networks``).

    Each op of a network gets a line (``network`` names it), so an op found in several
    networks has a time from each and the LUT keeps their median; one more line per network
    (key ``RESIDUAL_KEY``) holds what the network took beyond the sum of its ops, which the LUT
    spreads over its ops.  Networks are timed in chunks, a chunk's lines appended when it
    is done, in an order (by a hash of the name) that has nothing to do with how they were asked.

    When ``paced``, each chunk is profiled with the reference networks, timed whole in the same
    rounds (``latprof.reference``): their latencies go to the run's reference lines, and their
    pace to each line of the chunk (``pace_us``), so that the LUT can put the chunks, timed at
    different moments of a drifting machine, on one pace."""
    # A network's residual line is its last: a network without one was cut short by a kill.
    done = {r["network"] for r in records if r["key"] == RESIDUAL_KEY and r.get("network")}
    todo = sorted((name for name in models if name not in done),
                  key=lambda name: hashlib.blake2b(name.encode(), digest_size=8).digest())
    failed: dict[str, str] = {}
    references = reference_models(REFERENCE_NETWORKS, device.config.dtype, cache) if paced and todo else {}
    for first in range(0, len(todo), NETWORK_CHUNK):
        chunk = todo[first:first + NETWORK_CHUNK]
        paths = {name: models[name] for name in chunk}
        if paced:
            paths.update(references)
        ops = {name: _network_ops(path) for name, path in paths.items()}
        profiles, unsupported = device.profile_networks(
            list(paths.values()), list(ops.values()),
            progress=lambda n, base=first, size=len(chunk): progress("profile", base + min(n, size), len(todo)))
        names = {str(path): name for name, path in paths.items()}
        failed.update({names[model]: reason for model, reason in unsupported.items() if names[model] in chunk})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        by_name = {names[network.model]: network for network in profiles}
        pace = {}
        if paced:
            timed = {target: by_name[target].latency.latency_us for target in references if target in by_name}
            if not timed:
                raise LatprofError(f"the reference networks could not be profiled ({'; '.join(unsupported.values())}); "
                                   "re-run the command, and report the error if it stays")
            append_references(run_dir, timed)
            pace = {"pace_us": round(pace_us(timed), 3)}
        lines = []
        for name in chunk:
            if name in by_name:
                lines += [{**line, **pace} for line in network_records(name, ops[name], by_name[name], stamp)]
        append_jsonl(run_dir / MEASUREMENTS_FILE, lines)
        progress("profile", first + len(chunk), len(todo))
    return len(todo) - len(failed), failed


def invoke_record(device, cache: ModelCache) -> dict:
    """The measurement line of one invoke (the tiny overhead model timed whole): the LUT's
    overhead, the least a network costs."""
    dtype = device.config.dtype
    ensure_models([OVERHEAD_SPEC], dtype, cache)
    (invoke,) = device.measure_models([cache.path(OVERHEAD_SPEC, dtype)])
    return _record(OVERHEAD_SPEC, invoke)


def network_records(name: str, ops: list[OpSpec], network: NetworkProfile, stamp: str) -> list[dict]:
    """The measurement lines of one profiled network: one per op (its share of the
    network) and one (key ``RESIDUAL_KEY``) for what the network took beyond their sum."""
    return [*({"key": spec.key, "op": spec.op, **timing.to_dict(), "network": name, "time": stamp}
              for spec, timing in zip(ops, network.ops)),
            {"key": RESIDUAL_KEY, "op": "INVOKE", "latency_us": round(network.residual_us, 3),
             "network_us": network.latency.latency_us, "network": name, "time": stamp}]


def _record(spec: OpSpec, timing: Timing) -> dict:
    return {"key": spec.key, "op": spec.op, **timing.to_dict(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
