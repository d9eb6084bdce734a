#!/usr/bin/env python3
"""A stand-in for TFLite/LiteRT's ``benchmark_model`` binary, for the tests' loopback phone.

The official Android binary cannot be built or downloaded here, so the loopback phone runs this
script in its place.  It really loads and times the model with LiteRT's interpreter and prints
what the real tool prints, in the output generation chosen by ``BENCHMARK_MODEL_FORMAT``:
"current" (default; LiteRT: count= lines with p5/median/p95, "INFO: " prefixes on stdout), "v2"
(TensorFlow Lite 2.x: no percentiles, no prefixes, all on stderr), "old" and "old-nostats" (the
2019-2020 "Average inference timings in us" summaries), and "all-same" (current, with every sample
taken as the phase's median, which makes the tool print ``count=<n> curr=<us>(all same)``).

It behaves like the real tool (tensorflow/lite/tools/benchmark, google-ai-edge/LiteRT) where a
caller can tell: unknown flags are logged as "Unconsumed cmdline flags" and the run goes on with
defaults; a missing --graph, an unreadable or corrupt model, a malformed flag value and --help
print the real error text and exit 1; warm-up and timed runs follow ``BenchmarkModel::Run``
(at least N runs and at least min_secs, stopping after max_secs); inputs are rewritten before
every run, outside the timed region.  Error paths use the current tool's texts in every format.

With --enable_op_profiling=true it prints the real tool's op-profiling reports.  Where XNNPACK runs
the model, the per-operator times are real and, as in the real tool, come from the timed runs
themselves: the model then runs as LiteRT's compiled model with its profiler on
(``latprof.litert_profiler``, the host's own reader of it), each regular run timed whole and its
XNNPACK operators by the profiler.  They are printed as the real tool prints them: current builds
put a row per XNNPACK operator ("Delegate/Convolution (NHWC, F32) IGEMM:0", node type the
operator's name) after the TfLiteXNNPackDelegate row; "v2" (TensorFlow Lite 2.10-2.12) prints
them in a "Delegate internal:" report; "old" and "old-nostats" (from before XNNPACK reported its
operators) only the delegate's row.  Without XNNPACK (--use_xnnpack=false) the builtin kernels
run, which the Python API cannot profile: each run's time is then split evenly over the ops (the
real layout and total, not a per-op measurement).

It runs chrooted on the fake phone where only the Python installation is visible: standard
library, numpy and ai_edge_litert, never latprof.  ``install`` (called on the host) writes an
executable copy whose first line names the Python to run it with, and embeds the source of the
latprof modules it uses (``BUNDLED`` and what they import), which it imports from that copy.
When ``BENCHMARK_MODEL_CALL_LOG`` is set, every invocation appends its --graph value as one line
to that file, so tests can count runs; ``BENCHMARK_MODEL_UNKNOWN_FLAGS=a,b`` makes it an older
build that does not know those flags.

--use_gpu=true and --use_nnapi=true make it a phone with a GPU (OpenCL) and an NNAPI accelerator:
it logs what the real tool and the delegates log (tensorflow#43541, #56301, #57907; see
tests/captures/) and times the model on the CPU, as a phone does with what a delegate leaves.
Which ops the delegates take is the test's to say, per op type, so it differs by model:
``BENCHMARK_MODEL_UNSUPPORTED_OPS=MEAN,ADD`` (a model with some of them runs partly delegated, a
model of only those not at all); ``BENCHMARK_MODEL_DELEGATE_FAILS=1`` makes the delegate fail to
apply, as a GPU driver that cannot build its kernels does (the run then fails).
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

FORMATS = ("current", "v2", "old", "old-nostats", "all-same")
# The latprof modules the stand-in runs (LiteRT's profiler), embedded by install() with the latprof
# modules they import: module name -> source.  Empty in this file, so run from the repository it
# imports the installed latprof.
BUNDLED = ("latprof.litert_profiler",)
LATPROF_BUNDLE: dict[str, str] = {}

# name -> (type, default, usage); the subset of the real tool's flags latprof uses, in its order.
FLAGS = {
    "num_runs": (int, 50, "expected number of runs, see also min_secs, max_secs"),
    "min_secs": (float, 1.0, "minimum number of seconds to rerun for, potentially making the actual number of runs "
                             "to be greater than num_runs"),
    "max_secs": (float, 150.0, "maximum number of seconds to rerun for, potentially making the actual number of runs "
                               "to be less than num_runs"),
    "run_delay": (float, -1.0, "delay between runs in seconds"),
    "num_threads": (int, -1, "number of threads"),
    "warmup_runs": (int, 1, "minimum number of runs performed on initialization, to allow performance "
                            "characteristics to settle, see also warmup_min_secs"),
    "warmup_min_secs": (float, 0.5, "minimum number of seconds to rerun for, potentially making the actual number of "
                                    "warm-up runs to be greater than warmup_runs"),
    "graph": (str, "", "graph file name"),
    "enable_op_profiling": (bool, False, "enable op profiling"),
    "help": (bool, False, "Print out all supported flags if true."),
    "use_gpu": (bool, False, "use gpu"),
    "use_nnapi": (bool, False, "use nnapi delegate api"),
    "use_xnnpack": (bool, False, "explicitly apply the XNNPACK delegate. Note the XNNPACK delegate could be implicitly "
                                 "applied by the TF Lite runtime regardless the value of this parameter. To disable "
                                 "this implicit application, set the value to false explicitly."),
}
# Echo labels in LogParams() order: BenchmarkModel, BenchmarkTfLiteModel, then delegate providers.
ECHOES = [("num_runs", "Min num runs"), ("min_secs", "Min runs duration (seconds)"),
          ("max_secs", "Max runs duration (seconds)"), ("run_delay", "Inter-run delay (seconds)"),
          ("num_threads", "Num threads"), ("warmup_runs", "Min warmup runs"),
          ("warmup_min_secs", "Min warmup runs duration (seconds)"), ("graph", "Graph"),
          ("enable_op_profiling", "Enable op profiling"), ("num_threads", "#threads used for CPU inference"),
          ("use_gpu", "Use gpu"), ("use_nnapi", "Use NNAPI"), ("use_xnnpack", "Use xnnpack")]
# The accelerators: benchmark_model's flag -> the name its delegate provider logs, and the node
# type of the delegate's kernel in the op-profiling table.
ACCELERATORS = {"use_gpu": ("GPU", "TfLiteGpuDelegateV2"), "use_nnapi": ("NNAPI", "TfLiteNnapiDelegate")}
NNAPI_DEVICES = "loopback-npu,nnapi-reference"
TYPE_NAMES = {int: "int32", float: "float", bool: "bool", str: "string"}


class Failed(Exception):
    """The run stops here: the real tool's Run() returned an error status."""


