"""Reading what TFLite/LiteRT's ``benchmark_model`` prints: timings, echoed flags, op tables.

``benchmark_model`` is the tool users already trust for on-device latency, so latprof runs it and
reads its text output instead of timing models itself.  That text changed over the years and four
forms of it are in the wild (``GENERATIONS``).  A parser that quietly returns 0 when a line moved
poisons a latency table (nn-Meter #77), so everything that can be wrong with the output raises a
one-line ``LatprofError`` that says what was seen: no recognised timing, a zero, negative or
non-finite latency, flags the tool did not understand, an error line of the tool, a flag that ran
with another value than asked, or output cut short.

Facts from the tool's source (tensorflow/lite/tools/benchmark, now google-ai-edge/LiteRT
tflite/tools/benchmark) this module relies on:

* Each phase (warm-up, then the timed runs) follows a line "Running benchmark for at least N
  iterations ..." with one statistics line: ``count=<n> first= curr= min= max= avg= std=`` (avg is
  a double printed with six significant digits, e.g. ``avg=2.95034e+06``).  LiteRT builds append
  `` p5= median= p95=``.  When every sample is equal the line is ``count=<n> curr=<us>(all same)``
  (``count=1 curr=<us>`` for one sample), and ``count=0`` when nothing ran.
* One summary line ends the timings: "Inference timings in us: Init: .., First inference: ..,
  Warmup (avg): .., Inference (avg): .." or, in 2018-2020 tools, "Average inference timings in us:
  Warmup: .., Init: .., no stats: .." (native binary) / ".., Inference: .." (Android app).
* Flags are echoed as ``<label>: [<value>]`` right after "STARTING!" (bools as 1/0).  Tools before
  the "Log parameter values verbosely: [0]" line echo every parameter; later tools echo the
  parameters set on the command line, plus "Graph" always (``LOG_TOOL_PARAM``: verbose ||
  HasValueSet).  Either way a flag that was passed and consumed is echoed, so a passed flag
  without its echo means the output is not that of the command we ran, or is incomplete: an
  error.  A flag the tool does not know is not an error to the tool: it logs "Unconsumed cmdline
  flags: ..." and runs with its defaults, which here is an error.
* Log lines carry "INFO: "/"WARN: "/"ERROR: " prefixes in current builds and none in older ones;
  runtime errors print "ERROR: ...", and a failed run ends with "Benchmarking failed." (after the
  timings, when an invoke failed during the timed runs).
* Op profiling (tflite/profiling/profile_summarizer.cc): a delegate's node is one row (e.g.
  "TfLiteXNNPackDelegate"; the GPU and NNAPI delegates never say more).  XNNPACK since TensorFlow
  Lite 2.10 also reports each of its own operators, named ``Delegate/<operator>:<index>`` with the
  index its place in XNNPACK's run: in a "Delegate internal:" report after the regular runs' one
  (node type "DelegateOpInvoke", TensorFlow Lite 2.10-2.12) or, in later builds, as rows of the
  regular runs' table right after the delegate's row (node type the operator's name).  Which row
  comes first is not always run order (builds that sort events by start time give the operators,
  added after the delegate ran, made-up starts), so ``network_operators`` orders them by index.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from latprof import delegate_log
from latprof.delegate_log import DELEGATES, delegate_backend, require_full_delegation
from latprof.errors import LatprofError

GENERATIONS = {
    "current": "count= lines with p5/median/p95, then 'Inference timings in us: Init: .., First inference: .., "
               "Warmup (avg): .., Inference (avg): ..' (LiteRT builds)",
    "v2": "count= lines without percentiles, then the same 'Inference timings in us' line (TensorFlow Lite 2.x)",
    "old": "'Average inference timings in us: Warmup: .., Init: .., Inference: ..' (2019-2020 tools, Android app)",
    "old-nostats": "'Average inference timings in us: Warmup: .., Init: .., no stats: ..' (2018-2019 tools)",
}

# Flag -> the labels benchmark_model echoes it under, from LogParams() of benchmark_model.cc,
# benchmark_tflite_model.cc and the delegate providers (older labels after newer ones).
ECHO_LABELS: dict[str, tuple[str, ...]] = {
    "graph": ("Graph",),
    "num_runs": ("Min num runs", "Num runs"),
    "min_secs": ("Min runs duration (seconds)",),
    "max_secs": ("Max runs duration (seconds)",),
    "run_delay": ("Inter-run delay (seconds)",),
    "run_frequency": ("Number of prorated runs per second",),
    "num_threads": ("Num threads", "#threads used for CPU inference"),
    "warmup_runs": ("Min warmup runs", "Warmup runs"),
    "warmup_min_secs": ("Min warmup runs duration (seconds)",),
    "use_caching": ("Use caching",),
    "report_peak_memory_footprint": ("Report the peak memory footprint",),
    "enable_op_profiling": ("Enable op profiling",),
    "max_profiling_buffer_entries": ("Max initial profiling buffer entries", "Max profiling buffer entries"),
    "allow_fp16": ("Allow fp16",),
    "input_layer": ("Input layers",),
    "input_layer_shape": ("Input shapes",),
    "signature_to_run_for": ("Signature to run",),
    "use_xnnpack": ("Use xnnpack",),
    "use_gpu": ("Use gpu",),
    "use_nnapi": ("Use NNAPI",),
    "verbose": ("Log parameter values verbosely",),
}

MEDIAN_MIN_US = 100.0
_NUM = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"
_STAT = re.compile(
    rf"count=(?P<count>\d+)"
    rf"(?: first=(?P<first>{_NUM}) curr=(?P<curr>{_NUM}) min=(?P<min>{_NUM}) max=(?P<max>{_NUM})"
    rf" avg=(?P<avg>{_NUM}) std=(?P<std>{_NUM})| curr=(?P<same>{_NUM})(?:\(all same\))?)?"
    rf"(?: p5=(?P<p5>{_NUM}) median=(?P<median>{_NUM}) p95=(?P<p95>{_NUM}))?")
_SUMMARY = re.compile(rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
                      rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<inference>{_NUM})")
_OLD_SUMMARY = re.compile(rf"Average inference timings in us: Warmup: (?P<warmup>{_NUM}), Init: (?P<init>{_NUM}), "
                          rf"(?P<label>Inference|no stats): (?P<inference>{_NUM})")
_PHASE_HEADER = re.compile(r"Running benchmark for (?:at least )?\d+ iterations")
_PARAM = re.compile(r"(?P<label>[^\s\[\]:][^\[\]:]*?)\s*:\s*\[(?P<value>.*)\]")
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags: (?P<flags>.*)")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init=(?P<init>{_NUM}) overall=(?P<overall>{_NUM})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: (?P<peak>{_NUM})")
# Log prefixes added around the tool's own text: logcat (threadtime, brief, "I tflite  : "),
# TensorFlow's C++ logging, then the tool's severity.
_PREFIX = re.compile(
    r"(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+\S+?\s*: ?"
    r"|[VDIWEF][/ ]\s*[\w.]+\s*(?:\(\s*\d+\))?\s*: ?"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+\] )?"
    r"(?:(?P<severity>INFO|WARN|WARNING|ERROR|FATAL): )?")
# Failure lines of tools and shells that print no severity prefix.
_UNPREFIXED_FAILURE = re.compile(
    r"Benchmarking failed\.|Failed to (?!get the input model file size).*|Please specify the name of your TF Lite input.*"
    r"|CANNOT LINK EXECUTABLE.*|Aborted.*|Segmentation fault.*|Illegal instruction.*|Killed|/system/bin/sh: .*")
_OP_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_INIT_SECTION = "Profiling Info for Benchmark Initialization:"
_DELEGATE_SECTION = "Delegate internal:"
# A delegate's own operator (XNNPACK's "Delegate/Convolution (NHWC, F32) IGEMM:3"), and a delegate's
# node in the interpreter's plan ("TfLiteXNNPackDelegate", "TfLiteGpuDelegateV2", ...).
_DELEGATE_OPERATOR = re.compile(r"Delegate/(?P<operator>.+):(?P<index>\d+)")
_DELEGATE_NODE = re.compile(r"TfLite\w*Delegate\w*|DELEGATE")
_ROW_TAIL = (rf"\s+(?P<first>{_NUM})\s+(?P<avg>{_NUM})\s+(?P<pct>{_NUM})%\s+(?P<cdf>{_NUM})%\s+(?P<mem>{_NUM})"
             rf"\s+(?P<called>\d+)\s+(?P<name>\S.*)")
_ROW_WITH_START = re.compile(rf"(?P<type>\S.*?)\s+(?P<start>{_NUM}){_ROW_TAIL}")
_ROW = re.compile(rf"(?P<type>\S.*?){_ROW_TAIL}")
_FLAG_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class PhaseStats:
    """One phase's statistics line, in microseconds; None where the printed form lacks the value."""

    count: int
    first: float | None
    curr: float | None
    min: float | None
    max: float | None
    avg: float | None
    std: float | None
    p5: float | None
    median: float | None
    p95: float | None


