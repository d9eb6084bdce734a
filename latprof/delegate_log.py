"""What benchmark_model's log says about the delegate it was asked to apply.

A GPU or NNAPI delegate that takes only part of a model, or none of it, does not stop the tool:
the rest runs on the CPU and the tool prints a latency as usual, which would then be recorded
as the accelerator's (tensorflow#56301: "Though NNAPI delegate is explicitly applied, the model
graph will not be executed by the delegate", with timings after it).  So a run with
``--use_gpu=true`` or ``--use_nnapi=true`` counts only when the log says the delegate took the
whole graph; anything else raises :class:`DelegateRefused`, the model's problem on this device.

Lines this module relies on (tensorflow/lite/tools/benchmark/benchmark_tflite_model.cc, Init(),
and the GPU and NNAPI delegates; the tool logs each delegate under its provider's name):

* "Failed to apply <Name> delegate." (then "Benchmarking failed."): the delegate was rejected;
* "Explicitly applied <Name> delegate, and the model graph will be completely executed by the
  delegate." (one delegate node and nothing else in the plan), "... will be partially executed by
  the delegate w/ <n> delegate kernels.", "Though <Name> delegate is explicitly applied, the model
  graph will not be executed by the delegate.";
* the GPU delegate's own report: "Following operations are not supported by GPU delegate:" (2019
  builds: "Next operations ...") then "<OP>: <reason>" lines and "<n> operations will run on the
  GPU, and the remaining <m> operations will run on the CPU." (or "First <n> operations will run
  on the GPU, and the remaining <m> on the CPU.", "No operations will run on the GPU, ..."),
  "Created <n> GPU delegate kernels.", and the API it runs on: "Initialized OpenCL-based API." or
  "Initialized OpenGL-based API.";
* NNAPI's: "Operator <OP> (v<n>) refused by NNAPI delegate: <reason>" and the echo "NNAPI
  accelerators available: [<names>]" (nnapi-reference is Android's CPU reference implementation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from latprof.errors import LatprofError

# benchmark_model's flag of each delegate -> the name its log uses for it.  XNNPACK fails to apply
# with the same line as the others; only the accelerators leave ops to the CPU unnoticed.
DELEGATES = {"use_xnnpack": "XNNPACK", "use_gpu": "GPU", "use_nnapi": "NNAPI"}
ACCELERATORS = ("GPU", "NNAPI")

_REJECTED = re.compile(r"Failed to apply (?P<name>\w+) delegate\.?")
_COMPLETE = re.compile(r"Explicitly applied (?P<name>\w+) delegate, and the model graph will be completely executed "
                       r"by the delegate\.?")
_PARTIAL = re.compile(r"Explicitly applied (?P<name>\w+) delegate, and the model graph will be partially executed "
                      r"by the delegate w/ (?P<kernels>\d+) delegate kernels\.?")
_NONE = re.compile(r"Though (?P<name>\w+) delegate is explicitly applied, the model graph will not be executed by "
                   r"the delegate\.?")
_GPU_UNSUPPORTED = re.compile(r"(?:Following|Next) operations are not supported by GPU delegate:?")
_GPU_SPLIT = re.compile(r"(?:First )?(?P<gpu>\d+|No) operations will run on the GPU, and (?:the remaining|all) "
                        r"(?P<cpu>\d+)(?: operations)? (?:will run )?on the CPU\.?")
_GPU_KERNELS = re.compile(r"Created (?P<kernels>\d+) GPU delegate kernels\.?")
_GPU_API = re.compile(r"Initialized (?P<api>OpenCL|OpenGL)-based API\.?")
_NNAPI_REFUSED = re.compile(r"Operator (?P<op>\w+) \(v\d+\) refused by NNAPI delegate: .*")
_OP_REASON = re.compile(r"(?P<op>[A-Z][A-Z0-9_]*(?: \w+)?):(?: .*)?")
NNAPI_ACCELERATORS_LABEL = "NNAPI accelerators available"
ADVICE = ("time each op as its own model (--method isolated) and leave out the ops it does not take, or use "
          "--delegate xnnpack")


class DelegateRefused(LatprofError):
    """The delegate asked for did not run the whole model: it was rejected, or it left part or
    all of the graph to the CPU.  The model's problem on this device, not the tool's."""


def refuse_delegate_failures(messages: Sequence[str], asked: Sequence[str]) -> None:
    """Raise :class:`DelegateRefused` when the log shows that a delegate asked for (by its log
    name, ``DELEGATES``) was rejected, or that an accelerator left ops to the CPU.  Runs before
    the generic error check: the GPU delegate reports unsupported ops as ERROR lines of a run
    that goes on."""
    stripped = [message.strip() for message in messages]
    for index, line in enumerate(stripped):
        rejected = _REJECTED.fullmatch(line)
        if rejected and rejected["name"] in asked:
            # The delegate's own complaint, when it logged one before giving up.
            cause = next((other for other in stripped[:index] if "failed" in other.lower()), line)
            raise DelegateRefused(f"the phone rejected the {rejected['name']} delegate ({cause[:160]}): time this "
                                  "model with another --delegate, or leave it out")
    for name in asked:
        if name in ACCELERATORS:
            _refuse_fallback(stripped, name)


def require_full_delegation(messages: Sequence[str], asked: Sequence[str]) -> None:
    """Raise :class:`DelegateRefused` unless the log says each accelerator asked for will execute
    the model completely (a build too old to say so cannot be trusted with one)."""
    complete = {match["name"] for message in messages if (match := _COMPLETE.fullmatch(message.strip()))}
    for name in asked:
        if name in ACCELERATORS and name not in complete:
            raise DelegateRefused(f"benchmark_model never said that the {name} delegate runs the whole model "
                                  f"('Explicitly applied {name} delegate, and the model graph will be completely "
                                  "executed by the delegate.'): use a benchmark_model from TensorFlow Lite 2.4 or "
                                  "later, which says what it delegated")


def delegate_backend(messages: Sequence[str], params: Mapping[str, str], asked: Sequence[str]) -> str | None:
    """What the accelerators asked for ran on, where the log says: the GPU delegate's API
    ("GPU: OpenCL"), NNAPI's accelerators ("NNAPI: qti-gpu,nnapi-reference")."""
    parts = []
    if "GPU" in asked:
        api = next((match["api"] for m in messages if (match := _GPU_API.fullmatch(m.strip()))), None)
        parts += [f"GPU: {api}"] if api else []
    if "NNAPI" in asked and params.get(NNAPI_ACCELERATORS_LABEL):
        parts.append(f"NNAPI: {params[NNAPI_ACCELERATORS_LABEL]}")
    return "; ".join(parts) or None


