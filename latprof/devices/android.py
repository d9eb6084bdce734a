"""An Android phone over adb, measured the way the field measures: the official benchmark_model.

Everything that happens on the phone is done by the POSIX scripts of ``device_scripts/``; this
module prepares their input, starts the measurement loop as a detached job and follows it:

- ``/data/local/tmp/latprof/bin/<sha>/benchmark_model``: the user's binary, by content hash;
- ``.../models/<sha256>.tflite``: models by content hash (pushed once per phone);
- ``.../scripts/<hash>/``: the device scripts, versioned, so a running loop is never overwritten;
- ``.../results/<settings>/<sha256>.txt``: one benchmark_model output per model and settings
  (binary, flags, affinity mask, cool-down rule).  The op-profiling runs of the ``in-network``
  method have flags of their own (``--enable_op_profiling=true``), so their outputs live in a
  results folder of their own.  A model with a result file is never measured again on that phone
  with those settings, except by ``measure_models``, which times models now into
  ``.../results/fresh/<id>/``, removed once read;
- ``.../jobs/<id>/``: what one request asked for; ``runs/<run>/`` of each start of its loop,
  the names that loop has dealt with (``done``) and how it ended; removed when the job has
  finished, kept when it failed so that the same command resumes it.

A loose cable does not stop the phone: the host waits for it and goes on following, and a
killed host re-attaches to the same job when the same command runs again.

Timing methods (``latprof.timing``): ``isolated`` times each single-op model as benchmark_model
times any model.  ``in-network`` runs two jobs over the networks: one times each network whole
(no profiling, which perturbs timing), then one runs it with ``--enable_op_profiling=true``,
whose table of the regular runs gives each operator's average time; those are mapped to the
network's ops by ``latprof.attribution`` (``benchmark_output.network_operators``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from latprof.adb import Phone, quote
from latprof.benchmark_output import (
    BenchmarkRun,
    format_flags,
    network_operators,
    parse_benchmark_output,
    refuse_delegate_failures,
)
from latprof.delegate_log import DelegateRefused
from latprof.devices.base import Device, DeviceConfig, Progress, _no_progress
from latprof.errors import LatprofError
from latprof.measurement import NetworkProfile, Provenance, Timing, paces_by_model
from latprof.ops import OpSpec
from latprof.timing import IN_NETWORK, ISOLATED, method_tag

ROOT = "/data/local/tmp/latprof"
LOCK = f"{ROOT}/measure.lock"  # held by the one measurement loop running on the phone
SCRIPTS_PACKAGE = "latprof.device_scripts"  # device_scripts/, shipped in the wheel under this name
# How each method measures (its provenance ``method``, with the flags).
HYGIENE = "taskset to the fastest cores, cool-down when throttled; median when printed, else mean"
HOW = {ISOLATED: f"single-op models timed whole by benchmark_model; {HYGIENE}",
       IN_NETWORK: "benchmark_model --enable_op_profiling=true: each op's average time in the regular runs' op "
                   "table (XNNPACK's own operators, or the builtin kernels without XNNPACK), mapped to the "
                   "network's ops and scaled by the profiled runs' median over their mean; each network also "
                   f"timed whole without profiling; {HYGIENE}"}
# ELF e_machine -> Android ABI family (an ABI's name up to its first dash), to refuse a binary the
# phone cannot run before anything is pushed.
ELF_ABI_FAMILIES = {183: "arm64", 40: "armeabi", 62: "x86_64", 3: "x86"}
# benchmark_model's flags for each --delegate.  An explicit --use_xnnpack=false keeps XNNPACK from
# taking what an accelerator leaves; such a run is refused anyway (latprof.delegate_log).
DELEGATE_FLAGS = {"xnnpack": {"use_xnnpack": True}, "none": {"use_xnnpack": False},
                  "gpu": {"use_xnnpack": False, "use_gpu": True}, "nnapi": {"use_xnnpack": False, "use_nnapi": True}}
ACCELERATORS = ("gpu", "nnapi")
POLL_SECONDS = 0.5
RESTARTS = 3  # a measurement loop that stops this often without progress is a broken setup


@dataclass(frozen=True)
class PhoneSettings:
    """benchmark_model's run lengths and the cool-down rule (which go into provenance), and how
    long a model may take before the phone's loop counts as stuck."""

    warmup_runs: int = 10
    warmup_min_secs: float = 0.5
    num_runs: int = 50
    min_secs: float = 1.0
    max_secs: float = 150.0
    cool_status: int = 2  # Android thermal status (2 = moderate) at which the loop waits
    cool_timeout: int = 600
    cool_poll: int = 5
    pause: int = 0  # seconds of rest between two models
    rounds: int = 3  # jobs that time every model of a measure_models call, each in another order
    load_timeout: int = 300  # seconds benchmark_model may take to start and load a model, beyond its runs

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise LatprofError(f"rounds must be >= 1, not {self.rounds}")

    @property
    def model_timeout(self) -> float:
        """The longest one model may keep the phone's loop busy (a cool-down, the rest, the
        warm-up, the timed runs and loading it): a loop that shows no new result for longer is
        stuck (a hung binary, a phone that stopped scheduling it)."""
        return self.cool_timeout + self.pause + self.warmup_min_secs + self.max_secs + self.load_timeout