class Log:
    """TFLITE_LOG: "INFO: "/"WARN: " on stdout and "ERROR: " on stderr in current builds, plain
    text on stderr in older ones.  Flushed per message so 2>&1 keeps the order."""

    def __init__(self, prefixed: bool):
        self.prefixed = prefixed

    def __call__(self, message: str, severity: str = "INFO") -> None:
        stream = sys.stderr if severity == "ERROR" or not self.prefixed else sys.stdout
        stream.write((f"{severity}: " if self.prefixed else "") + message + "\n")
        stream.flush()


def cpp(value) -> str:
    """A value as C++'s ostream prints it: bools as 1/0, doubles with six significant digits."""
    if isinstance(value, bool):
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_flags(argv: list[str], log: Log) -> tuple[dict, set[str], list[str]]:
    """(values, names set on the command line, unconsumed args), as Flags::Parse: each flag takes
    the first ``--name=value`` argument; everything else is left over."""
    values = {name: spec[1] for name, spec in FLAGS.items()}
    # An older build that lacks some flags: BENCHMARK_MODEL_UNKNOWN_FLAGS=name,name
    unknown = set(os.environ.get("BENCHMARK_MODEL_UNKNOWN_FLAGS", "").split(","))
    given: set[str] = set()
    left: list[str] = []
    ok = True
    for arg in argv:
        name = next((n for n in FLAGS if arg.startswith(f"--{n}=") and n not in given | unknown), None)
        if name is None:
            left.append(arg)
            continue
        given.add(name)
        kind, text = FLAGS[name][0], arg.split("=", 1)[1]
        try:
            if kind is bool:
                if text not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                values[name] = text in ("true", "1")
            else:
                values[name] = kind(text)
        except ValueError:
            log(f"Failed to parse flag '{name}' against argv '{arg}'", "ERROR")
            ok = False
    if not ok or values["help"] or left[:1] == ["--help"]:
        rows = "".join(f"\t--{n}={cpp(spec[1]) if spec[0] is not bool else str(spec[1]).lower()}\t"
                       f"{TYPE_NAMES[spec[0]]}\toptional\t{spec[2]}\n" for n, spec in FLAGS.items())
        log(f"usage: {sys.argv[0]} <flags>\nFlags:\n{rows}", "ERROR")
        raise Failed
    return values, given, left


