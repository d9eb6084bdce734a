"""The ``latprof`` command: a thin layer over the library, one verb per step of the workflow.

Heavy imports (TensorFlow, LiteRT, pandas) happen inside the commands that need them, so
``latprof --help`` answers at once.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import click

from latprof.errors import LatprofError
from latprof.search.registry import CONTROLLERS, make_controller, options_help, parse_options
from latprof.timing import DEFAULT_METHOD, HELP, METHODS


class _Group(click.Group):
    """Turns expected failures into one line on stderr and a non-zero exit, never a traceback."""

    def main(self, args=None, prog_name=None, **extra):
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            code = 0
        except click.UsageError as exc:  # one line instead of click's usage block
            command = exc.ctx.command_path if exc.ctx else "latprof"
            click.echo(f"latprof: error: {exc.format_message()} (see '{command} --help')", err=True)
            code = 2
        except click.ClickException as exc:
            click.echo(f"latprof: error: {exc.format_message()}", err=True)
            code = exc.exit_code
        except click.Abort:
            click.echo("latprof: aborted", err=True)
            code = 1
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LatprofError as exc:
            click.echo(f"latprof: error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            # Start a fresh line: a progress bar may own the current one.
            click.echo("\nlatprof: interrupted; finished measurements are saved, re-run the same command to resume",
                       err=True)
            ctx.exit(130)


def _emit(data, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=1) if as_json else text)


def _progress(unit: str = "model"):
    """A progress callback (stage, done, total) drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        if total <= 0:
            return
        bar = bars.get(stage)
        if bar is None:
            # disable=None: no bar when stderr is not a terminal (logs, pipes, CI) stay clean.
            bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, leave=False, disable=None)
        bar.n = min(done, total)
        bar.refresh()
        if done >= total:
            bar.close()

    return update


@dataclass(frozen=True)
class DeviceChoice:
    """Where and how to measure, as the device options of a command gave it."""

    device: str
    serials: tuple[str, ...]
    method: str | None
    threads: int | None
    delegate: str | None
    dtype: str | None
    benchmark_binary: str | None
    warmup_runs: int
    warmup_min_secs: float
    num_runs: int
    min_secs: float
    cool_status: int
    cool_timeout: int
    pause: int
    reconnect_timeout: float

    @property
    def names(self) -> list[str]:
        return list(self.serials) or [self.device]

    def config(self, lut=None, source: str = "the LUT"):
        """The device configuration: the options', or, given a LUT measured with one of latprof's
        timing methods, the LUT's, which an option may repeat but not contradict."""
        from latprof.devices import DeviceConfig

        given = {"method": self.method, "threads": self.threads, "delegate": self.delegate, "dtype": self.dtype}
        recorded = lut.device_config() if lut is not None else None
        if recorded is None:
            return DeviceConfig(**{name: value for name, value in given.items() if value is not None})
        for name, value in given.items():
            if value is not None and value != getattr(recorded, name):
                raise LatprofError(f"--{name} {value} contradicts {source}, measured with {name} "
                                   f"{getattr(recorded, name)}; drop --{name} (the LUT decides) or profile a LUT with it")
        return recorded

    def make(self, lut=None, source: str = "the LUT"):
        """The device, in :meth:`config`'s configuration."""
        from latprof.devices import get_device
        from latprof.devices.android import PhoneSettings

        phone = PhoneSettings(**{f.name: getattr(self, f.name) for f in fields(PhoneSettings) if hasattr(self, f.name)})
        return get_device(self.names, self.config(lut, source), binary=self.benchmark_binary, phone_settings=phone,
                          reconnect_timeout=self.reconnect_timeout)


def _cache():
    from latprof.convert import ModelCache, default_cache_dir

    return ModelCache(default_cache_dir())


_PHONE = "Phone options"
_device_options = [
    click.option("--device", default="host", show_default=True,
                 help="Where to measure: 'host' is this CPU; an adb serial is a phone ('latprof devices' lists them)."),
    click.option("--serial", "serials", multiple=True,
                 help="adb serial of a phone; repeat to shard the work over several phones of the same model."),
    click.option("--method", type=click.Choice(METHODS),
                 help="How ops are timed: " + "; ".join(f"{m}: {HELP[m]}" for m in METHODS)
                      + f". Data of two methods never mix [default: {DEFAULT_METHOD}, or the LUT's]."),
    click.option("--threads", type=click.IntRange(1), help="Interpreter threads [default: 1, or the LUT's]."),
    click.option("--delegate", type=click.Choice(["xnnpack", "none", "gpu", "nnapi"]),
                 help="XNNPACK (LiteRT's default CPU delegate), the builtin kernels, or on phones the GPU or NNAPI "
                      "delegate (with --method isolated; a model they do not run whole is an error) "
                      "[default: xnnpack, or the LUT's]."),
    click.option("--dtype", type=click.Choice(["float32", "int8"]),
                 help="Models in fp32 or int8 (post-training quantized) [default: float32, or the LUT's]."),
    click.option("--benchmark-binary", type=click.Path(dir_okay=False),
                 help="Phones: LiteRT's benchmark_model built for the phone's ABI."),
    click.option("--warmup-runs", default=10, show_default=True, type=click.IntRange(1),
                 help="Phones: benchmark_model --warmup_runs."),
    click.option("--warmup-min-secs", default=0.5, show_default=True, type=click.FloatRange(0),
                 help="Phones: benchmark_model --warmup_min_secs."),
    click.option("--num-runs", default=50, show_default=True, type=click.IntRange(1),
                 help="Phones: benchmark_model --num_runs (at least this many timed runs)."),
    click.option("--min-secs", default=1.0, show_default=True, type=click.FloatRange(0),
                 help="Phones: benchmark_model --min_secs (at least this long)."),
    click.option("--cool-status", default=2, show_default=True, type=click.IntRange(1, 6),
                 help="Phones: wait before a model while Android's thermal status is at least this (2 = moderate) "
                      "or the clocks are capped."),
    click.option("--cool-timeout", default=600, show_default=True, type=click.IntRange(0),
                 help="Phones: longest wait for a cool-down, seconds (then measure and record the state)."),
    click.option("--pause", default=0, show_default=True, type=click.IntRange(0),
                 help="Phones: seconds of rest between two models."),
    click.option("--reconnect-timeout", default=120.0, show_default=True, type=click.FloatRange(0),
                 help="Phones: how long to wait for a phone that dropped off before stopping (re-run to resume)."),
]
_DEVICE_KEYS = tuple(f.name for f in fields(DeviceChoice))


