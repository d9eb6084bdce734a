"""The host's op-timing methods, by name and version: light enough for the CLI to list them
without importing the host device (numpy, LiteRT)."""

from __future__ import annotations

PREFIX = "litert-interleaved/"  # how a host measurement's provenance method starts
# v10 times ops where they run, inside whole networks (latprof.litert_profiler), so it profiles
# networks (--sample, --models), not single-op microbenchmarks.
IN_NETWORK = "in-network"
NETWORK_SAMPLES = 2  # v9: cold samples a round; the fastest is the round's value
# What each op sample is preceded by (MeasureSettings.sample_eviction) -> the method it makes.
# v6, v7 and v8 time bursts of ``op_burst_us`` with L2, no cache or every cache evicted before each
# sample; v9 times single invokes with the op's weights in memory, as a whole network's are.
METHODS = {
    "network": ("v9", f"the fastest of {NETWORK_SAMPLES} samples, each after evicting every cache, writing the outputs, "
                      "evicting L2, running a twin interpreter and writing the inputs"),
    "l2": ("v6", "evicted caches, then samples with L2 evicted and inputs written"),
    "none": ("v7", "evicted caches, then warm samples"),
    "llc": ("v8", "samples with all caches evicted and inputs written"),
    IN_NETWORK: ("v10", "each op's time inside whole networks, by XNNPACK's per-operator profile (LiteRT's "
                        "profiler), with each network timed whole in the same rounds"),
}
VERSIONS = sorted((version for version, _ in METHODS.values()), key=lambda version: int(version[1:]))
# The default since day 9: on days 7-9 v9's op sums were within -1.5..+4% of whole networks on
# average, v6's 9-22% under them (docs/host-measurement.md).
DEFAULT_EVICTION = "network"
DEFAULT_VERSION = METHODS[DEFAULT_EVICTION][0]


def in_network(method: str) -> bool:
    """Whether a provenance method ("litert-interleaved/v10 (...)") timed ops inside networks:
    its rows are an op's share of a network plus the invoke overhead, not microbenchmarks."""
    return sample_eviction_of(method) == IN_NETWORK


def sample_eviction_of(method: str) -> str | None:
    """The ``sample_eviction`` of a method version ("v9") or of a measurement's provenance
    method ("litert-interleaved/v9 (...)"); None for other versions and for phones' methods, so a
    LUT's method decides how the models that validate it are compared with its ops."""
    version = method.removeprefix(PREFIX).split(" ")[0]
    return next((key for key, (v, _) in METHODS.items() if v == version), None)