def log_params(values: dict, given: set[str], fmt: str, log: Log) -> None:
    """Current tools echo what the command line set (and Graph always); older ones echo all."""
    if fmt not in ("old", "old-nostats"):
        log("Log parameter values verbosely: [0]")
    for name, label in ECHOES:
        if fmt in ("old", "old-nostats") or name in given or name == "graph":
            log(f"{label}: [{cpp(values[name])}]")
            if name == "use_nnapi" and values[name]:  # the NNAPI provider names the phone's accelerators
                log(f"NNAPI accelerators available: [{NNAPI_DEVICES}]")
        if name == "graph" and fmt in ("current", "all-same"):
            log("Signature to run: []")


def load(values: dict, given: set[str], log: Log):
    """The interpreter, as Init(): load, build with the op resolver --use_xnnpack implies, allocate."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # imported before the clock starts

    graph = values["graph"]
    try:
        with open(graph, "rb") as handle:
            empty = not handle.read(1)
    except OSError:
        errors = [f"Could not open '{graph}'.", "The model allocation is null/empty"]
    else:
        errors = ["mmap of size 0 requested.", "The model allocation is null/empty"] if empty else []
    # As GetOpResolver(): an explicit --use_xnnpack drops the default delegates; with true the real
    # tool then applies XNNPACK itself, which the Python API cannot, so the default one stands in.
    explicit_off = "use_xnnpack" in given and not values["use_xnnpack"]
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if explicit_off else OpResolverType.AUTO
    interpreter = None
    if not errors:
        try:
            interpreter = Interpreter(model_path=graph, num_threads=values["num_threads"] if values["num_threads"] > 0
                                      else None, experimental_op_resolver_type=resolver)
        except ValueError as exc:
            errors = [str(exc)]
    if errors:
        for error in errors:
            log(error, "ERROR")
        log(f"Failed to load model {graph}", "ERROR")
        raise Failed
    log(f"Loaded model {graph}")
    try:
        interpreter.allocate_tensors()
    except RuntimeError as exc:
        log(str(exc), "ERROR")
        log("Failed to allocate tensors!", "ERROR")
        raise Failed from None
    return interpreter


def execution_plan(interpreter, fmt: str) -> list[tuple[str, str]]:
    """(node type, name as the profiler prints it) of what runs: the model's ops, with those a
    delegate took over replaced by its node.  Names are the output tensors and the node index.
    An op is taken over when each output is the delegate's output or feeds only taken-over ops
    (and does not enter a delegate from outside)."""
    ops = interpreter._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    delegate_outputs = {int(t) for op in delegates for t in op["outputs"]}
    delegate_inputs = {int(t) for op in delegates for t in op["inputs"]}
    consumers: dict[int, list[int]] = {}
    for op in ops:
        if op["op_name"] != "DELEGATE":
            for tensor in op["inputs"]:
                consumers.setdefault(int(tensor), []).append(op["index"])
    replaced: set[int] = set()
    if delegates:
        for op in reversed([op for op in ops if op["op_name"] != "DELEGATE"]):
            if all(int(t) in delegate_outputs or (int(t) not in delegate_inputs and consumers.get(int(t))
                                                   and all(c in replaced for c in consumers[int(t)]))
                   for t in op["outputs"]):
                replaced.add(op["index"])
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    producer = {int(t): op["index"] for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    plan = []
    for op in ops:
        if op["index"] in replaced:
            continue
        delegate = op["op_name"] == "DELEGATE"
        position = producer.get(int(op["outputs"][0]), op["index"]) if delegate else op["index"]
        name = "[" + ", ".join(names.get(int(t), "") for t in op["outputs"]) + "]"
        if fmt not in ("old", "old-nostats"):
            name += f":{op['index']}"
        plan.append((position, "TfLiteXNNPackDelegate" if delegate else op["op_name"], name))
    return [entry[1:] for entry in sorted(plan)]


def apply_accelerator(interpreter, name: str, log: Log) -> bool:
    """What ModifyGraphWithDelegate and the tool log for the GPU or NNAPI delegate (``name``);
    whether it took the whole graph.  The ops it does not take are BENCHMARK_MODEL_UNSUPPORTED_OPS;
    its kernels are the stretches of consecutive ops it takes.  Raises Failed when it fails to
    apply (BENCHMARK_MODEL_DELEGATE_FAILS)."""
    runtime = Log(prefixed=True)  # the runtime's own lines carry severities in every build
    unsupported = set(filter(None, os.environ.get("BENCHMARK_MODEL_UNSUPPORTED_OPS", "").split(",")))
    ops = [op["op_name"] for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
    taken = [op not in unsupported for op in ops]
    kernels = sum(1 for i, take in enumerate(taken) if take and (i == 0 or not taken[i - 1]))
    runtime(f"Created TensorFlow Lite delegate for {name}.")
    log(f"{name} delegate created.")
    if os.environ.get("BENCHMARK_MODEL_DELEGATE_FAILS"):
        node = "TfLiteGpuDelegateV2" if name == "GPU" else "TfLiteNnapiDelegate"
        for line in ("TfLiteGpuDelegate Init: Failed to build program executable - Build program failure"
                     if name == "GPU" else "NN API returned error ANEURALNETWORKS_OP_FAILED at line 1101 while "
                     "completing NNAPI compilation.", f"Node number {len(ops)} ({node}) failed to prepare.",
                     "Restored original execution plan after delegate application failure."):
            runtime(line, "ERROR")
        log(f"Failed to apply {name} delegate.", "ERROR")
        raise Failed
    refused = list(dict.fromkeys(op for op, take in zip(ops, taken) if not take))
    if name == "GPU":
        if refused:
            split = (f"{sum(taken)} operations will run on the GPU, and the remaining {len(ops) - sum(taken)} "
                     "operations will run on the CPU." if any(taken) else
                     f"No operations will run on the GPU, and all {len(ops)} operations will run on the CPU.")
            runtime("Following operations are not supported by GPU delegate:\n"
                    + "".join(f"{op}: Operation is not supported.\n" for op in refused) + split, "ERROR")
        if kernels:
            runtime("Initialized OpenCL-based API.")
        runtime(f"Created {kernels} GPU delegate kernels.")
    else:
        for op in refused:
            runtime(f"Operator {op} (v1) refused by NNAPI delegate: Unsupported operation type.", "WARNING")
    if kernels == 1 and all(taken):
        log(f"Explicitly applied {name} delegate, and the model graph will be completely executed by the delegate.")
    elif kernels:
        log(f"Explicitly applied {name} delegate, and the model graph will be partially executed by the delegate w/ "
            f"{kernels} delegate kernels.")
    else:
        log(f"Though {name} delegate is explicitly applied, the model graph will not be executed by the delegate.")
    return kernels == 1 and all(taken)


def random_inputs(interpreter):
    """One random array per input, as CreateRandomTensorData (floats in [-0.5, 0.5])."""
    import numpy as np

    generator, arrays = np.random.default_rng(), []
    for detail in interpreter.get_input_details():
        dtype, shape = np.dtype(detail["dtype"]), detail["shape"]
        if dtype.kind == "f":
            arrays.append(generator.uniform(-0.5, 0.5, shape).astype(dtype))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            arrays.append(generator.integers(info.min, info.max, shape, dtype=dtype, endpoint=True))
        elif dtype.kind == "b":
            arrays.append(generator.integers(0, 1, shape, endpoint=True).astype(bool))
        else:
            raise Failed(f"input '{detail['name']}' of type {dtype} is not supported by this stand-in")
    return [(detail["index"], array) for detail, array in zip(interpreter.get_input_details(), arrays)]


def interpreter_step(interpreter, inputs) -> Callable[[], tuple[int, str | None]]:
    """One run of the interpreter: (its microseconds, its error or None); inputs are rewritten before
    every run, outside the timed region (ResetInputsAndOutputs)."""

    def step() -> tuple[int, str | None]:
        for index, array in inputs:
            interpreter.set_tensor(index, array)
        start = time.perf_counter_ns()
        try:
            interpreter.invoke()
        except RuntimeError as exc:
            return (time.perf_counter_ns() - start) // 1000, str(exc)
        return (time.perf_counter_ns() - start) // 1000, None

    return step


def run_phase(step: Callable[[], tuple[int, str | None]], min_runs: int, min_secs: float, max_secs: float,
              run_delay: float, fmt: str, log: Log) -> tuple[list[int], bool]:
    """BenchmarkModel::Run: (per-run microseconds, whether every invoke succeeded)."""
    if fmt in ("old", "old-nostats"):
        log(f"Running benchmark for at least {min_runs} iterations and at least {cpp(min_secs)} seconds")
    else:
        log(f"Running benchmark for at least {min_runs} iterations and at least {cpp(min_secs)} seconds but "
            f"terminate if exceeding {cpp(max_secs)} seconds.")
    samples, ok = [], True
    now = time.monotonic_ns() // 1000
    min_finish, max_finish = now + int(min_secs * 1e6), now + int(max_secs * 1e6)
    while (len(samples) < min_runs or now < min_finish) and now <= max_finish:
        elapsed, error = step()
        if error is not None:
            log(error, "ERROR")
            ok = False
        samples.append(elapsed)
        if run_delay > 0:
            time.sleep(run_delay)
        now = time.monotonic_ns() // 1000
    if fmt == "all-same" and samples:
        samples = [percentile(samples, 50)] * len(samples)
    log(stat_line(samples, percentiles=fmt in ("current", "all-same")) + "\n")
    return samples, ok


def percentile(samples: list[int], p: int) -> int:
    """StatWithPercentiles::percentile: the element at size * p / 100 (0 when empty)."""
    return sorted(samples)[len(samples) * p // 100] if samples else 0


def stat_line(samples: list[int], percentiles: bool) -> str:
    """Stat::OutputToStream (std is the truncated population deviation, avg a double)."""
    count = len(samples)
    if count == 0:
        text = "count=0"
    elif min(samples) == max(samples):
        text = f"count={count} curr={samples[-1]}" + ("(all same)" if count > 1 else "")
    else:
        avg = sum(samples) / count
        variance = int(sum(s * s for s in samples) / count - avg * avg)
        text = (f"count={count} first={samples[0]} curr={samples[-1]} min={min(samples)} max={max(samples)} "
                f"avg={cpp(avg)} std={int(math.sqrt(max(variance, 0)))}")
    if percentiles:
        text += f" p5={percentile(samples, 5)} median={percentile(samples, 50)} p95={percentile(samples, 95)}"
    return text


def rss_kb() -> int | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return None


Row = tuple[str, str, list[float]]  # (node type, name, its time in each profiled run in us)


class Bundle(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports latprof's modules from the source install() embedded (the phone has no latprof)."""

    def find_spec(self, name, path=None, target=None):
        if name not in LATPROF_BUNDLE:
            return None
        package = any(other.startswith(name + ".") for other in LATPROF_BUNDLE)
        return importlib.util.spec_from_loader(name, self, origin=f"{__file__}:{name}", is_package=package)

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        exec(compile(LATPROF_BUNDLE[module.__name__], module.__spec__.origin, "exec"), module.__dict__)