def device_options(command):
    """Adds the device options and hands the command one ``target: DeviceChoice`` instead."""

    @functools.wraps(command)
    def wrapper(**kwargs):
        return command(target=DeviceChoice(**{key: kwargs.pop(key) for key in _DEVICE_KEYS}), **kwargs)

    for option in reversed(_device_options):
        wrapper = option(wrapper)
    return wrapper


@click.group(cls=_Group)
@click.version_option(package_name="latprof")
def main() -> None:
    """Latency of neural networks on your device, per op and end to end, for platform-aware NAS.

    Workflow: profile -> lut build -> predict / validate.
    """


@main.command()
@click.argument("model_files", metavar="[MODELS]...", nargs=-1, type=click.Path())
@device_options
@click.option("--space", "space_name", default="mnasnet", show_default=True, help="Search space to sample.")
@click.option("--sample", type=click.IntRange(1), help="Profile the ops of N sampled architectures.")
@click.option("--seed", default=0, show_default=True, help="Seed of --sample (validate uses the same draws).")
@click.option("--all", "whole_space", is_flag=True, help="Profile every op the search space can produce.")
@click.option("--kernels", type=click.IntRange(1),
              help="Also profile N ops of the generic kernel space (any CNN's ranges, not the search space's; "
                   "drawn with --seed): what a predictor for models outside the space learns from.")
@click.option("--models", multiple=True, type=click.Path(),
              help="Profile the ops of this .tflite file, or of every .tflite in this folder (repeatable); more "
                   "files may follow the options, as in --models DIR/*.tflite.")
@click.option("--adaptive", is_flag=True,
              help="Measure only --budget ops of what was named, chosen round by round where the predictor is least sure.")
@click.option("--budget", type=click.IntRange(2), help="With --adaptive: ops to measure for training.")
@click.option("--rounds", type=click.IntRange(1), default=4, show_default=True,
              help="With --adaptive: rounds after the random start.")
@click.option("--check", "check_ops", type=click.IntRange(1), default=100, show_default=True,
              help="With --adaptive: random ops measured only to score each round.")
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder; re-running into it resumes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def profile(model_files, target, space_name, sample, seed, whole_space, kernels, models, adaptive, budget, rounds,
            check_ops, run_dir, as_json):
    """Time a device's ops into RUN_DIR (resumable).

    With the default method, in-network, the sampled architectures and the model files are run
    whole and each op is timed inside them; ops that no such network holds (--all, --kernels,
    --adaptive) are timed as single-op models and mapped to their time in a network by the
    networks' ops timed both ways.  With --adaptive --budget N, what --sample/--all/--models name
    is the pool to choose from (the whole space when none is given)."""
    from latprof.convert import ensure_architectures
    from latprof.kernels import sample_kernels
    from latprof.network import Network
    from latprof.profiling import profile as run_profile
    from latprof.space import get_space
    from latprof.tflite_file import decompose
    from latprof.timing import IN_NETWORK

    models = _model_files((*models, *model_files))
    if adaptive != bool(budget):
        raise LatprofError("--adaptive and --budget N go together")
    whole_space = whole_space or (adaptive and not (sample or models or kernels))
    if not (sample or whole_space or kernels or models):
        raise LatprofError("say what to profile: --sample N, --all, --kernels N or --models FILE.tflite")
    space = get_space(space_name)
    archs = space.sample_many(sample, seed) if sample and not whole_space else []
    specs = sorted(space.unique_ops()) if whole_space else []
    specs += sample_kernels(kernels, seed) if kernels else []
    request = {"space": space_name, "sample": sample, "seed": seed, "all": whole_space, "kernels": kernels,
               "models": list(models)}
    device, cache, progress = target.make(), _cache(), _progress()
    if adaptive or device.config.method != IN_NETWORK:  # single-op models only: the networks' ops
        specs += [op for arch in archs for op in Network(arch).ops]
        specs += [op for model in models for op in decompose(model).ops]
        archs, models = [], []
    if adaptive:
        _adaptive(specs, budget, rounds, check_ops, seed, device, run_dir, request, as_json)
        return
    networks = {text: Path(path) for text, path in ensure_architectures(
        archs, device.config.dtype, cache, progress=lambda done: progress("convert", done, len(archs))).items()}
    networks.update({str(model): Path(model) for model in models})
    summary = run_profile(device, run_dir, cache, networks=networks, specs=specs, request=request, progress=progress)
    what = " and ".join(part for part in (f"{len(networks)} networks" * bool(networks),
                                          f"{len(set(specs))} op specs" * bool(specs)) if part)
    lines = [f"profiled {what} into {summary.run_dir} ({device.config.method}): {summary.measured_now} measured now, "
             f"{summary.already_measured} already there ({summary.seconds} s)"]
    if summary.timed_alone:
        lines.append(f"{len(summary.timed_alone)} networks could not be split into their ops by the runtime; "
                     "their ops were timed alone:")
        lines += [f"  {reason}" for reason in summary.timed_alone.values()]  # each names its model
    if summary.unsupported:
        lines.append(f"{len(summary.unsupported)} ops could not be timed:")
        lines += [f"  {reason}" for reason in summary.unsupported.values()]  # each names its op
    _emit(summary.to_dict(), as_json, "\n".join(lines))