@dataclass(frozen=True)
class OpRow:
    """One row of the "Run Order" table of the regular runs (times in ms, as printed).

    ``start_ms`` is None in the newest tables, which dropped the [start] column.  The table's
    own total is a sum of op times, not wall clock: use it to split a latency, not as one.
    ``avg_ms`` is per call; ``times_called`` is calls per run.
    """

    node_type: str
    start_ms: float | None
    first_ms: float
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int
    name: str


@dataclass(frozen=True)
class BenchmarkRun:
    """What one benchmark_model run printed, checked for consistency.

    ``params`` maps each echoed label to its raw value; ``memory`` holds ``init_mb``,
    ``overall_mb`` and ``peak_mb`` where printed; ``generation`` is a key of ``GENERATIONS``.
    ``op_profile`` is the regular runs' Run Order table, ``delegate_profile`` the one of their
    "Delegate internal:" report (empty where the tool printed none).  ``delegate_backend`` is what
    a GPU or NNAPI delegate asked for ran on, where the log says (``latprof.delegate_log``).
    """

    generation: str
    inference: PhaseStats | None
    warmup: PhaseStats | None
    init_us: float | None
    first_inference_us: float | None
    warmup_avg_us: float | None
    inference_avg_us: float
    params: dict[str, str]
    memory: dict[str, float]
    op_profile: list[OpRow]
    delegate_profile: list[OpRow] = field(default_factory=list)
    delegate_backend: str | None = None

    @property
    def latency_us(self) -> float:
        """The latency to record: the median of the timed runs where printed (robust to the odd
        slow run) unless it is too short for whole-microsecond rounding, else their mean."""
        return self._chosen()[1]

    @property
    def statistic(self) -> str:
        """Which statistic ``latency_us`` is, for provenance."""
        return self._chosen()[0]

    def _chosen(self) -> tuple[str, float]:
        # Statistics lines print whole microseconds: below MEDIAN_MIN_US the median's rounding
        # costs more than 0.5%, and the mean (printed with decimals) is the better number.
        stats = self.inference
        if stats is not None and stats.median is not None and (stats.median >= MEDIAN_MIN_US or stats.avg is None):
            return "inference median", stats.median
        if self.inference is not None and self.inference.avg is not None:
            return "inference avg", self.inference.avg
        return "summary inference avg", self.inference_avg_us