class Profiled:
    """The model as the real tool runs it with op profiling on: LiteRT's compiled model (XNNPACK),
    each regular run timed whole while LiteRT's profiler times its operators."""

    def __init__(self, graph: str, threads: int):
        if LATPROF_BUNDLE and not any(isinstance(finder, Bundle) for finder in sys.meta_path):
            sys.meta_path.insert(0, Bundle())
        from latprof.litert_profiler import ProfiledModel

        self.model = ProfiledModel(Path(graph), max(1, threads))
        self.elapsed_us = 0
        self.runs: list[list[tuple[str, float]]] = []  # per regular run: each operator and its us
        run = self.model.run

        def timed_run() -> None:  # what operator_times() runs: timed as the tool times an invoke
            start = time.perf_counter_ns()
            try:
                run()
            finally:
                self.elapsed_us = (time.perf_counter_ns() - start) // 1000

        self.model.run = timed_run

    def warmup_step(self) -> tuple[int, str | None]:
        try:
            self.model.run()
        except Exception as exc:  # noqa: BLE001 - the run failed: say so, as the tool does
            return self.elapsed_us, str(exc)
        return self.elapsed_us, None

    def profiled_step(self) -> tuple[int, str | None]:
        try:
            (operators,) = self.model.operator_times(1)
        except Exception as exc:  # noqa: BLE001
            return self.elapsed_us, str(exc)
        self.runs.append(operators)
        return self.elapsed_us, None