def _adaptive(specs, budget, rounds, check_ops, seed, device, run_dir, request, as_json) -> None:
    from latprof.adaptive import AdaptivePlan, adaptive_profile

    plan = AdaptivePlan(budget, rounds, check=check_ops, seed=seed)
    reports = adaptive_profile(specs, plan, device, run_dir, _cache(), {**request, "adaptive": plan.__dict__},
                               _progress())
    lines = [f"adaptive profile into {run_dir}: {reports[-1].trained_on} ops to learn from, "
             f"{reports[-1].check_ops} more to check; predictor error on the check ops after each round:",
             "round  trained on  MAPE %  within ±5 %  within ±10 %  sum error %"]
    lines += [f"{r.round:5d}  {r.trained_on:10d}  {r.mape_pct:6.2f}  {r.within_5_pct:11.1f}  {r.within_10_pct:12.1f}"
              f"  {r.sum_error_pct:+11.2f}" for r in reports]
    _emit([r.__dict__ for r in reports], as_json, "\n".join(lines))


@main.group()
def lut() -> None:
    """Build, inspect, import and export latency lookup tables."""


@lut.command("build")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="LUT file to write.")
@click.option("--allow-mixed", is_flag=True, help="Merge runs whose provenance differs (recorded in the LUT).")
@click.option("--json", "as_json", is_flag=True)
def lut_build(run_dirs, output, allow_mixed, as_json):
    """Merge profiling runs into a LUT; refuses runs of different provenance unless told."""
    from latprof.lut import build_lut
    from latprof.reference import DRIFT_WARNING_PCT

    table = build_lut(list(run_dirs), allow_mixed=allow_mixed)
    table.save(output)
    spread = table.reference_spread_pct
    data = {"lut": output, "ops": len(table), "overhead_us": table.overhead_us, "provenance": table.provenance.to_dict(),
            "reference_us": table.reference_us, "reference_spread_pct": spread}
    text = (f"wrote {output}: {len(table)} ops, invoke overhead {table.overhead_us:.2f} us, "
            f"{table.provenance.device} / {table.provenance.hardware}, {table.provenance.threads} thread(s), "
            f"{table.provenance.delegate}, {table.provenance.dtype}")
    if spread is not None and spread > DRIFT_WARNING_PCT:
        text += (f"\nwarning: the reference networks ran {spread:.1f}% apart between profiling calls: the device "
                 "was in different states (busy, throttled), so its ops were too; re-profile when it is quiet")
    _emit(data, as_json, text)