def _refuse_fallback(stripped: list[str], name: str) -> None:
    """The accelerator ``name`` runs none or part of the graph: say so, with the ops it left."""
    gpu = name == "GPU"
    partial = next((m for line in stripped if (m := _PARTIAL.fullmatch(line)) and m["name"] == name), None)
    split = next((m for line in stripped if (m := _GPU_SPLIT.fullmatch(line))), None) if gpu else None
    none = any((m := _NONE.fullmatch(line)) and m["name"] == name for line in stripped) \
        or (gpu and any((m := _GPU_KERNELS.fullmatch(line)) and m["kernels"] == "0" for line in stripped)) \
        or (split is not None and split["gpu"] in ("0", "No"))
    left = _ops_left_to_cpu(stripped, name)
    detail = f"; ops it does not take: {', '.join(left)}" if left else ""
    if none:
        raise DelegateRefused(f"the {name} delegate runs none of this model, the CPU would run all of it{detail}: "
                              f"{ADVICE}")
    if partial or split or left or (gpu and any(_GPU_UNSUPPORTED.fullmatch(line) for line in stripped)):
        how = (f"{split['gpu']} ops on the GPU, {split['cpu']} on the CPU" if split else
               f"{partial['kernels']} delegate kernels, the rest on the CPU" if partial else "the rest on the CPU")
        raise DelegateRefused(f"the {name} delegate runs only part of this model ({how}{detail}), so its time would "
                              f"not be the {name}'s: {ADVICE}")


def _ops_left_to_cpu(stripped: list[str], name: str) -> list[str]:
    """The op types the delegate said it does not take, in the order it listed them."""
    if name == "NNAPI":
        ops = [match["op"] for line in stripped if (match := _NNAPI_REFUSED.fullmatch(line))]
    else:
        start = next((i for i, line in enumerate(stripped) if _GPU_UNSUPPORTED.fullmatch(line)), len(stripped))
        ops = []
        for line in stripped[start + 1:]:
            match = _OP_REASON.fullmatch(line)
            if not match or _GPU_SPLIT.fullmatch(line):
                break
            ops.append(match["op"])
    return list(dict.fromkeys(ops))
