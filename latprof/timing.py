"""How ops are timed: the one concept with two members, each versioned in the provenance.

- ``in-network`` (the default everywhere): an op's time is the runtime's own per-op profile of
  whole networks that hold it (LiteRT's profiler on the host, ``benchmark_model
  --enable_op_profiling`` on a phone), with each network also timed whole as any model is.
  Its LUT rows are an op's time in context plus the invoke overhead.
- ``isolated``: each op is a single-op model timed on its own, in steady state, as
  ``benchmark_model`` times any model.  What a device that cannot profile ops inside networks
  (a GPU or NNAPI delegate) can do; on a CPU, an op timed so runs with its weights and input in
  the core's caches, which whole networks do not give it (docs/timing.md).

A method's version changes whenever what it measures changes, so LUTs of two versions never mix.
This module is light (no numpy, no LiteRT) so that the CLI can list the methods at once.
"""

from __future__ import annotations

from latprof.errors import LatprofError

IN_NETWORK, ISOLATED = "in-network", "isolated"
VERSIONS = {IN_NETWORK: 1, ISOLATED: 1}
METHODS = tuple(VERSIONS)
DEFAULT_METHOD = IN_NETWORK
HELP = {IN_NETWORK: "ops timed inside whole networks by the runtime's own per-op profiler",
        ISOLATED: "each op a single-op model, timed on its own in steady state"}


def check_method(method: str) -> str:
    if method not in VERSIONS:
        raise LatprofError(f"unknown timing method {method!r}; use one of {', '.join(METHODS)}")
    return method


def method_tag(method: str, how: str) -> str:
    """The provenance ``method`` of a measurement: ``in-network/1 (how)``."""
    return f"{check_method(method)}/{VERSIONS[method]} ({how})"


def method_of(provenance_method: str) -> str | None:
    """The timing method a provenance ``method`` names ("in-network"), or None for a method that
    is neither (an imported table, or data of an older latprof)."""
    name = provenance_method.split("/", 1)[0]
    return name if name in VERSIONS and provenance_method.startswith(f"{name}/{VERSIONS[name]} ") else None