def format_flags(flags: Mapping[str, str | int | float | bool]) -> list[str]:
    """Command-line arguments for benchmark_model, e.g. {"use_xnnpack": True} -> ["--use_xnnpack=true"].

    The one place flags are spelled, so what the device runs and what the parser checks agree:
    benchmark_model only accepts ``--name=value`` (a space-separated value is an unknown flag).
    Values are not shell-quoted: quote each argument (``shlex.quote``) when it goes through a shell.
    """
    return [f"--{name}={_flag_value(name, value)}" for name, value in flags.items()]


def _flag_value(name: str, value: str | int | float | bool) -> str:
    if not _FLAG_NAME.fullmatch(name):
        raise LatprofError(f"{name!r} is not a benchmark_model flag name (lower case, digits and '_')")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str) and "\n" not in value:
        return value
    raise LatprofError(f"--{name}: {value!r} is not a value benchmark_model can take (bool, int, finite float or text)")


def parse_benchmark_output(text: str, expected: Mapping[str, str | int | float | bool] | None = None) -> BenchmarkRun:
    """Read one benchmark_model run from its output (stdout and stderr together).

    ``expected`` maps the flags passed (as given to ``format_flags``) to their values; each must
    be echoed with that value.  Raises ``LatprofError`` for anything but one complete, successful
    run with a positive, finite latency; a ``DelegateRefused`` when a delegate asked for
    (``--use_gpu=true``, ...) was rejected or did not take the whole model.
    """
    lines = [_split_prefix(line) for line in text.replace("\r", "").split("\n")]
    messages = [message for _, message in lines]
    if not any(messages):
        raise LatprofError("benchmark_model printed nothing: check that the binary runs on the device (try it with --help)")
    asked = asked_delegates(expected)
    _refuse_failures(lines, asked)
    params = _echoed_params(messages)
    if expected:
        _check_expected(params, expected)
    generation, warmup, inference, summary = _timings(messages)
    require_full_delegation(messages, asked)
    op_profile, delegate_profile = _op_profile(messages)
    run = BenchmarkRun(generation=generation, inference=inference, warmup=warmup, init_us=summary.get("init"),
                       first_inference_us=summary.get("first"), warmup_avg_us=summary.get("warmup"),
                       inference_avg_us=summary["inference"], params=params, memory=_memory(messages),
                       op_profile=op_profile, delegate_profile=delegate_profile,
                       delegate_backend=delegate_backend(messages, params, asked))
    if expected and _truthy(expected.get("enable_op_profiling", False)) and not run.op_profile:
        raise LatprofError("benchmark_model output is truncated: op profiling was asked for but its report is missing")
    _check_latency(run)
    return run