@lut.command("import")
@click.argument("yaml_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="LUT file to write.")
@click.option("--device", help="Device name for the provenance [default: 'imported from FILE'].")
@click.option("--hardware", help="Hardware description [default: 'imported from FILE'].")
@click.option("--runtime", default="unknown (imported)", show_default=True, help="Runtime that measured the table.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="Threads it was measured with.")
@click.option("--delegate", default="unknown", show_default=True, help="Delegate it was measured with.")
@click.option("--dtype", default="float32", show_default=True, help="Data type it was measured with.")
@click.option("--json", "as_json", is_flag=True)
def lut_import(yaml_file, output, device, hardware, runtime, threads, delegate, dtype, as_json):
    """Read a ProxylessNAS/OFA yaml LUT (key -> {count, mean, var} or OFA's {count, mean, std}) into a LUT of layer rows.

    Predictions of architectures then use a layer's row where the LUT has its key. The provenance
    is what the options say (the yaml records none); binary_sha256 is the yaml file's sha256.
    """
    from latprof.proxyless import import_yaml

    table = import_yaml(yaml_file, device, hardware, runtime, threads, delegate, dtype)
    table.save(output)
    details = table.provenance.details
    data = {"lut": output, "entries": len(table), "by_type": details["entries_by_type"], "variant": details["variant"],
            "provenance": table.provenance.to_dict()}
    _emit(data, as_json, f"wrote {output}: {len(table)} layer rows ({details['variant']} keys; "
                         + ", ".join(f"{n} {kind}" for kind, n in details["entries_by_type"].items())
                         + f") from {yaml_file} (sha256 {details['source_sha256'][:12]}...)")


@lut.command("export")
@click.argument("lut_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="yaml file to write.")
@click.option("--variant", type=click.Choice(["proxylessnas", "ofa"]), default="proxylessnas", show_default=True,
              help="Keys of ProxylessNAS (expand = ratio, no SE) or of OFA (expand = middle width, se/hs flags).")
@click.option("--space", "space_name", default="mnasnet", show_default=True,
              help="Export the layers of this search space ('none' for no space).")
@click.option("--arch", "archs", multiple=True, help="Also export the layers of this architecture (repeatable).")
@click.option("--allow-mixed", is_flag=True,
              help="Use a LUT built from runs of different provenance ('lut build --allow-mixed').")
@click.option("--json", "as_json", is_flag=True)
def lut_export(lut_file, output, variant, space_name, archs, allow_mixed, as_json):
    """Write a LUT in the ProxylessNAS/OFA yaml format: its layer rows as they are, and one entry per
    layer of the space (and of --arch) whose ops are all in the LUT, with the layer's share of a
    network as mean (the invoke overhead is carried by the stem's entry)."""
    from latprof.lut import LUT
    from latprof.proxyless import export_layers, export_yaml

    table = LUT.load(lut_file, allow_mixed)
    summary = export_yaml(table, output, export_layers(None if space_name == "none" else space_name, archs), variant)
    _emit(summary.to_dict(), as_json, summary.text())


@lut.command("show")
@click.argument("lut_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def lut_show(lut_file, as_json):
    """Print a LUT's provenance, its reference networks and a summary of its table."""
    from latprof.lut import LUT
    from latprof.reference import reference_name

    table = LUT.load(lut_file, allow_mixed=True)  # shown, mix and all
    by_op = table.table.groupby("op")["latency_us"].agg(["count", "median"]).round(2)
    data = {"provenance": table.provenance.to_dict(), "ops": len(table), "overhead_us": table.overhead_us,
            "sources": table.sources, "mixed_provenance": table.mixed, "reference_us": table.reference_us,
            "reference_spread_pct": table.reference_spread_pct, "by_op": by_op.to_dict(orient="index")}
    provenance = table.provenance.to_dict()
    # a long mapping in details (an imported table's per-entry variances) is counted, not printed
    provenance["details"] = {k: f"{{{len(v)} entries}}" if isinstance(v, dict) and len(v) > 8 else v
                             for k, v in provenance["details"].items()}
    references = [f"reference network {reference_name(target)}: {latency / 1000:.3f} ms"
                  for target, latency in table.reference_us.items()]
    if table.reference_spread_pct is not None:
        references.append(f"reference networks' spread between profiling calls: {table.reference_spread_pct:.1f}%")
    if (sure := table.uncertainty_summary()) is not None:
        data["uncertainty"] = sure
        references.append(f"ops known within ±{sure['within_pct']:g}% (or {sure['floor_us']:g} us): {sure['within']} of "
                          f"{sure['ops']} (median uncertainty {sure['median_pct']:.1f}%)")
    mixed = [f"mixed provenance (only with --allow-mixed): {line}" for line in table.mixed]
    text = "\n".join([f"{k}: {v}" for k, v in provenance.items()] + mixed + references +
                     [f"ops: {len(table)}, overhead: {table.overhead_us:.2f} us", by_op.to_string()])
    _emit(data, as_json, text)


def _load_predictor(path, lut_table):
    """A predictor file, refused when it learned from measurements of other provenance."""
    from latprof.api import load_predictor

    return None if path is None else load_predictor(path, lut_table)


@main.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--lut", "lut_file", required=True, type=click.Path(dir_okay=False), help="LUT to look ops up in.")
@click.option("--predictor", "predictor_file", type=click.Path(dir_okay=False),
              help="Predictor (from 'latprof predictor train') for ops the LUT lacks.")
@click.option("--breakdown", is_flag=True, help="Include per-op latencies and where each came from.")
@click.option("--allow-mixed", is_flag=True,
              help="Use a LUT built from runs of different provenance ('lut build --allow-mixed').")
@click.option("--json", "as_json", is_flag=True)
def predict(targets, lut_file, predictor_file, breakdown, allow_mixed, as_json):
    """Predict the latency of architectures (block strings or names) or .tflite files."""
    from latprof.lut import LUT
    from latprof.predict import predict as run_predict

    table = LUT.load(lut_file, allow_mixed)
    model = _load_predictor(predictor_file, table)
    results = [run_predict(target, table, model) for target in targets]
    lines = []
    for r in results:
        if r.latency_ms is None:
            lines.append(f"{r.target}: incomplete, {len(r.missing)} of {r.ops} ops are not in the LUT "
                         f"{'nor known to the predictor ' if model is not None else ''}"
                         f"(known part {r.known_ms:.3f} ms); profile them with 'latprof profile'")
            lines += [f"  missing {key}" for key in r.missing]
        else:
            lines.append(f"{r.target}: {r.latency_ms:.3f} ms ({r.ops} ops"
                         + (f", {r.predicted_ops} estimated by the predictor" if r.predicted_ops else "") + ")")
        if breakdown:
            lines += [f"  {row['latency_us'] if row['latency_us'] is not None else '-':>10} us  {row['source']:<9}  "
                      f"{row['key']}" for row in r.breakdown]
    _emit([r.to_dict(breakdown) for r in results], as_json, "\n".join(lines))
    if any(r.latency_ms is None for r in results):
        sys.exit(1)


@main.group()
def predictor() -> None:
    """Train and inspect latency predictors for ops a LUT has not measured."""


@predictor.command("train")
@click.argument("lut_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Predictor file to write.")
@click.option("--estimator", type=click.Choice(["trees", "boosting"]), default="trees", show_default=True,
              help="Regressor per op type.")
@click.option("--folds", type=click.IntRange(2), default=5, show_default=True, help="Cross-validation folds.")
@click.option("--allow-mixed", is_flag=True,
              help="Use a LUT built from runs of different provenance ('lut build --allow-mixed').")
@click.option("--json", "as_json", is_flag=True)
def predictor_train(lut_file, output, estimator, folds, allow_mixed, as_json):
    """Fit per-op-type regressors on a LUT and report their cross-validated error."""
    import pandas as pd

    from latprof.lut import LUT
    from latprof.predictor import train_predictor

    table = LUT.load(lut_file, allow_mixed)
    trained = train_predictor(table, lut_file, estimator, folds)
    trained.save(output)
    data = {"predictor": output, "ops": len(trained.keys), "op_types": trained.model.op_types_,
            "cross_validation": trained.cross_validation}
    _emit(data, as_json, f"wrote {output}: trained on {len(trained.keys)} ops of {lut_file}\n"
                         f"held-out error ({folds}-fold cross-validation):\n"
                         + pd.DataFrame(trained.cross_validation).to_string(index=False))


@main.command()
@click.option("--json", "as_json", is_flag=True)
def devices(as_json):
    """List where latprof can measure: this computer and every phone adb sees."""
    import os
    import platform

    from latprof.devices.android import list_phones
    from latprof.devices.host import cpu_model

    host = {"serial": "host", "state": "device", "model": cpu_model(), "abilist": [platform.machine()],
            "cores": os.cpu_count()}
    phones = [phone.to_dict() for phone in list_phones()]
    lines = [f"host  {host['model']} ({host['cores']} cores)"]
    for p in phones:
        if p["state"] != "device":
            lines.append(f"{p['serial']}  {p['state']}")
            continue
        freqs = sorted({int(f) for f in p["max_khz"].values() if f.isdigit()}, reverse=True)
        lines.append(f"{p['serial']}  {p['manufacturer']} {p['model']}, {p['soc']}, {','.join(p['abilist'])}, "
                     f"Android {p['android']}, {p['cores']} cores (max {'/'.join(str(f // 1000) for f in freqs)} MHz; "
                     f"big-core mask {p['big_core_mask']}), thermal status {p['conditions'].get('thermal', '?')}")
    _emit([host, *phones], as_json, "\n".join(lines))


@main.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@device_options
@click.option("--json", "as_json", is_flag=True)
def measure(models, target, as_json):
    """Measure whole .tflite models end to end."""
    from latprof.tflite_file import read_model_bytes

    for model in models:
        read_model_bytes(model)  # a missing or truncated file stops here, before a phone is touched
    device = target.make()
    timings = device.measure_models(list(models))
    rows = [{"model": m, "latency_ms": round(t.latency_us / 1000, 4), "median_ms": round(t.median_us / 1000, 4),
             "p5_ms": round(t.p5_us / 1000, 4), "p95_ms": round(t.p95_us / 1000, 4), "runs": t.runs}
            for m, t in zip(models, timings)]
    text = "\n".join(f"{r['model']}: {r['latency_ms']:.3f} ms (all runs: median {r['median_ms']:.3f}, "
                     f"p5 {r['p5_ms']:.3f}, p95 {r['p95_ms']:.3f}, {r['runs']} runs)" for r in rows)
    _emit({"provenance": device.provenance().to_dict(), "models": rows}, as_json, text)


@main.command()
@device_options
@click.option("--seconds", default=30.0, show_default=True, type=click.FloatRange(1),
              help="How long to keep timing (at least three timings).")
@click.option("--json", "as_json", is_flag=True)
def check(target, seconds, as_json):
    """Is the device steady enough to profile? Times MobileNetV2 again and again and says how far
    apart the timings ran; run it before profile and validate."""
    from latprof.reference import DRIFT_WARNING_PCT, check_steadiness

    device = target.make()
    provenance = device.provenance()
    progress = _progress(unit="s")
    result = check_steadiness(device, _cache(), provenance.dtype, seconds,
                              progress=lambda elapsed: progress("check", int(elapsed), int(seconds)))
    data = result.to_dict()
    text = (f"{data['name']} timed {data['timings']} times in {data['seconds']:.0f} s on {provenance.device}: "
            f"median {data['median_ms']:.3f} ms, from {data['min_ms']:.3f} to {data['max_ms']:.3f} ms "
            f"({data['spread_pct']:.1f}% apart)\n")
    text += ("steady: timings agree within {tol:g}%, so a LUT profiled now is consistent" if result.steady else
             "not steady: timings ran more than {tol:g}% apart, so a LUT profiled now can be off by that much; "
             "profile when the device is idle (a phone: cool, screen off) and run check again").format(tol=DRIFT_WARNING_PCT)
    _emit({**data, "provenance": provenance.to_dict()}, as_json, text)


def _model_files(items) -> list[str]:
    """.tflite files named directly or found in named folders (sorted), refusing what is neither."""
    files = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.glob("*.tflite"))
            if not found:
                raise LatprofError(f"{path}: no .tflite files in this folder")
            files += found
        elif path.is_file():
            files.append(str(path))
        else:
            raise LatprofError(f"{path}: no such model file or folder")
    return files


@main.command()
@click.option("--lut", "lut_file", required=True, type=click.Path(dir_okay=False))
@click.option("--predictor", "predictor_file", type=click.Path(dir_okay=False),
              help="Predictor (from 'latprof predictor train') for ops the LUT lacks.")
@click.option("--random", "count", type=click.IntRange(1), help="Number of sampled architectures.")
@click.option("--seed", default=0, show_default=True)
@click.option("--space", "space_name", default="mnasnet", show_default=True)
@click.argument("model_files", metavar="[MODELS]...", nargs=-1, type=click.Path())
@click.option("--models", multiple=True, type=click.Path(),
              help="Also validate this .tflite file, or every .tflite in this folder (repeatable); more files may "
                   "follow the options, as in --models DIR/*.tflite.")
@device_options
@click.option("--settle-timeout", "settle_seconds", default=300, show_default=True, type=click.IntRange(0),
              help="When the reference networks (or, for a LUT without them, its ops), timed with the models, run "
                   "more than 3% off their LUT latency (a busy or hot device), measure the models again for up to "
                   "this many seconds after that check (three measurements at most; then the result reports the "
                   "drift); 0: never.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--allow-mixed", is_flag=True,
              help="Use a LUT built from runs of different provenance ('lut build --allow-mixed').")
@click.option("--json", "as_json", is_flag=True)
def validate(model_files, lut_file, predictor_file, count, seed, space_name, models, target, settle_seconds, out_dir,
             allow_mixed, as_json):
    """Measure sampled architectures or given models end to end and compare with the predictions."""
    from latprof.lut import LUT
    from latprof.space import get_space
    from latprof.validate import validate as run_validate

    files = _model_files((*models, *model_files))
    if not (count or files):
        raise LatprofError("say what to validate: --random N and/or --models DIR_OR_FILE")
    table = LUT.load(lut_file, allow_mixed)
    model = _load_predictor(predictor_file, table)
    archs = get_space(space_name).sample_many(count, seed) if count else []
    result = run_validate(archs, table, target.make(table, f"the LUT {lut_file}"), out_dir, _cache(), _progress(),
                          model, files, settle_seconds)
    _emit(result.to_dict(), as_json, _validation_text(result))


def _validation_text(result) -> str:
    from latprof.validate import DRIFT_WARNING_PCT, slower_or_faster, state_drift_pct

    lines = []
    if len(result.table):
        lines.append(result.table.drop(columns=["target"]).to_string(index=False))
        m = result.metrics
        lines += ["", f"{m['models']} models: MAPE {m['mape_pct']}%, within ±5%: {m['within_5_pct']}%, "
                      f"within ±10%: {m['within_10_pct']}%, Spearman {m['spearman']}",
                  f"plot: {result.plot}"]
        if "reference_drift_pct" in m:
            u = m["unpaced"]
            lines.append(f"device state check: {m['reference_networks']} reference networks, timed in the same rounds, "
                         f"ran {slower_or_faster(m['reference_drift_pct'])} than when the LUT was profiled; the "
                         "predictions above are put on that pace (predicted_now_ms)")
            lines.append(f"the LUT's own figures (predicted_ms), unpaced: MAPE {u['mape_pct']}%, within ±5%: "
                         f"{u['within_5_pct']}%, within ±10%: {u['within_10_pct']}%")
        if "lut_drift_pct" in m:
            lines.append(f"machine speed check: {m['lut_drift_ops']} of the LUT's ops, re-measured, ran "
                         f"{slower_or_faster(m['lut_drift_pct'])} than their LUT latency (IQR "
                         f"{m['lut_drift_iqr_pct'][0]:+.1f}..{m['lut_drift_iqr_pct'][1]:+.1f}%)")
        off = state_drift_pct(m)
        if m.get("measure_attempts", 1) > 1:
            lines.append(f"the models were measured {m['measure_attempts']} times; the first "
                         f"{m['measure_attempts'] - 1} were set aside (in discarded.jsonl) because the device ran more "
                         f"than {DRIFT_WARNING_PCT:g}% off its speed when the LUT was profiled")
        if off is not None and abs(off) > DRIFT_WARNING_PCT:
            lines.append("warning: this device runs at another speed than when the LUT was profiled (a busy or "
                         "throttled machine); the errors above include that drift: re-profile, or validate when it is quiet")
    if result.incomplete:
        lines.append(f"{len(result.incomplete)} architectures skipped: ops missing from the LUT "
                     "(profile them with 'latprof profile --sample N --seed S' using the same seed)")
    return "\n".join(lines)


@main.command()
@click.option("--target-ms", type=click.FloatRange(min=0, min_open=True), help="Latency target T in ms.")
@click.option("--constraint", type=click.Choice(["soft", "hard"]), default="soft", show_default=True,
              help="soft: alpha = beta = -0.07 (the paper's); hard: alpha = 0, beta = -1.")
@click.option("--alpha", type=float, help="Exponent below the target (overrides the preset).")
@click.option("--beta", type=float, help="Exponent above the target (overrides the preset).")
@click.option("--controller", type=click.Choice(list(CONTROLLERS)), default="ppo", show_default=True,
              help="ppo: MnasNet's RNN controller with NASNet's settings; ppo-tuned: PPO for a few hundred samples; "
                   "evolution: aging evolution; random; tpe and nsga2: Optuna's samplers.")
@click.option("--controller-option", "controller_option", multiple=True, metavar="KEY=VALUE",
              help="Set a hyper-parameter of the controller (repeatable); VALUE is JSON. Defaults: " + options_help())
@click.option("--objective", type=click.Choice(["reward", "pareto"]),
              help="reward: the MNAS reward; pareto: accuracy and latency as two objectives, the result is their "
                   "Pareto front (tpe, nsga2, random) [default: pareto for nsga2, else reward].")
@click.option("--latency", "latency_kind", type=click.Choice(["lut", "predictor", "measure"]), default="lut",
              show_default=True,
              help="lut: sum of the LUT's ops (missing ops are profiled on --device); predictor: the LUT, and "
                   "--predictor for ops it lacks; measure: build and measure each candidate on --device.")
@click.option("--lut", "lut_file", type=click.Path(dir_okay=False), help="LUT for --latency lut or predictor.")
@click.option("--predictor", "predictor_file", type=click.Path(dir_okay=False), help="Predictor for --latency predictor.")
@click.option("--allow-mixed", is_flag=True,
              help="Use a LUT built from runs of different provenance ('lut build --allow-mixed').")
@device_options
@click.option("--budget", default=200, show_default=True, type=click.IntRange(1), help="Candidates to train.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Candidates training at once.")
@click.option("--executor", "executor_name", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--ray-address", help="Ray cluster address (default: a local Ray).")
@click.option("--epochs", default=None, type=click.IntRange(1), help="Training epochs per candidate.")
@click.option("--train-resolution", default=None, type=click.IntRange(8), help="Training resolution (proxy task).")
@click.option("--dataset", default=None, help="'default' (embedded) or a folder of images, one subfolder per class.")
@click.option("--reject-outside", type=click.FloatRange(min=1, min_open=True),
              help="Skip training candidates whose latency is more than this factor off the target (reward 0).")
@click.option("--seed", default=0, show_default=True)
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(1))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), help="Search folder.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the search in this folder.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def search(ctx, target_ms, constraint, alpha, beta, controller, controller_option, objective, latency_kind, lut_file,
           predictor_file, allow_mixed, target, budget, workers, executor_name, ray_address, epochs, train_resolution,
           dataset, reject_outside, seed, top_k, out_dir, resume_dir, as_json):
    """Find the most accurate architecture under a latency target (MnasNet's search), resumable."""
    from dataclasses import replace

    from latprof.search.executor import make_executor
    from latprof.search.loop import SearchConfig, SearchDevice, load_config, run_search
    from latprof.search.results import summarize
    from latprof.search.reward import Reward
    from latprof.search.train import TrainSettings

    if resume_dir:
        given = [param.opts[0] for param in ctx.command.params if param.name in SEARCH_SETTINGS
                 and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise LatprofError(f"--resume continues the search with the settings in {resume_dir}; drop "
                               f"{', '.join(given)} (or start a new search with -o)")
        out_dir = resume_dir
        config = load_config(Path(resume_dir))
        table = _search_lut(config)
        device = _resumed_device(config, target, table)
    else:
        if not out_dir or target_ms is None:
            raise LatprofError("a new search needs --target-ms and -o DIR (or --resume DIR)")
        reward = Reward.preset(constraint, target_ms, alpha, beta)
        train = TrainSettings()
        train = replace(train, **{k: v for k, v in {"epochs": epochs, "resolution": train_resolution,
                                                    "dataset": dataset, "seed": seed}.items() if v is not None})
        options = parse_options(controller, controller_option)
        if objective:
            options["objective"] = objective
        make_controller(controller, [1], **options)  # a bad option is refused before the folder is made
        config = SearchConfig(target_ms=target_ms, controller=controller, controller_options=options, seed=seed,
                              alpha=reward.alpha,
                              beta=reward.beta, latency=latency_kind, lut=lut_file, predictor=predictor_file,
                              budget=budget, workers=workers, reject_outside=reject_outside, train=train,
                              allow_mixed=allow_mixed)
        table = _search_lut(config)
        device = target.make(table, f"the LUT {lut_file}")
        config = replace(config, device=SearchDevice(tuple(target.names), device.config.__dict__,
                                                     target.benchmark_binary),
                         lut_sha256=table.sha256 if table is not None else None)
    cache = _cache()
    source = _latency_source(config, table, device, cache, Path(out_dir))
    executor = make_executor(executor_name, config.workers, ray_address)
    try:
        log = run_search(out_dir, config, source, executor, resume=bool(resume_dir), progress=_search_progress())
        summary = summarize(Path(out_dir), config, source, executor, device, cache, top_k)
    finally:
        executor.shutdown()
    _emit(summary, as_json, _search_text(summary, len(log), out_dir))


# What a search folder records and a resumed search keeps: given with --resume, an error (device
# options may repeat the folder's device, see _resumed_device).
SEARCH_SETTINGS = ("target_ms", "constraint", "alpha", "beta", "controller", "controller_option", "objective",
                   "latency_kind", "lut_file", "allow_mixed",
                   "predictor_file", "budget", "workers", "epochs", "train_resolution", "dataset", "reject_outside",
                   "seed", "out_dir")


def _search_lut(config):
    """The search's LUT (None when candidates are measured), refused when the file changed since
    the search started: a resumed search must price candidates as its first part did."""
    from latprof.lut import LUT

    if config.latency == "measure":
        return None
    if not config.lut:
        raise LatprofError(f"--latency {config.latency} needs --lut LUT (build one with 'latprof profile' and "
                           "'latprof lut build')")
    if config.latency == "predictor" and not config.predictor:
        raise LatprofError("--latency predictor needs --predictor FILE (train one with 'latprof predictor train')")
    table = LUT.load(config.lut, config.allow_mixed)
    if config.lut_sha256 and table.sha256 != config.lut_sha256:
        raise LatprofError(f"{config.lut} is not the LUT this search started with (its sha256 changed); put that "
                           "LUT back, or start a new search")
    return table


def _resumed_device(config, target: DeviceChoice, table):
    """The device a search started with, rebuilt from its folder; device options may repeat what
    the folder says, not change it."""
    from dataclasses import replace

    recorded = config.device
    names = list(recorded.names)
    if target.names != ["host"] and target.names != names:
        raise LatprofError(f"this search measures on {', '.join(names)}, not {', '.join(target.names)}; drop "
                           "--device/--serial when resuming")
    for name, value in recorded.config.items():
        given = getattr(target, name)
        if given is not None and given != value:
            raise LatprofError(f"this search measures with {name} {value}; drop --{name} when resuming")
    choice = replace(target, device=names[0], serials=tuple(names) if len(names) > 1 else (),
                     benchmark_binary=target.benchmark_binary or recorded.benchmark_binary,
                     **recorded.config)
    return choice.make(table, f"the LUT {config.lut}")


def _latency_source(config, table, device, cache, out_dir: Path):
    from latprof.search.latency import LutLatency, MeasuredLatency

    if table is None:
        return MeasuredLatency(device, cache)
    model = _load_predictor(config.predictor, table) if config.latency == "predictor" else None
    return LutLatency(table, device, cache, out_dir / "lut-extra", model)


def _search_progress():
    from tqdm import tqdm

    bar = None

    def update(p) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=p.budget, initial=p.trained, desc="search", unit="candidate", file=sys.stderr,
                       leave=False, disable=None)
        bar.n = p.trained
        bar.set_postfix_str(f"best reward {p.best_reward:.4f}" if p.best_reward is not None else "")
        if p.trained >= p.budget:
            bar.close()

    return update


def _search_text(summary: dict, evaluations: int, out_dir) -> str:
    best = summary["best"]
    pareto = summary["objective"] == "pareto"
    lines = [f"{summary['trained']} candidates trained, {summary['rejected']} rejected before training "
             f"({evaluations} evaluations); log in {out_dir}/log.jsonl", "",
             f"Pareto front of accuracy and latency ({out_dir}/pareto.csv):" if pareto else "top candidates:"]
    lines += [f"  reward {r['reward']:.4f}  acc {r['accuracy']:.4f}  {r['latency_ms']:.3f} ms ({r['latency_source']})  "
              f"{r['arch']}" for r in summary["pareto_front" if pareto else "top_k"]]
    lines += ["", "references (scaled to the target, trained the same way):"]
    lines += [f"  {r['name']:<12} reward {r['reward']:.4f}  acc {r['accuracy']:.4f}  {r['latency_ms']:.3f} ms  "
              f"{r['arch'].split(':')[0]}" for r in summary["references"]]
    lines += ["", f"best model: {best['path']}: predicted {best['predicted_ms']:.3f} ms, measured "
                  f"{best['measured_ms']:.3f} ms ({best['error_pct']:+.1f}%)", f"Pareto plot: {summary['pareto_plot']}"]
    return "\n".join(lines)


@main.group("arch")
def arch_group() -> None:
    """Architectures from other tools."""


@arch_group.command("import")
@click.argument("config_file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--resolution", default=224, show_default=True, type=click.IntRange(8),
              help="Input size the network runs at (net.config files do not say).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Also write the architecture string to this file.")
@click.option("--json", "as_json", is_flag=True)
def arch_import(config_file, resolution, output, as_json):
    """Read a ProxylessNAS or OFA MobileNetV3 net.config and print its architecture string, which
    'latprof predict' reads (with an imported layer LUT, a profiled LUT or a predictor)."""
    from latprof.jsonl import write_text_atomic
    from latprof.net_config import import_net_config
    from latprof.network import Network

    arch = import_net_config(config_file, resolution)
    text, net = arch.to_string(), Network(arch)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(output), text + "\n")
    _emit({"architecture": text, "resolution": resolution, "blocks": len(arch.blocks), "layers": len(net.layers),
           "macs": net.macs, "params": net.params, "output": output}, as_json, text)


