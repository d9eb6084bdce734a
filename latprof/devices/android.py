"""An Android phone over adb, measured the way the field measures: the official benchmark_model.

Everything that happens on the phone is done by the POSIX scripts of ``device_scripts/``; this
module prepares their input, starts the measurement loop as a detached job and follows it:

- ``/data/local/tmp/latprof/bin/<sha>/benchmark_model``: the user's binary, by content hash;
- ``.../models/<sha256>.tflite``: microbenchmarks by content hash (pushed once per phone);
- ``.../scripts/<hash>/``: the device scripts, versioned, so a running loop is never overwritten;
- ``.../results/<settings>/<sha256>.txt``: one benchmark_model output per model and settings;
  a model with a result file is never measured again on that phone (unless asked for a fresh
  timing: ``.../results/fresh/<id>/``, removed once read);
- ``.../jobs/<id>/``: what one request asked for, and the names finished so far (``done``);
  removed when the job has finished, kept when it failed so that the same command resumes it.

A loose cable does not stop the phone: the host waits for it and goes on following, and a
killed host re-attaches to the same job when the same command runs again.
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

from latprof.adb import Phone, quote
from latprof.benchmark_output import format_flags, parse_benchmark_output
from latprof.errors import LatprofError
from latprof.measurement import Provenance, Timing

ROOT = "/data/local/tmp/latprof"
LOCK = f"{ROOT}/measure.lock"  # held by the one measurement loop running on the phone
SCRIPTS = Path(__file__).resolve().parent.parent.parent / "device_scripts"
METHOD = "benchmark_model/v1 (taskset to the fastest cores, cool-down when throttled; median when printed, else mean)"
# ELF e_machine -> Android ABI, to refuse a binary the phone cannot run before anything is pushed.
ELF_ABIS = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86"}
POLL_SECONDS = 0.5
RESTARTS = 3  # a measurement loop that stops this often without progress is a broken setup


@dataclass(frozen=True)
class PhoneSettings:
    """benchmark_model's run lengths and the cool-down rule; all of it goes into provenance."""

    warmup_runs: int = 10
    warmup_min_secs: float = 0.5
    num_runs: int = 50
    min_secs: float = 1.0
    max_secs: float = 150.0
    cool_status: int = 2  # Android thermal status (2 = moderate) at which the loop waits
    cool_timeout: int = 600
    cool_poll: int = 5
    pause: int = 0  # seconds of rest between two models


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

    @classmethod
    def parse(cls, serial: str, text: str) -> PhoneInfo:
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        cpus = {int(k[3:]): tuple(v.split(" ", 1)) if " " in v else (v, "unknown")
                for k, v in values.items() if k.startswith("cpu") and k[3:].isdigit()}
        return cls(serial, "device", values.get("model", ""), values.get("manufacturer", ""), values.get("soc", ""),
                   tuple(a for a in values.get("abilist", "").split(",") if a), values.get("android", ""),
                   values.get("sdk", ""), cpus, values.get("mask", ""), parse_conditions(values.get("conditions", "")))

    @property
    def mask_cores(self) -> list[int]:
        bits = int(self.mask, 16) if self.mask else 0
        return [core for core in sorted(self.cpus) if bits >> core & 1]

    def to_dict(self) -> dict:
        return {"serial": self.serial, "state": self.state, "model": self.model, "manufacturer": self.manufacturer,
                "soc": self.soc, "abilist": list(self.abilist), "android": self.android, "sdk": self.sdk,
                "cores": len(self.cpus), "max_khz": {str(k): v[0] for k, v in self.cpus.items()},
                "governors": {str(k): v[1] for k, v in self.cpus.items()}, "big_core_mask": self.mask,
                "conditions": self.conditions}


def parse_conditions(text: str) -> dict[str, str]:
    """``thermal=0 temp=35000 ...`` -> dict."""
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