def _split_prefix(line: str) -> tuple[str | None, str]:
    """(severity or None, the tool's own text) of one output line."""
    match = _PREFIX.match(line)
    return match["severity"], line[match.end():].rstrip()


def _excerpt(text: str, limit: int = 200) -> str:
    """A line of output for a one-line message: whitespace collapsed, cut at ``limit``."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def refuse_delegate_failures(text: str, expected: Mapping[str, str | int | float | bool] | None) -> None:
    """Raise ``DelegateRefused`` when the output shows that a delegate the flags asked for was
    rejected or left ops to the CPU: for a run that failed, whose output is not parsed further."""
    lines = [_split_prefix(line)[1] for line in text.replace("\r", "").split("\n")]
    delegate_log.refuse_delegate_failures(lines, asked_delegates(expected))


def asked_delegates(expected: Mapping[str, str | int | float | bool] | None) -> list[str]:
    """The log names ("GPU", ...) of the delegates the flags turn on (``delegate_log.DELEGATES``)."""
    return [name for flag, name in DELEGATES.items() if expected and _truthy(expected.get(flag, False))]


def _refuse_failures(lines: list[tuple[str | None, str]], asked: list[str]) -> None:
    """Unknown flags first (their defaults then run silently), then a delegate asked for that was
    rejected or left ops to the CPU, then the tool's first error line."""
    for _, message in lines:
        unconsumed = _UNCONSUMED.search(message)
        if unconsumed:
            raise LatprofError(f"benchmark_model ignored flags it does not know ({unconsumed['flags'].strip()}) and ran "
                               "with its defaults; fix the flag names (--name=value) or use a binary that has them")
    delegate_log.refuse_delegate_failures([message for _, message in lines], asked)
    for severity, message in lines:
        if severity in ("ERROR", "FATAL") or (severity is None and _UNPREFIXED_FAILURE.fullmatch(message.strip())):
            raise LatprofError(f"benchmark_model failed: {_excerpt(message)}")