@main.command()
@click.argument("arch_text", metavar="ARCH")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help=".tflite file to write.")
@click.option("--lut", "lut_file", type=click.Path(dir_okay=False), help="Also predict its latency from this LUT.")
@device_options
@click.option("--allow-mixed", is_flag=True,
              help="Use a LUT built from runs of different provenance ('lut build --allow-mixed').")
@click.option("--json", "as_json", is_flag=True)
def export(arch_text, output, lut_file, target, allow_mixed, as_json):
    """Write an architecture as .tflite (deployment resolution) and measure it on the device."""
    from latprof.arch import Architecture
    from latprof.lut import LUT
    from latprof.search.latency import LutLatency, MeasuredLatency
    from latprof.search.results import export_model

    table = LUT.load(lut_file, allow_mixed) if lut_file else None
    device, cache = target.make(table, f"the LUT {lut_file}"), _cache()
    source = LutLatency(table, device, cache, Path(output).with_suffix(".lut-extra")) if table is not None \
        else MeasuredLatency(device, cache)
    exported = export_model(Architecture.from_string(arch_text), output, device, source, cache)
    data = {**exported.__dict__, "error_pct": round(exported.error_pct, 2), "prediction": source.name}
    _emit(data, as_json, f"wrote {output}: measured {exported.measured_ms:.3f} ms"
                         + (f", LUT predicts {exported.predicted_ms:.3f} ms ({exported.error_pct:+.1f}%)" if lut_file else ""))


