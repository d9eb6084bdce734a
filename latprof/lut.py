"""The latency lookup table: per-op latencies of one device configuration, with provenance.

On disk a LUT is one JSON document (format described in ``lut/FORMAT.md``): the provenance all
its rows share, the per-invoke overhead, the run folders it came from, the reference networks'
latency when profiled (``latprof.reference``), and the table.  In memory
the table is a pandas DataFrame indexed by op key.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from latprof.devices.base import DeviceConfig
from latprof.errors import LatprofError
from latprof.jsonl import write_json
from latprof.measurement import STABLE_FLOOR_US, Provenance, known_within
from latprof.ops import OpSpec
from latprof.profiling import ISOLATED_CONTEXT, OVERHEAD_SPEC, RESIDUAL_KEY, read_run
from latprof.reference import pace_us, read_references, reference_spread_pct
from latprof.timing import method_of

# Version 2: rows of one timing method of latprof.timing, each saying how it was timed ("source").
FORMAT, VERSION = "latprof-lut", 2
COLUMNS = ["key", "op", "latency_us", "median_us", "p5_us", "p95_us", "runs", "source"]
# Where a row's latency comes from: timed inside networks, timed as a single-op model, (in an
# in-network LUT) timed as a single-op model and mapped to its time in a network by calibration,
# or read from a published table (latprof.proxyless).
IN_NETWORK_SOURCE, ISOLATED_SOURCE, CALIBRATED_SOURCE = "in-network", "isolated", "calibrated"
IMPORTED_SOURCE = "imported"
# Ops of one type timed both ways that a type needs for a ratio of its own (else all types' ratio).
MIN_CALIBRATION_PAIRS = 5
# Written when the rows have it: how sure each latency is (host runs; see lut/FORMAT.md).
UNCERTAINTY = "uncertainty_us"


@dataclass
class LUT:
    provenance: Provenance
    table: pd.DataFrame
    overhead_us: float
    sources: list[str] = field(default_factory=list)
    mixed: list[str] = field(default_factory=list)
    sha256: str = ""  # of the file it was loaded from: what a predictor trained on it records
    # Whole-model latency (us) of the reference networks, timed when the ops were: the state the
    # device was in, for validate to compare with.  Empty for imported or older LUTs.
    reference_us: dict[str, float] = field(default_factory=dict)
    reference_spread_pct: float | None = None  # how far apart the states of its profiling calls were
    # In-network LUTs with rows timed isolated: by op type, the ratio that maps an op's isolated
    # time to its time inside a network, and how many ops timed both ways it comes from.
    calibration: dict[str, dict] = field(default_factory=dict)
    _latency_of: dict[str, float] = field(default_factory=dict, init=False, repr=False, compare=False)
    _indexed: pd.DataFrame | None = field(default=None, init=False, repr=False, compare=False)

    def op_latency_us(self, spec: OpSpec) -> float | None:
        """Latency an op adds inside a model: its microbenchmark's time less the invoke overhead
        that a whole model pays only once.  None when the table lacks the op."""
        return self.row_latency_us(spec.key)

    def row_latency_us(self, key: str) -> float | None:
        """What the row ``key`` (an op, or an imported layer) adds inside a model, as above."""
        latency = self._latencies().get(key)
        return None if latency is None else max(0.0, latency - self.overhead_us)

    def _latencies(self) -> dict[str, float]:
        """The latency column as a dict, rebuilt when the table is replaced (a search grows its LUT
        by concatenation): a search looks up thousands of ops per second, and a pandas scalar
        lookup costs tens of microseconds."""
        if self._indexed is not self.table:
            self._latency_of = dict(zip(self.table.index, self.table["latency_us"].astype(float)))
            self._indexed = self.table
        return self._latency_of

    def __len__(self) -> int:
        return len(self.table)

    def device_config(self) -> DeviceConfig | None:
        """The configuration its rows were measured in, which every command measuring against it
        takes: None for a table that no latprof timing method measured (an imported one)."""
        method = method_of(self.provenance.method)
        if method is None:
            return None
        p = self.provenance
        return DeviceConfig(method=method, threads=p.threads, delegate=p.delegate, dtype=p.dtype)

    def uncertainty_summary(self, within_pct: float = 2.0) -> dict | None:
        """How many ops' latencies are known within ``within_pct`` (or ``STABLE_FLOOR_US``, the rule
        the host stops timing by), from the rows that record their
        uncertainty (None when none does: imported tables, phone runs, older LUTs)."""
        if UNCERTAINTY not in self.table.columns:
            return None
        uncertainty = pd.to_numeric(self.table[UNCERTAINTY])
        known = uncertainty.notna()
        if not known.any():
            return None
        uncertainty, latency = uncertainty[known], self.table["latency_us"][known]
        within = known_within(uncertainty, latency, within_pct)
        return {"ops": int(known.sum()), "within": int(within.sum()), "within_pct": within_pct,
                "floor_us": STABLE_FLOOR_US, "median_pct": round(float((100 * uncertainty / latency).median()), 2)}

    def save(self, path: str | Path) -> None:
        columns = [c for c in COLUMNS if c in self.table.columns or c == "key"] \
            + [UNCERTAINTY] * (UNCERTAINTY in self.table.columns)
        table = self.table.reset_index()[columns].astype(object)
        rows = table.where(table.notna(), None).values.tolist()  # an op measured without it: null
        document = {"format": FORMAT, "version": VERSION, "provenance": self.provenance.to_dict(),
                    "overhead_us": self.overhead_us, "sources": self.sources, "mixed_provenance": self.mixed,
                    "reference_us": self.reference_us, "reference_spread_pct": self.reference_spread_pct,
                    "calibration": self.calibration, "columns": columns, "rows": rows}
        write_json(path, document)

    @classmethod
    def load(cls, path: str | Path, allow_mixed: bool = False) -> LUT:
        """Read a LUT file, every value checked (a file that loads can be used by every command).
        A LUT built from runs of different provenance (``lut build --allow-mixed``) is refused
        unless ``allow_mixed``: its one provenance is its first run's, and a prediction from it
        would silently be a blend of devices or settings."""
        path = Path(path)
        if not path.is_file():
            raise LatprofError(f"{path}: no such LUT; build one with 'latprof lut build RUN_DIR -o {path}'")
        try:
            data = path.read_bytes()
            document = json.loads(data)
            if document.get("format") != FORMAT:
                raise ValueError(f"format is {document.get('format')!r}, not {FORMAT!r}")
            if document.get("version") == 1:
                raise LatprofError(f"{path}: a LUT of format 1, timed with a method this latprof no longer has; "
                                   "profile the device again with 'latprof profile' and build a new LUT from that run")
            if document.get("version") != VERSION:
                raise ValueError(f"version {document.get('version')} is not {VERSION}")
            table = _table(document["columns"], document["rows"])
            for column in ("latency_us", *STATISTICS[1:]):
                if column in table.columns:
                    table[column] = _latencies(table[column], column, positive=column == "latency_us")
            if UNCERTAINTY in table.columns:  # null where the device gives none
                known = table[UNCERTAINTY].notna()
                table[UNCERTAINTY] = pd.to_numeric(table[UNCERTAINTY], errors="coerce").astype(float)
                table.loc[known, UNCERTAINTY] = _latencies(table.loc[known, UNCERTAINTY], UNCERTAINTY, positive=False)
            overhead = _latency(document["overhead_us"], "overhead_us", positive=False)
            reference = {str(target): _latency(latency, "reference_us", positive=True)
                         for target, latency in dict(document.get("reference_us", {})).items()}
            spread = document.get("reference_spread_pct")
            spread = None if spread is None else _bounded(spread, "reference_spread_pct", 0.0, math.inf)
            # a ratio is 0 for a type whose ops take no time beyond the invoke inside a network
            calibration = {str(op): {"ratio": _bounded(c["ratio"], "a calibration ratio", 0.0, 1e6),
                                     "pairs": int(_bounded(c["pairs"], "calibration pairs", 1, 1e9))}
                           for op, c in dict(document.get("calibration", {})).items()}
            mixed = [str(line) for line in document.get("mixed_provenance", [])]
            lut = cls(Provenance.from_dict(document["provenance"]), table, overhead,
                      [str(source) for source in document.get("sources", [])], mixed,
                      hashlib.sha256(data).hexdigest(), reference, spread, calibration)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise LatprofError(f"{path}: corrupt or foreign LUT ({exc}); rebuild it with 'latprof lut build'") from None
        if mixed and not allow_mixed:
            raise LatprofError(f"{path} mixes runs of different provenance ({mixed[0]}); pass --allow-mixed to use it "
                               "anyway, or build one LUT per provenance")
        return lut


def _table(columns, rows) -> pd.DataFrame:
    """A LUT file's rows as a table indexed by op key, the shape and the text columns checked (the
    numbers are checked by the caller)."""
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns) and len(set(columns)) == len(columns)
            and {"key", "latency_us", "op"} <= set(columns)):
        raise ValueError("columns must be distinct names, key, op and latency_us among them")
    if not (isinstance(rows, list) and all(isinstance(row, list) and len(row) == len(columns) for row in rows)):
        raise ValueError(f"rows must be lists of {len(columns)} values, one per column")
    table = pd.DataFrame(rows, columns=columns).set_index("key")
    for column in ("key", "op", "source"):
        values = table.index if column == "key" else table.get(column, pd.Series(dtype=object))
        bad = [value for value in values if not (isinstance(value, str) and value)]
        if bad:
            raise ValueError(f"a row's {column} is {bad[0]!r}, not a name")
    if table.index.has_duplicates:
        raise ValueError(f"op {table.index[table.index.duplicated()][0]!r} has two rows")
    return table


def build_lut(run_dirs: list[str | Path], allow_mixed: bool = False) -> LUT:
    """Merge run folders into one LUT; refuses runs whose provenance differs unless told, and runs
    timed with a method this latprof does not have.

    An op measured in several runs gets the median of its latencies; so do the overhead and each
    reference network.  What the rows mean is in :func:`table_from_records`.
    """
    if not run_dirs:
        raise LatprofError("no run folders given")
    provenance, frames, mixed, references = None, [], [], []
    for run_dir in run_dirs:
        run, records = read_run(run_dir)
        current = Provenance.from_dict(run["provenance"])
        if method_of(current.method) is None:
            raise LatprofError(f"{run_dir} was timed with {current.method!r}, a method this latprof does not have; "
                               "profile the device again into a new folder")
        if provenance is None:
            provenance = current
        elif current != provenance:
            if not allow_mixed:
                provenance.require_same(current, f"{run_dir} (unlike {run_dirs[0]})",
                                        "build separate LUTs, or pass --allow-mixed")
            mixed.append(f"{run_dir}: {'; '.join(provenance.differences(current))}")
        if records:
            frames.append(pd.DataFrame(records))
        references += read_references(run_dir)
    if not frames:
        raise LatprofError(f"no measurements in {', '.join(map(str, run_dirs))}; run 'latprof profile' first")
    reference = pd.DataFrame(references, columns=["target", "latency_us"]).groupby("target")["latency_us"].median()
    pace = pace_us(reference.to_dict()) if len(reference) else None
    table, overhead, calibration = table_from_records(pd.concat(frames, ignore_index=True), pace)
    return LUT(provenance, table, overhead, [str(Path(d)) for d in run_dirs], mixed,
               reference_us={target: round(float(latency), 3) for target, latency in reference.items()},
               reference_spread_pct=reference_spread_pct(references), calibration=calibration)


STATISTICS = ("latency_us", "median_us", "p5_us", "p95_us")
# No op or network latency a LUT holds is longer (100 s): a larger value is a corrupt file.
MAX_LATENCY_US = 1e8


def _bounded(value, what: str, low: float, high: float) -> float:
    """``value`` as a finite float within [low, high], else a ValueError naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is {value!r}, not a number") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{what} is {value!r}, not a number within [{low:g}, {high:g}]")
    return number