def _echoed_params(messages: list[str]) -> dict[str, str]:
    """Label -> raw value of the parameter echo, which precedes the first timed phase."""
    params: dict[str, str] = {}
    for message in messages:
        stripped = message.strip()
        if _PHASE_HEADER.match(stripped) or stripped.startswith("count="):
            break
        match = _PARAM.fullmatch(stripped)
        if match:
            params.setdefault(match["label"].strip(), match["value"])
    return params


def _norm(label: str) -> str:
    return " ".join(label.lower().split())


def _check_expected(params: dict[str, str], expected: Mapping[str, str | int | float | bool]) -> None:
    if not params:
        raise LatprofError("benchmark_model output echoes no parameters, so the flags it ran with cannot be checked; "
                           "pass its complete output (stdout and stderr)")
    for flag, asked in expected.items():
        labels = ECHO_LABELS.get(flag)
        if labels is None:
            raise LatprofError(f"cannot check --{flag}: latprof does not know how benchmark_model echoes it "
                               "(add its label to ECHO_LABELS)")
        wanted = {_norm(label) for label in labels}
        echoes = [(label, value) for label, value in params.items() if _norm(label) in wanted]
        asked_text = format_flags({flag: asked})[0]
        if not echoes:
            raise LatprofError(f"benchmark_model did not echo {asked_text}: the output is not that of the command "
                               "latprof ran, or is incomplete")
        for label, value in echoes:
            if not _same_value(asked, value):
                raise LatprofError(f"benchmark_model ran with '{label}: [{value}]', not {asked_text} as asked: "
                                   "this binary did not apply the flag; check its version")


def _same_value(asked: str | int | float | bool, echoed: str) -> bool:
    """Whether an echo shows the asked value (bools echo as 1/0, floats with six digits)."""
    echoed = echoed.strip()
    if isinstance(asked, str):
        if echoed == asked:
            return True
        if asked.lower() in ("true", "false"):
            asked = asked.lower() == "true"
        else:
            try:
                asked = float(asked)
            except ValueError:
                return False
    if isinstance(asked, bool):
        return echoed.lower() in (("1", "true") if asked else ("0", "false"))
    try:
        return math.isclose(float(echoed), float(asked), rel_tol=1e-5, abs_tol=1e-9)
    except ValueError:
        return False


def _truthy(value: str | int | float | bool) -> bool:
    return value.lower() in ("true", "1") if isinstance(value, str) else bool(value)


def _timings(messages: list[str]) -> tuple[str, PhaseStats | None, PhaseStats | None, dict[str, float]]:
    """(generation, warm-up, timed runs, summary values) of the single run in the output."""
    stats: list[PhaseStats] = []
    summaries: list[tuple[str, dict[str, float]]] = []
    headers = late_stats = 0
    for message in messages:
        stripped = message.strip()
        if "nference timings in us" in stripped:
            summaries.append(_summary(stripped))
        elif stripped.startswith("count="):
            if summaries:
                late_stats += 1
            else:
                stats.append(_phase(stripped))
        elif not summaries and _PHASE_HEADER.match(stripped):
            headers += 1
    if len(summaries) > 1 or late_stats or len(stats) > 2:
        raise LatprofError("benchmark_model output holds more than one run; pass the output of a single run")
    if not summaries:
        if stats or headers:
            raise LatprofError("benchmark_model output is truncated: it ends before the 'Inference timings' summary line")
        last = next((m.strip() for m in reversed(messages) if m.strip()), "")
        raise LatprofError("no inference timing recognised in benchmark_model output (expected 'count=...' and "
                           f"'Inference timings in us: ...' lines); its last line: {_excerpt(last)}")
    if headers > len(stats):
        raise LatprofError("benchmark_model output is truncated: a timed phase has no statistics line")
    generation, summary = summaries[0]
    if generation == "v2" and any(phase.count and phase.p5 is not None for phase in stats):
        generation = "current"
    inference = stats[-1] if stats else None
    warmup = stats[-2] if len(stats) == 2 else None
    return generation, warmup, inference, summary