@main.command()
@click.argument("names", nargs=-1)
@click.option("--family", "families", multiple=True,
              help="The catalogue's models of this family (repeatable), e.g. mobilenet_v3_small; --list shows them all.")
@click.option("--dtype", type=click.Choice(["float32", "int8"]), default="float32", show_default=True,
              help="fp32, or int8 (full-integer post-training quantization).")
@click.option("--list", "list_only", is_flag=True, help="List the models instead of writing them.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), help="Folder to write NAME.tflite files to.")
@click.option("--json", "as_json", is_flag=True)
def zoo(names, families, dtype, list_only, out_dir, as_json):
    """keras.applications mobile networks (MobileNetV1/V2/V3, EfficientNet) as .tflite files.

    NAMES are family-alpha-resolution[-minimalistic][-freebatch] (e.g. mobilenet_v2-1.4-224,
    efficientnet_b0-224; -freebatch converts with a free batch dimension, as Keras does by default);
    without NAMES or --family, the whole catalogue.  Random weights, nothing downloaded; conversions
    are cached."""
    from latprof.zoo import select, write_zoo

    models = select(names, families)
    if list_only:
        cache = _cache()
        rows = [{**model.to_dict(), "cached": cache.path(model.cache_key, dtype).is_file()} for model in models]
        _emit(rows, as_json, "\n".join(f"{r['name']}{'  (cached)' if r['cached'] else ''}" for r in rows))
        return
    if not out_dir:
        raise LatprofError("say where to write the models: -o DIR (or --list to list them)")
    progress = _progress()
    paths = write_zoo(models, out_dir, dtype, _cache(), progress=lambda done: progress("convert", done, len(models)))
    text = "\n".join([*map(str, paths.values()), f"wrote {len(paths)} models to {out_dir}; profile their ops with "
                      f"'latprof profile --models {out_dir}/*.tflite -o RUN'"])
    _emit([{"name": model.name, "path": str(path)} for model, path in paths.items()], as_json, text)


@main.command()
@click.option("-o", "--output", "out_dir", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--sample", default=6, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True)
def demo(out_dir, sample, seed):
    """The whole host workflow in one go: profile, build a LUT, predict, validate."""
    from latprof.demo import run_demo

    run_demo(Path(out_dir), sample, seed, _cache(), _progress(), click.echo)


if __name__ == "__main__":
    main()