@dataclass(frozen=True)
class PhoneInfo:
    """What ``device_scripts/device_info.sh`` reports about a phone."""

    serial: str
    state: str
    model: str = ""
    manufacturer: str = ""
    soc: str = ""
    abilist: tuple[str, ...] = ()
    android: str = ""
    sdk: str = ""
    cpus: dict[int, tuple[str, str]] = field(default_factory=dict)  # core -> (max kHz, governor)
    mask: str = ""
    conditions: dict[str, str] = field(default_factory=dict)
    gpu: str = ""  # SurfaceFlinger's GLES line (vendor, renderer, version), else the EGL driver's name

    @classmethod
    def parse(cls, serial: str, text: str) -> PhoneInfo:
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        cpus = {int(k[3:]): tuple(v.split(" ", 1)) if " " in v else (v, "unknown")
                for k, v in values.items() if k.startswith("cpu") and k[3:].isdigit()}
        return cls(serial, "device", values.get("model", ""), values.get("manufacturer", ""), values.get("soc", ""),
                   tuple(a for a in values.get("abilist", "").split(",") if a), values.get("android", ""),
                   values.get("sdk", ""), cpus, values.get("mask", ""), parse_conditions(values.get("conditions", "")),
                   values.get("gpu", ""))

    @property
    def mask_cores(self) -> list[int]:
        bits = int(self.mask, 16) if self.mask else 0
        return [core for core in sorted(self.cpus) if bits >> core & 1]

    def to_dict(self) -> dict:
        return {"serial": self.serial, "state": self.state, "model": self.model, "manufacturer": self.manufacturer,
                "soc": self.soc, "abilist": list(self.abilist), "android": self.android, "sdk": self.sdk,
                "cores": len(self.cpus), "max_khz": {str(k): v[0] for k, v in self.cpus.items()},
                "governors": {str(k): v[1] for k, v in self.cpus.items()}, "big_core_mask": self.mask,
                "conditions": self.conditions, "gpu": self.gpu}


def parse_conditions(text: str) -> dict[str, str]:
    """``thermal=0 temp=35000 ...`` -> dict."""
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