def _summary(line: str) -> tuple[str, dict[str, float]]:
    match = _SUMMARY.search(line)
    if match:
        return "v2", {key: float(value) for key, value in match.groupdict().items()}
    match = _OLD_SUMMARY.search(line)
    if match:
        values = {key: float(match[key]) for key in ("warmup", "init", "inference")}
        return ("old" if match["label"] == "Inference" else "old-nostats"), values
    raise LatprofError(f"benchmark_model output is truncated or garbled: summary line: {_excerpt(line)}")


def _phase(line: str) -> PhaseStats:
    match = _STAT.fullmatch(line)
    if not match or (match["count"] != "0" and match["first"] is None and match["same"] is None):
        raise LatprofError(f"benchmark_model output is truncated or garbled: statistics line: {_excerpt(line)}")
    count = int(match["count"])
    if count == 0:
        return PhaseStats(0, None, None, None, None, None, None, None, None, None)
    percentiles = [None if match[key] is None else float(match[key]) for key in ("p5", "median", "p95")]
    if match["same"] is not None:  # every sample equal (or a single one): each statistic is that value
        value = float(match["same"])
        return PhaseStats(count, value, value, value, value, value, 0.0, *percentiles)
    return PhaseStats(count, *(float(match[key]) for key in ("first", "curr", "min", "max", "avg", "std")), *percentiles)


def _memory(messages: list[str]) -> dict[str, float]:
    memory: dict[str, float] = {}
    for message in messages:
        stripped = message.strip()
        footprint, peak = _MEMORY.fullmatch(stripped), _PEAK.fullmatch(stripped)
        if footprint:
            memory.update(init_mb=float(footprint["init"]), overall_mb=float(footprint["overall"]))
        elif peak:
            memory["peak_mb"] = float(peak["peak"])
        elif stripped.startswith(("Memory footprint delta", "Peak memory footprint", "Overall peak memory")):
            raise LatprofError(f"benchmark_model output is truncated or garbled: memory line: {_excerpt(stripped)}")
    return memory


def _op_profile(messages: list[str]) -> tuple[list[OpRow], list[OpRow]]:
    """The Run Order tables of the regular runs and of their "Delegate internal:" report.  Tools
    since 2020 title the regular runs' report (after an initialization report); older ones print
    the table alone after the summary."""
    stripped = [message.strip() for message in messages]
    if _OP_SECTION in stripped:
        start = stripped.index(_OP_SECTION)
    elif _INIT_SECTION in stripped:
        raise LatprofError("benchmark_model output is truncated: the op-profiling report stops after initialization")
    else:
        start = next((i for i, line in enumerate(stripped) if "== Run Order ==" in line), None)
        if start is None:
            return [], []
        start -= 1
    rows, end = _run_order_table(stripped, start)
    # The delegate's own report, when there is one, follows the regular runs' report.
    following = next((i for i in range(end, len(stripped)) if stripped[i]), None)
    if following is None or stripped[following] != _DELEGATE_SECTION:
        return rows, []
    return rows, _run_order_table(stripped, following)[0]


def _run_order_table(stripped: list[str], start: int) -> tuple[list[OpRow], int]:
    """The rows of the Run Order table of the report whose title is at ``start``, and the index
    of the line after the report's "<n> nodes observed" line."""
    header = next((i for i in range(start + 1, min(start + 4, len(stripped))) if "[node type]" in stripped[i]), None)
    if header is None:
        raise LatprofError("benchmark_model output is truncated: the op-profiling report has no Run Order table")
    pattern = _ROW_WITH_START if "[start]" in stripped[header] else _ROW
    rows, end = [], header + 1
    while end < len(stripped) and stripped[end] and not stripped[end].startswith("=="):
        match = pattern.fullmatch(stripped[end])
        if not match:
            raise LatprofError(f"benchmark_model output is truncated or garbled: op-profiling row: {_excerpt(stripped[end])}")
        rows.append(OpRow(node_type=match["type"], start_ms=float(match["start"]) if "start" in pattern.groupindex else None,
                          first_ms=float(match["first"]), avg_ms=float(match["avg"]), percent=float(match["pct"]),
                          cdf_percent=float(match["cdf"]), mem_kb=float(match["mem"]), times_called=int(match["called"]),
                          name=match["name"]))
        end += 1
    # The report ends with its totals, "Memory (bytes): ..." and "<n> nodes observed".
    totals = next((i for i in range(end, len(stripped)) if stripped[i].startswith("Timings (microseconds): ")), None)
    observed = None if totals is None else \
        next((i for i in range(totals, len(stripped)) if re.fullmatch(r"\d+ nodes observed", stripped[i])), None)
    if (not rows or totals is None or observed is None
            or not _STAT.fullmatch(stripped[totals].removeprefix("Timings (microseconds): "))):
        raise LatprofError("benchmark_model output is truncated: the op-profiling report ends early")
    return rows, observed + 1