def even_rows(plan: list[tuple[str, str]], timed: list[int]) -> list[Row]:
    """Each run's time split evenly over the plan's nodes: the real layout and total, no per-op truth."""
    return [(node_type, name, [total // len(plan) for total in timed]) for node_type, name in plan]


def profiled_rows(plan: list[tuple[str, str]], per_run: list[list[tuple[str, float]]], fmt: str
                  ) -> tuple[list[Row], list[Row]] | None:
    """The regular runs' rows and the "Delegate internal" rows, from the profiled operators: each
    delegate node of the plan takes the next stretch of XNNPACK operators, each other node the next
    interpreter op.  None when the profile does not line up with the plan."""
    names = [name for name, _ in per_run[0]]
    if any([name for name, _ in run] != names for run in per_run):
        return None
    # Stretches of consecutive XNNPACK operators; the interpreter's ops are named by op type.
    stretches: list[list[int]] = []
    for index, name in enumerate(names):
        if re.fullmatch(r"[A-Z0-9_]+", name):
            stretches.append([index])
        elif stretches and not re.fullmatch(r"[A-Z0-9_]+", names[stretches[-1][-1]]):
            stretches[-1].append(index)
        else:
            stretches.append([index])
    if len(stretches) != len(plan):
        return None
    rows: list[Row] = []
    internal: list[Row] = []
    for (node_type, name), stretch in zip(plan, stretches):
        times = [[run[i][1] for run in per_run] for i in stretch]
        if node_type == "TfLiteXNNPackDelegate":
            if any(re.fullmatch(r"[A-Z0-9_]+", names[i]) for i in stretch):
                return None
            rows.append((node_type, name, [sum(values) for values in zip(*times)]))
            operators = [(names[i], f"Delegate/{names[i]}:{k}", values) for k, (i, values) in enumerate(zip(stretch, times))]
            if fmt == "v2":
                internal += [("DelegateOpInvoke", label, values) for _, label, values in operators]
            else:
                rows += operators
        elif len(stretch) == 1 and names[stretch[0]] == node_type:
            rows.append((node_type, name, times[0]))
        else:
            return None
    return rows, internal


def profile_report(title: str | None, rows: list[Row], fmt: str, internal: list[Row] | None = None) -> str:
    """A ProfileSummarizer report: the StatsCalculator tables (Run Order, Top by Computation Time,
    Summary by node type, totals) of ``rows``, then, when ``internal`` has rows, the same of them
    after "Delegate internal:" (TensorFlow Lite 2.10-2.12)."""
    report = (f"{title}\n" if title else "") + stats_tables(rows, fmt)
    return report + (f"Delegate internal: \n{stats_tables(internal, fmt)}" if internal else "")


def stats_tables(rows: list[Row], fmt: str) -> str:
    """One StatsCalculator's output and short summary; times are whole microseconds per run."""
    newest = fmt in ("current", "all-same")  # the tsl StatsCalculator dropped [start], widened [node type]
    width, runs = (40 if newest else 24), max(len(rows[0][2]), 1)
    share = [values for _, _, values in rows]
    grand = sum(map(sum, share)) or 1

    def field(value, size: int) -> str:
        return "\t" + (f"{value:.3f}" if isinstance(value, float) else str(value)).rjust(size)

    def header(name: str) -> str:
        start = field("[start]", 17) if not newest else ""
        return (f"============================== {name} ==============================\n{field('[node type]', width)}"
                f"{start}{field('[first]', 9)}{field('[avg ms]', 9)}{field('[%]', 8)}{field('[cdf%]', 8)}"
                f"{field('[mem KB]', 10)}{field('[times called]', 9)}\t[Name]\n")

    def table(order: list[int], limit: int = 0) -> str:
        lines, cumulative = [], 0
        for i in order[:limit or None]:
            cumulative += sum(share[i])
            start = sum(sum(share[j]) for j in range(i)) / runs / 1000.0
            lines.append(f"{field(rows[i][0], width)}{field(start, 17) if not newest else ''}"
                         f"{field(share[i][0] / 1000.0, 9)}{field(sum(share[i]) / runs / 1000.0, 9)}"
                         f"{field(sum(share[i]) * 100.0 / grand, 7)}%{field(cumulative * 100.0 / grand, 7)}%"
                         f"{field(0.0, 10)}{field(1, 9)}\t{rows[i][1]}\n")
        return "".join(lines) + "\n"

    order = list(range(len(rows)))
    by_type: dict[str, list[int]] = {}
    for i, (node_type, _, _) in enumerate(rows):
        by_type.setdefault(node_type, []).append(i)
    type_lines, cdf = [], 0.0
    for node_type, members in sorted(by_type.items(), key=lambda item: -sum(sum(share[i]) for i in item[1])):
        percent = sum(sum(share[i]) for i in members) * 100.0 / grand
        cdf += percent
        type_lines.append(f"{field(node_type, width)}{field(len(members), 9)}"
                          f"{field(sum(sum(share[i]) for i in members) / runs / 1000.0, 10)}{field(percent, 10)}%"
                          f"{field(cdf, 10)}%{field(0.0, 10)}{field(len(members), 9)}\n")
    return (header("Run Order") + table(order)
            + header("Top by Computation Time") + table(sorted(order, key=lambda i: -sum(share[i])), limit=10)
            + f"Number of nodes executed: {len(rows)}\n"
            + "============================== Summary by node type ==============================\n"
            + f"{field('[Node type]', width)}{field('[count]', 9)}{field('[avg ms]', 10)}{field('[avg %]', 11)}"
            + f"{field('[cdf %]', 11)}{field('[mem KB]', 10)}{field('[times called]', 10)}\n"
            + "".join(type_lines) + "\n"
            + f"Timings (microseconds): {stat_line([round(sum(s)) for s in zip(*share)], percentiles=False)}\n"
            + f"Memory (bytes): count=0\n{len(rows)} nodes observed\n\n")


def op_profile(plan: list[tuple[str, str]], timed: list[int], profiled: Profiled | None,
               fmt: str) -> tuple[list[Row], list[Row]]:
    """The regular runs' rows and the "Delegate internal" rows of the op-profiling report."""
    if profiled is not None and profiled.runs and profiled.runs[0]:
        rows = profiled_rows(plan, profiled.runs, fmt)
        if rows is not None:
            return rows
    return even_rows(plan, timed), []


def benchmark(argv: list[str], fmt: str, log: Log) -> None:
    """BenchmarkTfLiteModel::Run, up to the listeners' reports; raises Failed like a bad status."""
    values, given, left = parse_flags(argv, log)
    if left:
        log("Unconsumed cmdline flags: " + " ".join(left), "WARN")
    call_log = os.environ.get("BENCHMARK_MODEL_CALL_LOG")
    if call_log:
        with open(call_log, "a") as handle:
            handle.write(values["graph"] + "\n")
    if not values["graph"]:
        log("Please specify the name of your TF Lite input file with --graph", "ERROR")
        raise Failed
    log_params(values, given, fmt, log)
    import ai_edge_litert.interpreter  # noqa: F401  (its import is not part of the tool's Init time)

    start_kb, start = rss_kb(), time.monotonic_ns()
    interpreter = load(values, given, log)
    plan = execution_plan(interpreter, fmt)
    for flag, (name, node_type) in ACCELERATORS.items():
        if values[flag] and apply_accelerator(interpreter, name, log):
            plan = [(node_type, plan[-1][1])]  # the whole graph is one node of the delegate's
    delegated = sum(node_type == "TfLiteXNNPackDelegate" for node_type, _ in plan)
    if values["use_xnnpack"] and delegated:
        how = ("completely executed by the delegate" if len(plan) == 1 else
               f"partially executed by the delegate w/ {delegated} delegate kernels")
        log(f"Explicitly applied XNNPACK delegate, and the model graph will be {how}.")
    # With op profiling, XNNPACK's operators are timed in the regular runs, as the real tool does
    # since TensorFlow Lite 2.10 (older ones, "old" and "old-nostats", show the delegate's node only).
    profiled = None
    if values["enable_op_profiling"] and delegated and fmt not in ("old", "old-nostats"):
        try:
            profiled = Profiled(values["graph"], values["num_threads"])
        except Exception as exc:  # noqa: BLE001 - LiteRT refused the model
            log(str(exc), "ERROR")
            raise Failed from None
    init_us, init_kb = (time.monotonic_ns() - start) // 1000, rss_kb()
    if fmt in ("old", "old-nostats"):
        log(f"resolved reporter\nInitialized session in {cpp(init_us / 1e3)}ms")
    else:
        log(f"The input model file size (MB): {cpp(os.path.getsize(values['graph']) / 1e6)}")
        log(f"Initialized session in {cpp(init_us / 1e3)}ms.")
    step = interpreter_step(interpreter, random_inputs(interpreter))
    runs = values["max_secs"], values["run_delay"], fmt, log
    warmup, ok = run_phase(profiled.warmup_step if profiled else step, values["warmup_runs"],
                           values["warmup_min_secs"], *runs)
    if not ok:
        raise Failed
    timed, ok = run_phase(profiled.profiled_step if profiled else step, values["num_runs"], values["min_secs"], *runs)
    end_kb = rss_kb()
    warmup_avg = sum(warmup) / len(warmup) if warmup else math.nan
    timed_avg = sum(timed) / len(timed) if timed else math.nan
    if fmt in ("old", "old-nostats"):
        label = "Inference" if fmt == "old" else "no stats"
        log(f"Average inference timings in us: Warmup: {cpp(warmup_avg)}, Init: {init_us}, {label}: {cpp(timed_avg)}")
    else:
        log(f"Inference timings in us: Init: {init_us}, First inference: {warmup[0] if warmup else 0}, "
            f"Warmup (avg): {cpp(warmup_avg)}, Inference (avg): {cpp(timed_avg)}")
        if None not in (start_kb, init_kb, end_kb):
            log("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to "
                "the actual memory footprint of the model at runtime. Take the information at your discretion.")
            log(f"Memory footprint delta from the start of the tool (MB): init={cpp((init_kb - start_kb) / 1024.0)} "
                f"overall={cpp((end_kb - start_kb) / 1024.0)}")
    if values["enable_op_profiling"] and timed:  # the real profiler prints nothing it did not see
        rows, internal = op_profile(plan, timed, profiled, fmt)
        if fmt in ("old", "old-nostats"):
            log(profile_report(None, rows, fmt))
        else:
            log(profile_report("Profiling Info for Benchmark Initialization:",
                               [("AllocateTensors", "AllocateTensors/0", [init_us])], fmt))
            log(profile_report("Operator-wise Profiling Info for Regular Benchmark Runs:", rows, fmt, internal))
    if not ok:
        raise Failed


def main(argv: list[str]) -> int:
    fmt = os.environ.get("BENCHMARK_MODEL_FORMAT", "current")
    if fmt not in FORMATS:
        sys.stderr.write(f"BENCHMARK_MODEL_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}\n")
        return 2
    log = Log(prefixed=fmt in ("current", "all-same"))
    log("STARTING!")
    # A file: absent, the first run of a model is "killed" (and makes it); latprof's probe runs no model.
    killed_once = os.environ.get("BENCHMARK_MODEL_KILLED_ONCE")
    if killed_once and not os.path.exists(killed_once) and any(arg.startswith("--graph=") for arg in argv):
        open(killed_once, "w").close()
        return 137  # what the shell reports for a process the low-memory killer ended
    hang = float(os.environ.get("BENCHMARK_MODEL_HANG_SECONDS", "0"))  # a binary stuck on every model
    if hang and any(arg.startswith("--graph=") for arg in argv):
        time.sleep(hang)
    try:
        benchmark(argv, fmt, log)
    except Failed as failure:
        if failure.args:
            log(failure.args[0], "ERROR")
        log("Benchmarking failed.", "ERROR")
        return 1
    return 0


def latprof_sources(modules=BUNDLED) -> dict[str, str]:
    """The source of ``modules``, of every latprof module they import (at the top or in a
    function) and of their packages, by module name; read where this Python imports latprof from."""
    sources: dict[str, str] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in sources:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"the stand-in needs {name}, which this Python cannot import")
        sources[name] = Path(spec.origin).read_text()
        todo += [".".join(name.split(".")[:depth]) for depth in range(1, name.count(".") + 1)]
        for node in ast.walk(ast.parse(sources[name])):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                todo += [node.module] if node.module.split(".")[0] == "latprof" else []
            elif isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names if alias.name.split(".")[0] == "latprof"]
    return dict(sorted(sources.items()))


def install(dest: Path, python: str = sys.executable) -> Path:
    """Write an executable copy of this script at ``dest`` that runs with ``python`` (the phone's
    "binary"), with the latprof modules it uses embedded; returns ``dest``."""
    source = Path(__file__).read_text()
    if source.startswith("#!"):
        source = source.split("\n", 1)[1]
    empty = "LATPROF_BUNDLE: dict[str, str] = {}\n"
    assert source.count(empty) == 1, "the bundle's line moved"
    source = source.replace(empty, f"LATPROF_BUNDLE: dict[str, str] = {latprof_sources()!r}\n")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"#!{python}\n{source}")
    dest.chmod(0o755)
    return dest


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