@cache
def scripts_bundle() -> tuple[str, dict[str, bytes]]:
    """The device scripts and a hash of all of them, the name of their folder on the phone."""
    from importlib.resources import files as package_files

    scripts = [entry for entry in package_files(SCRIPTS_PACKAGE).iterdir() if entry.name.endswith(".sh")]
    if not scripts:
        raise LatprofError(f"latprof's device scripts ({SCRIPTS_PACKAGE}) are missing from this install; reinstall latprof")
    files = {entry.name: entry.read_bytes() for entry in sorted(scripts, key=lambda entry: entry.name)}
    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + data for name, data in files.items())).hexdigest()
    return digest[:16], files


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def elf_abi(data: bytes) -> str | None:
    """The Android ABI family an ELF executable is built for (``ELF_ABI_FAMILIES``); None for a
    script."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    machine = struct.unpack_from("<H" if data[5] == 1 else ">H", data, 18)[0]
    return ELF_ABI_FAMILIES.get(machine, f"ELF machine {machine}")


def phone_info(phone: Phone, threads: int = 1) -> PhoneInfo:
    scripts = install_scripts(phone)
    text = phone.check(f"sh {quote(scripts + '/device_info.sh')} {int(threads)}", "reading the phone's properties")
    return PhoneInfo.parse(phone.serial, text)


def install_scripts(phone: Phone) -> str:
    """Push ``device_scripts/`` unless this version is already on the phone; returns its folder."""
    version, files = scripts_bundle()
    folder = f"{ROOT}/scripts/{version}"
    present = phone.listdir(folder)
    for name, data in files.items():
        if name not in present:  # under a temporary name first: a push cut short leaves no script
            phone.push(data, f"{folder}/{name}.part", 0o755)
            phone.check(f"mv {quote(f'{folder}/{name}.part')} {quote(f'{folder}/{name}')}", "installing latprof's scripts")
    return folder


def list_phones() -> list[PhoneInfo]:
    """Every phone the adb server knows, described in full when it is online."""
    from latprof.adb import client

    phones = []
    for entry in client().list():
        if entry.state == "device":
            phones.append(phone_info(Phone(entry.serial)))
        else:
            phones.append(PhoneInfo(entry.serial, entry.state))
    return phones


class ModelFailed(LatprofError):
    """benchmark_model exited with an error on one model (the model's problem, not the setup's);
    ``retried`` when that was its second attempt (a first failure is measured again, once)."""

    def __init__(self, message: str, retried: bool = True):
        super().__init__(message)
        self.retried = retried


@dataclass(frozen=True)
class OpTable:
    """One op-profiling run of a network: what benchmark_model printed, parsed."""

    run: BenchmarkRun
    conditions: dict


Result = Timing | OpTable | ModelFailed  # what a job gives for one model


class AndroidDevice(Device):
    """A phone that measures .tflite models with benchmark_model, as a detached job."""

    methods = frozenset({IN_NETWORK, ISOLATED})
    delegates = tuple(DELEGATE_FLAGS)

    def __init__(self, serial: str, binary: str | Path, config: DeviceConfig, settings: PhoneSettings = PhoneSettings(),
                 reconnect_timeout: float = 120.0):
        self._check_config(config)
        if config.delegate in ACCELERATORS and config.method == IN_NETWORK:
            raise LatprofError(f"the {config.delegate.upper()} delegate runs a whole network as one node and reports no "
                               "per-op times (tensorflow#53138): use --method isolated, which times each op as its own "
                               "model, run whole by the delegate")
        self.config, self.settings = config, settings
        self.binary = Path(binary)
        if not self.binary.is_file():
            raise LatprofError(f"benchmark binary {self.binary} does not exist: pass the path of LiteRT's "
                               "benchmark_model for the phone's ABI (e.g. android_aarch64_benchmark_model)")
        self.phone = Phone(serial, reconnect_timeout)
        self.phone.require_online()
        self.binary_sha256 = file_sha256(self.binary)

    @property
    def serial(self) -> str:
        return self.phone.serial

    @cached_property
    def info(self) -> PhoneInfo:
        return phone_info(self.phone, self.config.threads)

    @cached_property
    def remote_binary(self) -> str:
        """Checks that the binary runs on the phone, pushing it first; before anything else."""
        info = self.info
        built_for = elf_abi(self.binary.read_bytes()[:64])
        if built_for is not None and built_for not in {abi.split("-")[0] for abi in info.abilist}:
            raise LatprofError(f"{self.binary} is built for {built_for} but phone {self.serial} runs "
                               f"{', '.join(info.abilist) or 'an unknown ABI'}: use the benchmark_model build for "
                               "the phone's ABI")
        if len(info.mask_cores) < self.config.threads:
            raise LatprofError(f"{self.config.threads} threads asked for, phone {self.serial} has {len(info.cpus)} cores")
        folder = f"{ROOT}/bin/{self.binary_sha256[:16]}"
        path = f"{folder}/benchmark_model"
        if "benchmark_model" not in self.phone.listdir(folder):
            self.phone.push(self.binary.read_bytes(), f"{path}.part", 0o755)
            self.phone.check(f"mv {quote(path + '.part')} {quote(path)}", "installing the benchmark binary")
        self.phone.check(f"chmod 755 {quote(path)}", "making the benchmark binary executable")
        probe = self.phone.shell(f"{quote(path)} --help")
        said = probe.stdout + probe.stderr
        # benchmark_model --help lists its flags, --graph among them; a file that is no program
        # fails to start, or is run by the shell as a script of garbage.
        if probe.code in (126, 127) or "not executable" in said or "--graph" not in said:
            detail = (probe.stderr or probe.stdout).strip().splitlines()
            raise LatprofError(f"{self.binary} does not run on phone {self.serial} (exit {probe.code}"
                               f"{': ' + detail[-1] if detail else ''}): is it benchmark_model for "
                               f"{info.abilist[0] if info.abilist else 'this phone'}?")
        return path

    @property
    def flags(self) -> dict:
        """benchmark_model's flags besides --graph: explicit values for everything that matters."""
        return self.flags_for(profiling=False)

    def flags_for(self, profiling: bool) -> dict:
        """The flags of a timing run, or of an op-profiling run (the same, profiling on)."""
        s = self.settings
        flags = {"num_threads": self.config.threads, "warmup_runs": s.warmup_runs, "warmup_min_secs": s.warmup_min_secs,
                 "num_runs": s.num_runs, "min_secs": s.min_secs, "max_secs": s.max_secs,
                 **DELEGATE_FLAGS[self.config.delegate]}
        return {**flags, "enable_op_profiling": True} if profiling else flags

    def provenance(self) -> Provenance:
        info, s, c = self.info, self.settings, self.config
        cores = info.mask_cores
        freqs = sorted({info.cpus[c][0] for c in cores})
        governors = sorted({info.cpus[c][1] for c in cores})
        self.remote_binary  # noqa: B018 - a binary that cannot run has no provenance worth recording
        how = f"{HOW[c.method]}; flags {' '.join(format_flags(self.flags))}"
        if c.method == IN_NETWORK:
            how += "; op profiles add --enable_op_profiling=true"
        if c.delegate in ACCELERATORS:
            how += f"; only models the {c.delegate.upper()} delegate runs whole"
        # The GPU that runs the models is part of the hardware a GPU LUT is valid for.
        gpu = f"; GPU {info.gpu or 'unknown'}" if c.delegate == "gpu" else ""
        return Provenance(
            device=f"{info.manufacturer} {info.model}".strip(),
            hardware=f"{info.soc} ({info.abilist[0] if info.abilist else '?'}, {len(info.cpus)} cores; "
                     f"pinned to cores {cores} @ {'/'.join(freqs)} kHz, governor {'/'.join(governors)}{gpu})",
            runtime=f"benchmark_model on Android {info.android} (SDK {info.sdk})",
            binary_sha256=self.binary_sha256, threads=c.threads, delegate=c.delegate, dtype=c.dtype,
            method=method_tag(c.method, how),
            details={"serials": [self.serial], "affinity_mask": info.mask, "binary": self.binary.name,
                     "cpus": {str(k): list(v) for k, v in info.cpus.items()}, "abilist": list(info.abilist),
                     "conditions_at_start": info.conditions, "cool_status": s.cool_status,
                     "cool_timeout": s.cool_timeout, "pause": s.pause, "rounds": s.rounds, "gpu": info.gpu})

    def measure_models(self, models: Sequence[str | Path], progress: Progress = _no_progress) -> list[Timing]:
        """Every model timed now, in rounds (:func:`measure_in_rounds`), each round a job into a
        results folder of its own (an earlier result would hide a change of the phone's state)."""
        files = {file_sha256(model): Path(model) for model in models}
        timings = measure_in_rounds(list(files), self.settings.rounds, lambda order, report: self.run_job(
            {name: files[name] for name in order}, report, fresh=True), progress)
        return [timings[file_sha256(model)] for model in models]

    def time_isolated(self, models: Sequence[str | Path], progress: Progress = _no_progress) -> list[Timing]:
        """benchmark_model times a single-op model as any model, in steady state.  Results the
        phone holds are reused, so a killed run resumes."""
        names = [file_sha256(model) for model in models]
        results = self.run_job(dict(zip(names, map(Path, models))), progress)
        return [results[name] for name in names]

    def profile_networks(self, models: Sequence[Path], ops: Sequence[Sequence[OpSpec]],
                         progress: Progress = _no_progress) -> tuple[list[NetworkProfile], dict[str, str]]:
        """Each network profiled op by op (one job, resumable: results the phone holds are
        reused), then the networks that ran timed whole exactly as :meth:`measure_models` (and so
        ``validate``) times them, in rounds: a network's whole time is the figure its LUT rows
        must add up to, and one run of it takes the phone's speed of its own moment.  A network
        that failed to run, or whose op table cannot be mapped to its ops, is reported with the
        reason."""
        self._require_in_network()
        names = [file_sha256(model) for model in models]
        files = dict(zip(names, map(Path, models)))
        tables = self.run_job(files, lambda done: progress(done // 2), profiling=True, tolerant=True)
        ran = [name for name in names if isinstance(tables[name], OpTable)]
        timed = self.measure_models([files[name] for name in ran],
                                    lambda done: progress((len(names) + done) // 2))
        return network_profiles(models, names, ops, dict(zip(ran, timed)), tables)

    def _require_in_network(self) -> None:
        if self.config.method != IN_NETWORK:
            raise LatprofError(f"this device times ops {self.config.method}; profiling networks op by op is method "
                               f"{IN_NETWORK}")

    def profile_results(self, models: dict[str, Path], progress: Progress = _no_progress
                        ) -> tuple[dict[str, Result], dict[str, Result]]:
        """The whole-network timings (one run each), then the op-profiling runs of the networks
        that ran, by sha256, as a farm's phone profiles its share; a model benchmark_model failed
        on has its ModelFailed.  Progress counts a network as half done once timed whole."""
        wholes = self.run_job(models, lambda done: progress(done // 2), tolerant=True)
        ran = {name: path for name, path in models.items() if isinstance(wholes[name], Timing)}
        skipped = len(models) - len(ran)
        tables = self.run_job(ran, lambda done: progress((len(models) + skipped + done) // 2), profiling=True,
                              tolerant=True)
        progress(len(models))
        return wholes, tables

    @cached_property
    def scripts(self) -> str:
        """The phone's folder of device_scripts (pushed once per device object)."""
        return install_scripts(self.phone)

    @property
    def results_dir(self) -> str:
        """The folder of timing results, shared by every job with the same binary, flags and pinning."""
        return self.results_dir_for(profiling=False)

    def results_dir_for(self, profiling: bool) -> str:
        """Timing results (or op-profiling ones) by binary, flags and pinning."""
        settings = {"binary": self.binary_sha256, "flags": format_flags(self.flags_for(profiling)),
                    "mask": self.info.mask, "cool": [self.settings.cool_status, self.settings.cool_timeout,
                                                     self.settings.pause]}
        return f"{ROOT}/results/{hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]}"

    def finished(self, names: Sequence[str], profiling: bool = False, tolerant: bool = False) -> dict[str, Result]:
        """Results the phone already holds for these models (from an earlier or interrupted run)."""
        folder = self.results_dir_for(profiling)
        present = self.phone.listdir(folder)
        read = self._reader(profiling, tolerant=True)
        results = {name: read(name, folder) for name in names if f"{name}.txt" in present}
        # a model that failed once is not finished: the next job measures it again, once
        results = {name: result for name, result in results.items()
                   if not (isinstance(result, ModelFailed) and not result.retried)}
        if not tolerant:
            for result in results.values():
                if isinstance(result, ModelFailed):
                    raise result
        return results

    def run_job(self, models: dict[str, Path], progress: Progress = _no_progress, fresh: bool = False,
                profiling: bool = False, tolerant: bool = False) -> dict[str, Result]:
        """Measure every model (sha256 -> file) not yet measured on this phone; returns all results.
        ``fresh``: measure them all now, into a results folder of this call's own, removed once read
        (or once the timing failed: nothing will read it again).  ``profiling``: run them with op
        profiling on, into their own results folder.  ``tolerant``: a model benchmark_model failed
        on gives its ModelFailed instead of stopping the run."""
        read = self._reader(profiling, tolerant)
        if not fresh:
            folder = self.results_dir_for(profiling)
            return self._follow_job(models, folder, self.finished(list(models), profiling, tolerant), progress, read,
                                    profiling)
        folder = f"{ROOT}/results/fresh/{uuid.uuid4().hex[:16]}"
        try:
            return self._follow_job(models, folder, {}, progress, read, profiling, disposable=True)
        finally:
            with contextlib.suppress(LatprofError):  # an unplugged phone keeps it; the error says why
                self.phone.shell(f"rm -rf {quote(folder)}")

    def _reader(self, profiling: bool, tolerant: bool) -> Callable[[str, str], Result]:
        read = self._op_table if profiling else self._timing
        if not tolerant:
            return read

        def read_or_failure(name: str, folder: str) -> Result:
            try:
                return read(name, folder)
            except ModelFailed as failure:
                return failure

        return read_or_failure

    def _follow_job(self, models: dict[str, Path], results_dir: str, results: dict[str, Result], progress: Progress,
                    read: Callable[[str, str], Result], profiling: bool, disposable: bool = False) -> dict[str, Result]:
        """Start (or re-attach to) the job that measures what ``results`` lacks, and follow it.
        Then the folders of every finished job go (their results stay; a killed host's job finishes
        on its own and is left behind otherwise); a failed job is kept for the re-run to resume,
        unless ``disposable`` (a fresh timing, which no re-run resumes)."""
        binary = self.remote_binary
        todo = [name for name in models if name not in results]
        progress(len(results))
        if not todo:
            return results
        self._push_models({name: models[name] for name in todo})
        job = self._write_job(binary, todo, results_dir, profiling)
        try:
            self._poll(job, models, todo, results_dir, results, progress, read)
        except LatprofError:
            if disposable:
                with contextlib.suppress(LatprofError):
                    self.phone.shell(f"rm -rf {quote(job)}")
            raise
        self.phone.check(f"for job in {quote(ROOT + '/jobs')}/*/; do [ ! -f \"$job/finished\" ] || rm -rf \"$job\"; done",
                         "removing finished jobs")
        return results

    def _poll(self, job: str, models: dict[str, Path], todo: list[str], results_dir: str,
              results: dict[str, Result], progress: Progress, read: Callable[[str, str], Result]) -> None:
        """Start the job's loop and read its results into ``results`` until it has finished; stop
        when it shows no new result for longer than a model may take (``model_timeout``).  While
        it waits behind another loop (a killed host's, another job's), that loop's results count."""
        seen, restarts, last_progress, waiting = 0, 0, len(results), ""
        run = self._start(job)
        changed = time.monotonic()
        while True:
            lines = self.phone.check(f"sh {quote(self.scripts + '/status.sh')} {quote(job)} {quote(run)} {seen}",
                                     "reading the job's progress").splitlines()
            state = lines[-1].removeprefix("state=") if lines and lines[-1].startswith("state=") else "unknown"
            for name in lines[:-1]:
                seen += 1
                changed = time.monotonic()
                if name in models and name not in results:
                    results[name] = read(name, results_dir)
            progress(len(results))
            if state.startswith("waiting:") and state != waiting:
                waiting, changed = state, time.monotonic()
            if time.monotonic() - changed > self.settings.model_timeout:
                raise LatprofError(f"phone {self.serial}: no result for {self.settings.model_timeout:.0f} s, longer "
                                   f"than a model may take (job {job}); finished measurements are kept: restart the "
                                   "phone (adb reboot) and re-run the same command")
            if state == "finished":
                missing = [name for name in todo if name not in results]
                if missing:
                    raise LatprofError(f"phone {self.serial}: the job finished without results for {len(missing)} "
                                       f"models (job {job}); re-run the same command")
                return
            if state.startswith("error:"):
                raise LatprofError(f"phone {self.serial}: the measurement loop stopped: {state[6:]}; finished "
                                   "measurements are kept, fix that and re-run the same command")
            if state == "stopped":  # the phone rebooted or killed the loop: start it again
                restarts = 0 if len(results) > last_progress else restarts + 1
                last_progress = len(results)
                if restarts > RESTARTS:
                    log = self.phone.shell(f"tail -n 3 {quote(job + '/log')}").stdout.strip().replace("\n", " | ")
                    raise LatprofError(f"phone {self.serial}: the measurement loop keeps stopping ({log or 'no log'})")
                run, seen = self._start(job), 0
            time.sleep(POLL_SECONDS)

    def _push_models(self, models: dict[str, Path]) -> None:
        """Push the models the phone lacks under a temporary name, then rename them all at once:
        a push cut short never leaves a truncated model under its final name."""
        folder = f"{ROOT}/models"
        present = self.phone.listdir(folder)
        missing = [name for name in models if f"{name}.tflite" not in present]
        push = f".{uuid.uuid4().hex[:12]}.part"  # this push's own suffix: another push's files are not touched
        for name in missing:
            self.phone.push(models[name].read_bytes(), f"{folder}/{name}{push}")
        if missing:
            self.phone.check(f"cd {quote(folder)} && for f in *{push}; do mv \"$f\" \"${{f%{push}}}.tflite\"; done",
                             "installing the models")

    def _write_job(self, binary: str, names: list[str], results_dir: str, profiling: bool) -> str:
        """The job folder for this request; its name is a hash of its content, so re-running the
        same request finds the same job (and a running one is never rewritten)."""
        s = self.settings
        config = {"binary": binary, "models": f"{ROOT}/models", "results": results_dir, "lock": LOCK,
                  "mask": self.info.mask, "cool_status": s.cool_status, "cool_timeout": s.cool_timeout,
                  "cool_poll": s.cool_poll, "pause": s.pause}
        files = {"config": "".join(f"{k}={v}\n" for k, v in config.items()),
                 "flags": "".join(f"{flag}\n" for flag in format_flags(self.flags_for(profiling))),
                 "models": "".join(f"{name}\n" for name in names)}
        job = f"{ROOT}/jobs/{hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]}"
        if "config" not in self.phone.listdir(job):
            for name in ("flags", "models", "config"):  # config last: its presence marks a complete job
                self.phone.push(files[name].encode(), f"{job}/{name}")
        return job

    def _start(self, job: str) -> str:
        """Start the loop detached from the adb session (setsid + nohup): it survives a lost cable.
        Returns the run's name: the loop reports under it alone, so a listing or an end left by an
        earlier loop of the same job (a killed host's, or a failed run's) is never read as this
        one's, and every result is read after this loop has dealt with it (retried a first failure)."""
        run = uuid.uuid4().hex[:16]
        script, folder = quote(self.scripts + "/measure.sh"), quote(f"{job}/runs/{run}")
        command = f"sh {script} {quote(job)} {quote(run)} >>{quote(job + '/log')} 2>&1 </dev/null &"
        self.phone.check(f"mkdir -p {folder} && if command -v setsid >/dev/null 2>&1; then setsid nohup {command} "
                         f"else nohup {command} fi", "starting the measurement loop")
        return run

    def _output(self, name: str, results_dir: str, profiling: bool) -> tuple[BenchmarkRun, dict]:
        """Pull and parse one result file, with its conditions (thermal, clocks, battery).  A
        delegate that was rejected, or ran only part of the model, fails the model (ModelFailed,
        not measured again: a re-run would say the same)."""
        text = self.phone.read(f"{results_dir}/{name}.txt").decode("utf-8", "replace")
        header = dict(line[len("latprof-"):].split("=", 1) for line in text.splitlines()
                      if line.startswith("latprof-") and "=" in line)
        flags = {**self.flags_for(profiling), "graph": f"{ROOT}/models/{name}.tflite"}
        try:
            if header.get("exit") == "0":
                run = parse_benchmark_output(text, flags)
            else:
                refuse_delegate_failures(text, flags)
                run = None
        except DelegateRefused as refused:
            raise ModelFailed(f"model {name[:12]} on phone {self.serial}: {refused}") from None
        if run is None:
            lines = [line for line in text.splitlines() if line.strip() and not line.startswith("latprof-")]
            retried = "retry" in header
            again = "; it failed twice, so it does not run on this phone" if retried else \
                "; it is measured again once when you re-run the same command"
            raise ModelFailed(f"phone {self.serial}: benchmark_model failed on model {name[:12]} (exit "
                              f"{header.get('exit', 'unknown')}: {lines[-1] if lines else 'no output'}){again}",
                              retried)
        conditions = {"cooldown_s": int(header.get("cooldown", 0)), "mask": header.get("mask", ""),
                      **({"delegate_backend": run.delegate_backend} if run.delegate_backend else {}),
                      **{f"before_{k}": v for k, v in parse_conditions(header.get("before", "")).items()},
                      **{f"after_{k}": v for k, v in parse_conditions(header.get("after", "")).items()}}
        return run, conditions

    def _timing(self, name: str, results_dir: str) -> Timing:
        run, conditions = self._output(name, results_dir, profiling=False)
        stats, conditions = run.inference, {**conditions, "statistic": run.statistic}
        if stats is None:  # the oldest output form prints only a mean
            return Timing(run.latency_us, run.latency_us, run.latency_us, run.latency_us, 0, conditions)
        # Percentiles where the binary prints them, else the extremes.
        low, high = (stats.p5, stats.p95) if stats.p5 is not None else (stats.min, stats.max)
        return Timing(run.latency_us, stats.median if stats.median is not None else run.latency_us, low, high,
                      stats.count, conditions)

    def _op_table(self, name: str, results_dir: str) -> OpTable:
        return OpTable(*self._output(name, results_dir, profiling=True))


def measure_in_rounds(names: list[str], rounds: int, run_round: Callable[[list[str], Progress], dict[str, Timing]],
                      progress: Progress = _no_progress, paced: bool = True) -> dict[str, Timing]:
    """Time the models (by sha256) in ``rounds`` rounds, each in another order (``run_round``
    runs one, the models one after another as listed); each model's latency is the median over
    rounds of its time divided by the phone's pace when it ran, read off the models timed just
    before and after it (``latprof.measurement.neighbour_pace``).

    benchmark_model times one model for a second or two, and a phone's speed moves between two
    of them (heat, a busy core; the loopback phone shares its host's spells): a single pass gives
    each model the speed of its own moment.  (Without ``paced``, the plain median: a farm's round
    runs on several phones at once, whose speeds are not one.)"""
    rng = np.random.default_rng(0)
    order: list[int] = []  # the models (by index) in the order they ran
    results: list[list[Timing]] = [[] for _ in names]
    for index in range(rounds):
        round_order = list(range(len(names))) if index == 0 else rng.permutation(len(names)).tolist()
        timed = run_round([names[i] for i in round_order],
                          lambda done, base=index * len(names): progress((base + done) // rounds))
        for model in round_order:
            results[model].append(timed[names[model]])
        order += round_order
    latencies = [[t.latency_us for t in runs] for runs in results]
    paces = paces_by_model(order, latencies) if paced else [np.ones(rounds) for _ in names]
    timings = {}
    for name, runs, values, pace in zip(names, results, latencies, paces):
        latency = float(np.median(np.divide(values, pace)))
        timings[name] = Timing(latency, float(np.median([t.median_us for t in runs])), min(t.p5_us for t in runs),
                               max(t.p95_us for t in runs), sum(t.runs for t in runs),
                               {**runs[-1].conditions, "rounds": rounds,
                                "round_latencies_us": [round(t.latency_us, 3) for t in runs]})
    progress(len(names))
    return timings


def network_profiles(models: Sequence[Path], names: Sequence[str], ops: Sequence[Sequence[OpSpec]],
                     wholes: dict[str, Result], tables: dict[str, Result]) -> tuple[list[NetworkProfile], dict[str, str]]:
    """Each network's whole timing and its ops' times from its op table, by model; and why the
    networks that cannot be profiled so cannot (benchmark_model failed on them, or their table
    has no per-op rows, or its rows are not the model's ops)."""
    from latprof.attribution import attribute

    profiles: list[NetworkProfile] = []
    failed: dict[str, str] = {}
    for model, name, model_ops in zip(models, names, ops):
        whole, table = wholes.get(name), tables.get(name)
        try:
            for result in (whole, table):
                if isinstance(result, ModelFailed):
                    raise result
            if not isinstance(whole, Timing) or not isinstance(table, OpTable):
                raise LatprofError(f"{model}: the phone holds no result for it; re-run the same command")
            try:
                operators = network_operators(table.run)
            except LatprofError as exc:
                raise LatprofError(f"{model}: {exc}") from None
            times = attribute(list(model_ops), operators, str(model))
        except LatprofError as exc:
            failed[str(model)] = str(exc)
            continue
        # The table holds means over the profiled runs; the latency of a run is their median (a
        # spell of contention in a few runs would inflate every mean), so the ops take the share
        # of the median run the means give them.  Where the tool prints no median, the means.
        stats = table.run.inference
        scale = stats.median / stats.avg if stats is not None and stats.median and stats.avg else 1.0
        runs = stats.count if stats is not None else 0
        conditions = {"statistic": "op profile avg", "profiled_runs": runs, "scale": round(scale, 4)}
        profiles.append(NetworkProfile(str(model), whole, [Timing(t * scale, t * scale, t * scale, t * scale, runs,
                                                                  conditions) for t in times]))
    return profiles, failed