def network_operators(run: BenchmarkRun) -> list[tuple[str, float]]:
    """What ran in one regular run, in order: each operator's name and its time per run (us).

    The names are the runtime's: XNNPACK's operators ("Convolution (NHWC, F32) IGEMM") where
    XNNPACK reports them, in the place of its delegate's node, else the interpreter's node types
    ("CONV_2D", with ``--use_xnnpack=false``): what ``latprof.attribution.attribute`` maps to a
    model's ops.  Raises a LatprofError that says why when the table cannot give per-op times: a
    delegate that reports only its own node (XNNPACK before TensorFlow Lite 2.10, the GPU and
    NNAPI delegates), or a graph split over several delegate nodes (their operators' rows cannot
    be told apart)."""
    if not run.op_profile:
        raise LatprofError("benchmark_model printed no op-profiling table; run it with --enable_op_profiling=true")
    internal = [row for row in [*run.op_profile, *run.delegate_profile] if _DELEGATE_OPERATOR.fullmatch(row.name)]
    nodes = [i for i, row in enumerate(run.op_profile) if _DELEGATE_NODE.fullmatch(row.node_type.split("/")[0])]
    if nodes and not internal:
        kinds = sorted({run.op_profile[i].node_type for i in nodes})
        raise LatprofError(f"the delegate ran the network as {len(nodes)} {' and '.join(kinds)} node"
                           f"{'s' if len(nodes) > 1 else ''} and reported no per-operator times (XNNPACK "
                           "reports its operators since TensorFlow Lite 2.10; GPU and NNAPI delegates never do): "
                           "use a newer benchmark_model, or time ops isolated (--method isolated)")
    if internal and len(nodes) != 1:
        raise LatprofError(f"the network ran as {len(nodes)} delegate nodes whose operators' rows cannot be told "
                           "apart: its ops cannot be timed inside it (time them isolated: --method isolated)")

    def time_us(row: OpRow) -> float:
        return row.avg_ms * 1000 * max(1, row.times_called)

    operators, internal_rows = [], {id(row) for row in internal}
    for index, row in enumerate(run.op_profile):
        if id(row) in internal_rows:
            continue
        if nodes and index == nodes[0]:
            ordered = sorted(internal, key=lambda r: int(_DELEGATE_OPERATOR.fullmatch(r.name)["index"]))
            operators += [(_DELEGATE_OPERATOR.fullmatch(r.name)["operator"], time_us(r)) for r in ordered]
        else:
            operators.append((row.node_type, time_us(row)))
    return operators


def _check_latency(run: BenchmarkRun) -> None:
    """Never a latency of 0: refuse empty phases, non-positive or non-finite values and a summary
    that disagrees with the statistics it summarises."""
    if run.inference is not None and run.inference.count == 0:
        raise LatprofError("benchmark_model timed 0 inference runs (count=0); check --num_runs, --min_secs and --max_secs")
    for name, value in ((run.statistic, run.latency_us), ("summary inference avg", run.inference_avg_us)):
        if not (math.isfinite(value) and value > 0):
            raise LatprofError(f"benchmark_model's {name} is {value:g} us; a latency must be positive and finite, "
                               "so this run is refused")
    avg = run.inference.avg if run.inference is not None else None
    if avg is not None and not math.isclose(avg, run.inference_avg_us, rel_tol=1e-4):
        raise LatprofError(f"benchmark_model output is inconsistent: its summary says Inference (avg) "
                           f"{run.inference_avg_us:g} us but the statistics line says avg={avg:g}")