def _latency(value, what: str, positive: bool) -> float:
    number = _bounded(value, what, 0.0, MAX_LATENCY_US)
    if positive and number <= 0:
        raise ValueError(f"{what} is {value!r}, not a positive latency")
    return number


def _latencies(column: pd.Series, what: str, positive: bool) -> pd.Series:
    """A column of latencies, each finite, within [0, MAX_LATENCY_US] (and > 0 if ``positive``)."""
    numbers = pd.to_numeric(column, errors="coerce").astype(float)
    bad = ~numbers.between(0.0, MAX_LATENCY_US) | (numbers <= 0 if positive else False)
    if bad.any():
        value = column[bad].iloc[0]
        value = value.item() if hasattr(value, "item") else value  # a numpy scalar, said as Python says it
        raise ValueError(f"{what} of {numbers.index[bad][0]!r} is {value!r}, not a {'positive ' if positive else ''}"
                         "latency in us")
    return numbers


def table_from_records(data: pd.DataFrame, pace: float | None = None) -> tuple[pd.DataFrame, float, dict[str, dict]]:
    """A LUT's table (one row per op key), its invoke overhead and its calibration, from the
    measurement lines of one or more runs.

    Every row means the same, whatever timed it: the op run alone, as the invoke plus the op, so
    that a network is the overhead plus each of its rows less the overhead.

    - Ops timed inside networks are shares of a network, not models that each paid an invoke:
      their rows get the overhead (one invoke, the tiny model timed whole) added.  What a network
      takes beyond the invoke and the sum of its ops goes to its ops in proportion: each share is
      scaled by its network's (network - invoke) / (sum of its ops), so that a profiled network's
      rows add up to its own whole time.  The remainder grows with the network, so one constant
      per network would overstate small ones; and it differs between networks by more than the
      whole times' noise, so one scale for all would miss each network by several percent.
    - Ops timed as single-op models in an in-network run (specs no profiled network holds) ran
      with their weights and input in the core's caches, which a network does not give them.
      The run also timed some of its networks' ops that way; per op type, the median ratio of
      their time in a network to their time alone (less the invoke) maps the others
      (:func:`calibrate`).  An op timed both ways keeps its time in a network.
    - A run of method ``isolated`` holds single-op models only: their times are the rows.

    Lines timed beside the reference networks (``pace_us``: their pace in those rounds) are put
    on the LUT's ``pace`` first, so that networks profiled in different spells of a drifting
    machine add up to one state of it (``latprof.reference.pace_us``).
    """
    data = data.copy()
    if pace is not None and "pace_us" in data:
        factor = (pace / data["pace_us"]).fillna(1.0)
        for column in (*STATISTICS, "network_us"):
            if column in data:
                data[column] = data[column] * factor
    invoke = data.loc[data["key"] == OVERHEAD_SPEC.key, "latency_us"]
    overhead = float(invoke.median()) if len(invoke) else 0.0
    if overhead <= 0:
        raise LatprofError("the runs hold no overhead measurement; re-run 'latprof profile' on them")
    networks = data["network"].notna() if "network" in data else pd.Series(False, index=data.index)
    isolated = data["context"].eq(ISOLATED_CONTEXT) if "context" in data else pd.Series(False, index=data.index)
    residual = data["key"] == RESIDUAL_KEY
    data["source"] = ISOLATED_SOURCE
    calibration: dict[str, dict] = {}
    if residual.any():  # ops timed inside networks: their shares, scaled to add up to the networks
        lines = data[residual]
        scales = (lines["network_us"] - overhead) / (lines["network_us"] - lines["latency_us"])
        if not (scales > 0).all():
            raise LatprofError("the runs' networks took less than their invoke; re-run 'latprof profile' on them")
        # A network's lines end with its residual line, so the residual lines before an op's line
        # number the network it belongs to (a network profiled in two runs is two networks); the
        # lines of a network cut short by a kill, which has no residual line, are left out.
        position = (residual.cumsum() - residual).to_numpy()
        owner = lines["network"].to_numpy()[np.minimum(position, len(lines) - 1)]
        shares = (networks & ~residual & (data["network"].to_numpy() == owner) & (position < len(lines))).to_numpy()
        for column in STATISTICS:
            data.loc[shares, column] = scales.to_numpy()[position[shares]] * data.loc[shares, column] + overhead
        data.loc[shares, "source"] = IN_NETWORK_SOURCE
        kept = (~networks | shares).to_numpy()
        data, networks, isolated = data[kept], networks[kept], isolated[kept]
    if isolated.any():
        in_network = data[networks].groupby("key")["latency_us"].median()
        alone = data[isolated]
        calibration = calibrate(alone.groupby("key").agg(op=("op", "first"), latency_us=("latency_us", "median")),
                                in_network, overhead)
        if not calibration:
            raise LatprofError("the runs timed ops alone but none of their networks' ops that way too, so there is "
                               "nothing to map them to their time in a network by; re-run 'latprof profile' on them")
        fallback = calibration["*"]["ratio"]
        ratio = alone["op"].map(lambda op: calibration.get(op, calibration["*"])["ratio"]).fillna(fallback)
        for column in STATISTICS:
            data.loc[isolated, column] = overhead + ratio * (data.loc[isolated, column] - overhead).clip(lower=0)
        data.loc[isolated, "source"] = CALIBRATED_SOURCE
        data = data[~(isolated & data["key"].isin(in_network.index))]
    aggregates = dict(op=("op", "first"), latency_us=("latency_us", "median"), median_us=("median_us", "median"),
                      p5_us=("p5_us", "min"), p95_us=("p95_us", "max"), runs=("runs", "sum"), source=("source", "first"))
    if "conditions" in data:
        data[UNCERTAINTY] = pd.to_numeric(pd.Series([c.get(UNCERTAINTY) if isinstance(c, dict) else None
                                                     for c in data["conditions"]], index=data.index, dtype=object))
        if data[UNCERTAINTY].notna().any():
            aggregates[UNCERTAINTY] = (UNCERTAINTY, "max")  # the least sure of its runs
    table = data.groupby("key").agg(**aggregates)
    return table, overhead, calibration


def calibrate(alone: pd.DataFrame, in_network: pd.Series, overhead: float) -> dict[str, dict]:
    """By op type, and over all types (``"*"``), the median of (time in a network - invoke) /
    (time alone - invoke) over the ops timed both ways, with how many there were.  A type with
    fewer than MIN_CALIBRATION_PAIRS such ops gets no ratio of its own.  Empty when no op was
    timed both ways."""
    both = alone.join(in_network.rename("in_network_us"), how="inner")
    both = both[both["latency_us"] > overhead]
    if both.empty:
        return {}
    ratios = (both["in_network_us"] - overhead) / (both["latency_us"] - overhead)
    result = {"*": {"ratio": round(float(ratios.median()), 4), "pairs": len(ratios)}}
    for op, group in ratios.groupby(both["op"]):
        if len(group) >= MIN_CALIBRATION_PAIRS:
            result[str(op)] = {"ratio": round(float(group.median()), 4), "pairs": len(group)}
    return result