@cache
def scripts_bundle() -> tuple[str, dict[str, bytes]]:
    """The device scripts and a hash of all of them, the name of their folder on the phone."""
    files = {path.name: path.read_bytes() for path in sorted(SCRIPTS.glob("*.sh"))}
    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + data for name, data in files.items())).hexdigest()
    return digest[:16], files


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def elf_abi(data: bytes) -> str | None:
    """The Android ABI an ELF executable is built for; None for a script or unknown machine."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    machine = struct.unpack_from("<H" if data[5] == 1 else ">H", data, 18)[0]
    return ELF_ABIS.get(machine, f"ELF machine {machine}")


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
        if name not in present:
            phone.push(data, f"{folder}/{name}", 0o755)
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


class AndroidDevice:
    """A phone that measures .tflite models with benchmark_model, as a detached job."""

    def __init__(self, serial: str, binary: str | Path, threads: int = 1, delegate: str = "xnnpack",
                 dtype: str = "float32", settings: PhoneSettings = PhoneSettings(), reconnect_timeout: float = 120.0):
        self.binary = Path(binary)
        if not self.binary.is_file():
            raise LatprofError(f"benchmark binary {self.binary} does not exist: pass the path of LiteRT's "
                               "benchmark_model for the phone's ABI (e.g. android_aarch64_benchmark_model)")
        self.threads, self.delegate, self.dtype, self.settings = threads, delegate, dtype, settings
        self.phone = Phone(serial, reconnect_timeout)
        self.phone.require_online()
        self.binary_sha256 = file_sha256(self.binary)

    @property
    def serial(self) -> str:
        return self.phone.serial

    @cached_property
    def info(self) -> PhoneInfo:
        return phone_info(self.phone, self.threads)

    @cached_property
    def remote_binary(self) -> str:
        """Checks that the binary runs on the phone, pushing it first; before anything else."""
        info = self.info
        built_for = elf_abi(self.binary.read_bytes()[:64])
        if built_for is not None and built_for not in info.abilist:
            raise LatprofError(f"{self.binary} is built for {built_for} but phone {self.serial} runs "
                               f"{', '.join(info.abilist) or 'an unknown ABI'}: use the benchmark_model build for "
                               "the phone's ABI")
        if len(info.mask_cores) < self.threads:
            raise LatprofError(f"{self.threads} threads asked for, phone {self.serial} has {len(info.cpus)} cores")
        folder = f"{ROOT}/bin/{self.binary_sha256[:16]}"
        path = f"{folder}/benchmark_model"
        if "benchmark_model" not in self.phone.listdir(folder):
            self.phone.push(self.binary.read_bytes(), f"{path}.part", 0o755)
            self.phone.check(f"mv {quote(path + '.part')} {quote(path)}", "installing the benchmark binary")
        self.phone.check(f"chmod 755 {quote(path)}", "making the benchmark binary executable")
        probe = self.phone.shell(f"{quote(path)} --help")
        if probe.code in (126, 127) or "not executable" in probe.stdout + probe.stderr:
            detail = (probe.stderr or probe.stdout).strip().splitlines()
            raise LatprofError(f"{self.binary} does not run on phone {self.serial} (exit {probe.code}"
                               f"{': ' + detail[-1] if detail else ''}): is it benchmark_model for "
                               f"{info.abilist[0] if info.abilist else 'this phone'}?")
        return path

    @property
    def flags(self) -> dict:
        """benchmark_model's flags besides --graph: explicit values for everything that matters."""
        s = self.settings
        return {"num_threads": self.threads, "warmup_runs": s.warmup_runs, "warmup_min_secs": s.warmup_min_secs,
                "num_runs": s.num_runs,
                "min_secs": s.min_secs, "max_secs": s.max_secs, "use_xnnpack": self.delegate == "xnnpack"}

    def provenance(self) -> Provenance:
        info, s = self.info, self.settings
        cores = info.mask_cores
        freqs = sorted({info.cpus[c][0] for c in cores})
        governors = sorted({info.cpus[c][1] for c in cores})
        self.remote_binary  # noqa: B018 - a binary that cannot run has no provenance worth recording
        return Provenance(
            device=f"{info.manufacturer} {info.model}".strip(),
            hardware=f"{info.soc} ({info.abilist[0] if info.abilist else '?'}, {len(info.cpus)} cores; "
                     f"pinned to cores {cores} @ {'/'.join(freqs)} kHz, governor {'/'.join(governors)})",
            runtime=f"benchmark_model on Android {info.android} (SDK {info.sdk})",
            binary_sha256=self.binary_sha256, threads=self.threads, delegate=self.delegate, dtype=self.dtype,
            method=f"{METHOD}; flags {' '.join(format_flags(self.flags))}",
            details={"serials": [self.serial], "affinity_mask": info.mask, "binary": self.binary.name,
                     "cpus": {str(k): list(v) for k, v in info.cpus.items()}, "abilist": list(info.abilist),
                     "conditions_at_start": info.conditions, "cool_status": s.cool_status,
                     "cool_timeout": s.cool_timeout, "pause": s.pause})

    def measure_ops(self, models: Sequence[str | Path], progress: Callable[[int], None] = lambda done: None,
                    fresh: bool = False) -> list[Timing]:
        """benchmark_model times one model at a time in steady state; on a phone a microbenchmark
        and a whole model are run the same way."""
        return self.measure_models(models, progress, fresh)

    def measure_models(self, models: Sequence[str | Path], progress: Callable[[int], None] = lambda done: None,
                       fresh: bool = False) -> list[Timing]:
        """Results the phone holds are reused, so a killed run resumes; ``fresh`` times every
        model now (a probe of the phone's state: its earlier result would hide a change)."""
        names = [file_sha256(model) for model in models]
        results = self.run_job({name: Path(model) for name, model in zip(names, models)}, progress, fresh)
        return [results[name] for name in names]

    @cached_property
    def scripts(self) -> str:
        """The phone's folder of device_scripts (pushed once per device object)."""
        return install_scripts(self.phone)

    @cached_property
    def results_dir(self) -> str:
        """Results are shared by every job with the same binary, flags and pinning."""
        settings = {"binary": self.binary_sha256, "flags": format_flags(self.flags), "mask": self.info.mask,
                    "cool": [self.settings.cool_status, self.settings.cool_timeout, self.settings.pause]}
        return f"{ROOT}/results/{hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]}"

    def finished(self, names: Sequence[str]) -> dict[str, Timing]:
        """Results the phone already holds for these models (from an earlier or interrupted run)."""
        present = self.phone.listdir(self.results_dir)
        return {name: self._result(name, self.results_dir) for name in names if f"{name}.txt" in present}

    def run_job(self, models: dict[str, Path], progress: Callable[[int], None] = lambda done: None,
                fresh: bool = False) -> dict[str, Timing]:
        """Measure every model (sha256 -> file) not yet measured on this phone; returns all results.
        ``fresh``: measure them all now, into a results folder of this call's own, removed once read
        (or once the timing failed: nothing will read it again)."""
        if not fresh:
            return self._follow_job(models, self.results_dir, self.finished(list(models)), progress)
        results_dir = f"{ROOT}/results/fresh/{uuid.uuid4().hex[:16]}"
        try:
            return self._follow_job(models, results_dir, {}, progress, disposable=True)
        finally:
            with contextlib.suppress(LatprofError):  # an unplugged phone keeps it; the error says why
                self.phone.shell(f"rm -rf {quote(results_dir)}")

    def _follow_job(self, models: dict[str, Path], results_dir: str, results: dict[str, Timing],
                    progress: Callable[[int], None], disposable: bool = False) -> dict[str, Timing]:
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
        job = self._write_job(binary, todo, results_dir)
        try:
            self._poll(job, models, todo, results_dir, results, progress)
        except LatprofError:
            if disposable:
                with contextlib.suppress(LatprofError):
                    self.phone.shell(f"rm -rf {quote(job)}")
            raise
        self.phone.check(f"for job in {quote(ROOT + '/jobs')}/*/; do [ ! -f \"$job/finished\" ] || rm -rf \"$job\"; done",
                         "removing finished jobs")
        return results

    def _poll(self, job: str, models: dict[str, Path], todo: list[str], results_dir: str,
              results: dict[str, Timing], progress: Callable[[int], None]) -> None:
        """Start the job's loop and read its results into ``results`` until it has finished."""
        seen, restarts, last_progress = 0, 0, len(results)
        self._start(job)
        while True:
            lines = self.phone.check(f"sh {quote(self.scripts + '/status.sh')} {quote(job)} {seen}",
                                     "reading the job's progress").splitlines()
            state = lines[-1].removeprefix("state=") if lines and lines[-1].startswith("state=") else "unknown"
            for name in lines[:-1]:
                seen += 1
                if name in models and name not in results:
                    results[name] = self._result(name, results_dir)
            progress(len(results))
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
                self._start(job)
            time.sleep(POLL_SECONDS)

    def _push_models(self, models: dict[str, Path]) -> None:
        """Push the models the phone lacks under a temporary name, then rename them all at once:
        a push cut short never leaves a truncated model under its final name."""
        folder = f"{ROOT}/models"
        present = self.phone.listdir(folder)
        missing = [name for name in models if f"{name}.tflite" not in present]
        for name in missing:
            self.phone.push(models[name].read_bytes(), f"{folder}/{name}.part")
        if missing:
            self.phone.check(f"cd {quote(folder)} && for f in *.part; do mv \"$f\" \"${{f%.part}}.tflite\"; done",
                             "installing the models")

    def _write_job(self, binary: str, names: list[str], results_dir: str) -> str:
        """The job folder for this request; its name is a hash of its content, so re-running the
        same request finds the same job (and a running one is never rewritten)."""
        s = self.settings
        config = {"binary": binary, "models": f"{ROOT}/models", "results": results_dir, "lock": LOCK,
                  "mask": self.info.mask, "cool_status": s.cool_status, "cool_timeout": s.cool_timeout,
                  "cool_poll": s.cool_poll, "pause": s.pause}
        files = {"config": "".join(f"{k}={v}\n" for k, v in config.items()),
                 "flags": "".join(f"{flag}\n" for flag in format_flags(self.flags)),
                 "models": "".join(f"{name}\n" for name in names)}
        job = f"{ROOT}/jobs/{hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]}"
        if "config" not in self.phone.listdir(job):
            for name in ("flags", "models", "config"):  # config last: its presence marks a complete job
                self.phone.push(files[name].encode(), f"{job}/{name}")
        return job

    def _start(self, job: str) -> None:
        """Start the loop detached from the adb session (setsid + nohup): it survives a lost cable."""
        script = quote(self.scripts + "/measure.sh")
        log, job_q = quote(job + "/log"), quote(job)
        self.phone.check(f"if command -v setsid >/dev/null 2>&1; then setsid nohup sh {script} {job_q} >>{log} 2>&1 "
                         f"</dev/null & else nohup sh {script} {job_q} >>{log} 2>&1 </dev/null & fi",
                         "starting the measurement loop")

    def _result(self, name: str, results_dir: str) -> Timing:
        """Pull and parse one result file; its conditions (thermal, clocks, battery) go along."""
        text = self.phone.read(f"{results_dir}/{name}.txt").decode("utf-8", "replace")
        header = dict(line[len("latprof-"):].split("=", 1) for line in text.splitlines()
                      if line.startswith("latprof-") and "=" in line)
        if header.get("exit") != "0":
            lines = [line for line in text.splitlines() if line.strip() and not line.startswith("latprof-")]
            raise LatprofError(f"phone {self.serial}: benchmark_model failed on model {name[:12]} (exit "
                               f"{header.get('exit', 'unknown')}: {lines[-1] if lines else 'no output'})")
        run = parse_benchmark_output(text, {**self.flags, "graph": f"{ROOT}/models/{name}.tflite"})
        stats = run.inference
        conditions = {"cooldown_s": int(header.get("cooldown", 0)), "mask": header.get("mask", ""),
                      **{f"before_{k}": v for k, v in parse_conditions(header.get("before", "")).items()},
                      **{f"after_{k}": v for k, v in parse_conditions(header.get("after", "")).items()},
                      "statistic": run.statistic}
        if stats is None:  # the oldest output form prints only a mean
            return Timing(run.latency_us, run.latency_us, run.latency_us, run.latency_us, 0, conditions)
        # Percentiles where the binary prints them, else the extremes.
        low, high = (stats.p5, stats.p95) if stats.p5 is not None else (stats.min, stats.max)
        return Timing(run.latency_us, stats.median if stats.median is not None else run.latency_us, low, high,
                      stats.count, conditions)
