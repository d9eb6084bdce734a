"""The ProxylessNAS / Once-for-All yaml LUT format: import, export, and layer-level prediction.

ProxylessNAS (Cai et al. 2019) and OFA publish per-layer phone LUTs as one YAML mapping
``key -> {count, mean, var}`` (``mean`` in ms over ``count`` runs, ``var`` in ms^2; OFA's published
tables write ``std`` in ms instead of ``var``).  Keys name whole
layers, ``TYPE-input:HxWxC-output:HxWxC[-ATTR:VALUE...]``:

- ``Conv`` (the 3x3 stride-2 stem conv), ``Conv_1`` (the 1x1 head conv), ``Logits`` (everything after
  ``Conv_1``: global pool and classifier; output ``CLASSES``);
- ``expanded_conv`` (an MBConv layer) with ``-expand:E-kernel:K-stride:S-idskip:0|1``, where E is the
  expansion ratio;
- the OFA variant adds ``-se:0|1-hs:0|1`` to ``expanded_conv`` and there E is the absolute middle
  (depthwise) width, ``se`` marks a squeeze-excite (hard-sigmoid gated) and ``hs`` h-swish
  activations; its head is ``Conv_1``, ``AvgPool2D`` (fxfxC to 1x1xC), ``Conv_2`` (1x1 feature mix,
  MobileNetV3's, latprof's ``mix``) and ``Logits-input:1x1xC``.

A latprof LUT may hold such layer rows next to op rows (``op`` is the layer type).  A layer row
stands for all the ops of that layer: predicting an architecture uses a layer's row when the LUT
has its key and the layer's ops otherwise (:func:`predict_layers`).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Container, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

import pandas as pd

from latprof.arch import SKIP_IDENTITY, SKIP_POOL, Architecture
from latprof.errors import LatprofError
from latprof.jsonl import write_text_atomic
from latprof.lut import COLUMNS, IMPORTED_SOURCE, LUT
from latprof.measurement import Provenance
from latprof.network import BLOCK, HEAD, STEM, LayerSpec, Network
from latprof.ops import OpSpec, shape_text
from latprof.predict import Prediction

PROXYLESS, OFA = "proxylessnas", "ofa"
VARIANTS = (PROXYLESS, OFA)
MBCONV = "expanded_conv"
PLAIN_TYPES = ("Conv", "Conv_1", "Conv_2", "AvgPool2D", "Logits")
LAYER_TYPES = (*PLAIN_TYPES, MBCONV)
_MBCONV_ATTRS = ("expand", "kernel", "stride", "idskip")
_OFA_ATTRS = ("se", "hs")
IMPORT_METHOD = "proxylessnas-yaml import"
# p5/p95 of an imported row: mean -/+ Z sd (the yaml has only mean and variance: a normal approximation)
_Z95 = NormalDist().inv_cdf(0.95)

Part = tuple[str | None, tuple[OpSpec, ...]]


@dataclass(frozen=True)
class LayerKey:
    """One key of the format, parsed.  ``se``/``hs`` are None in ProxylessNAS keys (0/1 in OFA's)."""

    kind: str
    input: tuple[int, ...]
    output: tuple[int, ...]
    expand: int = 0
    kernel: int = 0
    stride: int = 0
    idskip: int = 0
    se: int | None = None
    hs: int | None = None

    @property
    def text(self) -> str:
        parts = [self.kind, f"input:{shape_text(self.input)}", f"output:{shape_text(self.output)}"]
        if self.kind == MBCONV:
            parts += [f"{name}:{getattr(self, name)}" for name in _MBCONV_ATTRS]
            if self.se is not None:
                parts += [f"{name}:{getattr(self, name)}" for name in _OFA_ATTRS]
        return "-".join(parts)

    @property
    def variant(self) -> str:
        return OFA if self.se is not None or self.kind in ("AvgPool2D", "Conv_2") else PROXYLESS

    @classmethod
    def parse(cls, text: str) -> LayerKey:
        """Read a key; anything outside the grammar in this module's docstring is refused, naming it."""
        kind, *tokens = str(text).split("-")
        values: dict[str, str] = {}
        for token in tokens:
            name, colon, value = token.partition(":")
            if not colon or name in values:
                raise LatprofError(f"cannot read layer key {text!r}: bad or repeated field {token!r}")
            values[name] = value
        attrs = _MBCONV_ATTRS + (_OFA_ATTRS if "se" in values or "hs" in values else ()) if kind == MBCONV else ()
        if kind not in LAYER_TYPES or set(values) != {"input", "output", *attrs}:
            raise LatprofError(f"cannot read layer key {text!r}: supported are {', '.join(PLAIN_TYPES)} with input and "
                               f"output, and {MBCONV} with {', '.join(_MBCONV_ATTRS)}[, se, hs]")
        try:
            shapes = [tuple(int(d) for d in values[name].split("x")) for name in ("input", "output")]
            numbers = {name: int(values[name]) for name in attrs}
        except ValueError:
            raise LatprofError(f"cannot read layer key {text!r}: shapes are HxWxC or C, attributes integers") from None
        if any(len(s) not in (1, 3) or min(s) < 1 for s in shapes) or any(v < 0 for v in numbers.values()) \
                or any(numbers.get(name, 0) > 1 for name in ("idskip", *_OFA_ATTRS)):
            raise LatprofError(f"cannot read layer key {text!r}: shapes must be positive, idskip/se/hs 0 or 1")
        return cls(kind, shapes[0], shapes[1], **numbers)


def layer_parts(layer: LayerSpec, variant: str = PROXYLESS) -> list[Part] | None:
    """The format's entries for one latprof layer, each with the ops it covers; None when the layer
    cannot be written in ``variant``: regular-conv layers, pool shortcuts, and, outside the OFA
    variant, squeeze-excite, h-swish and fractional-expansion layers.  The head is two entries
    (three in OFA's, four with MobileNetV3's mix conv, which OFA calls ``Conv_2``): ``Conv_1``,
    [``AvgPool2D``, ``Conv_2``,] ``Logits``.

    OFA's ``se:1`` key does not carry the squeeze width (OFA squeezes to mid/4 rounded to 8, as
    ``_hsig`` does; MnasNet's SE to in_ch x ratio), so an SE layer and an OFA row match in
    structure, not necessarily in width; ``hs:1`` is a layer with h-swish activations.
    """
    h, o, ops = layer.size, layer.out_size, tuple(layer.ops())
    if layer.kind == STEM:
        return [(LayerKey("Conv", (h, h, layer.in_ch), (o, o, layer.out_ch)).text, ops)] \
            if (layer.kernel, layer.stride, layer.in_ch) == (3, 2, 3) else None
    if layer.kind == HEAD:
        conv, pool, mix, classifier = layer.head_parts()
        conv_1 = (LayerKey("Conv_1", (h, h, layer.in_ch), (h, h, layer.out_ch)).text, conv)
        if variant != OFA:
            return [conv_1, (LayerKey("Logits", (h, h, layer.out_ch), (layer.classes,)).text, pool + mix + classifier)]
        width = layer.mix_ch or layer.out_ch
        return [conv_1, (LayerKey("AvgPool2D", (h, h, layer.out_ch), (1, 1, layer.out_ch)).text, pool),
                *([(LayerKey("Conv_2", (1, 1, layer.out_ch), (1, 1, width)).text, mix)] if mix else []),
                (LayerKey("Logits", (1, 1, width), (layer.classes,)).text, classifier)]
    if layer.kind != BLOCK or layer.regular_conv or layer.shortcut == SKIP_POOL:
        return None
    if variant != OFA and (layer.se_ch or layer.hswish or not float(layer.expand).is_integer()):
        return None
    key = LayerKey(MBCONV, (h, h, layer.in_ch), (o, o, layer.out_ch),
                   layer.mid_ch if variant == OFA else int(layer.expand), layer.kernel, layer.stride,
                   int(layer.shortcut == SKIP_IDENTITY),
                   *((int(bool(layer.se_ch)), int(layer.hswish)) if variant == OFA else ()))
    return [(key.text, ops)]


def layer_keys(layer: LayerSpec, variant: str = PROXYLESS) -> tuple[str, ...] | None:
    """The keys a latprof layer maps to (one, or two/three for the head); None when not expressible."""
    parts = layer_parts(layer, variant)
    return None if parts is None else tuple(key for key, _ in parts)


# ---- layer rows inside a LUT ----

def layer_rows(lut: LUT) -> pd.DataFrame:
    return lut.table[lut.table["op"].isin(LAYER_TYPES)]


def keys_variant(keys) -> str:
    """OFA when any key is an OFA key, else ProxylessNAS (also for no keys)."""
    return OFA if any(LayerKey.parse(key).variant == OFA for key in keys) else PROXYLESS


def layer_terms(layer: LayerSpec, ops: tuple[OpSpec, ...], rows: Container[str], variant: str,
                row_latency_us: Callable[[str], float],
                op_latency_us: Callable[[OpSpec], float | None]) -> Iterator[tuple[str | OpSpec, float | None, str]]:
    """One layer's latency terms, ``(what, latency_us or None, source)``: the layer's row (its key) when the LUT
    has its key (``rows``), else its ops' latencies.  A layer the format expresses whose row and ops
    are both missing is one missing term under its layer key when the LUT holds layer rows (that row
    would complete it), else one per missing op.  The one rule every price of a layer LUT follows;
    ``ops`` are the layer's (``layer.ops()``, which its callers hold already), and an op term holds
    the OpSpec, not its key: building them, and keys most of all, is the slow part of pricing."""
    for key, group in (layer_parts(layer, variant) if rows else None) or [(None, ops)]:
        if key in rows:
            yield key, row_latency_us(key), "layer row"
            continue
        latencies = [op_latency_us(op) for op in group]
        if key is not None and None in latencies:
            yield key, None, "missing"
            continue
        for op, latency in zip(group, latencies):
            yield op, latency, "missing" if latency is None else "lut"


def predict_layers(arch: Architecture, lut: LUT, target: str | None = None) -> Prediction:
    """Latency of an architecture: ``overhead_us`` plus the terms of each layer (:func:`layer_terms`),
    an op's latency less the overhead, as in :mod:`latprof.predict`; ``ops`` counts the network's ops."""
    rows_index = set(layer_rows(lut).index)
    variant = keys_variant(rows_index)
    total, missing, rows, count = lut.overhead_us, [], [], 0
    for layer in Network(arch).layers:
        ops = tuple(layer.ops())
        count += len(ops)
        for what, latency, source in layer_terms(layer, ops, rows_index, variant, lut.row_latency_us, lut.op_latency_us):
            key = what if isinstance(what, str) else what.key
            if latency is None:
                missing.append(key)
            else:
                total += latency
            rows.append({"key": key, "latency_us": latency, "source": source})
    missing = list(dict.fromkeys(missing))
    return Prediction(target or arch.to_string(), None if missing else round(total / 1000, 4), count, total / 1000,
                      missing, rows)


def layer_prediction(target: str, lut: LUT) -> Prediction | None:
    """:func:`predict_layers` for an architecture target when the LUT holds layer rows; None
    otherwise (a .tflite file, or an op-only LUT), which leaves the op-level prediction."""
    if target.endswith(".tflite"):
        return None
    try:
        if Path(target).is_file():
            return None
    except OSError:  # a long block string is no file name
        pass
    return arch_layer_prediction(Architecture.from_string(target), lut)


def arch_layer_prediction(arch: Architecture, lut: LUT) -> Prediction | None:
    """:func:`predict_layers` when the LUT holds layer rows, else None (op rows only)."""
    return None if layer_rows(lut).empty else predict_layers(arch, lut, arch.to_string())


# ---- import ----

def read_yaml(path: str | Path) -> dict[str, dict]:
    """The entries of a yaml LUT, checked: ``{canonical key: {"count": int, "mean": ms, "var": ms^2}}``.

    An entry gives its spread as ``var`` (ms^2, ProxylessNAS' tables) or ``std`` (ms, OFA's
    published ones); a ``std`` is read as its square."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LatprofError(f"{path}: no such file")
    try:
        document = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LatprofError(f"{path}: not valid YAML{line} ({problem})") from None
    if not isinstance(document, dict) or not document:
        found = "nothing" if document is None else f"an empty {type(document).__name__}" if not document \
            else f"a {type(document).__name__}"
        raise LatprofError(f"{path}: not a ProxylessNAS/OFA LUT: expected a mapping key -> {{count, mean, var|std}}, "
                           f"found {found}")
    entries = {}
    for key, value in document.items():
        try:
            text = LayerKey.parse(key).text
        except LatprofError as exc:
            raise LatprofError(f"{path}: {exc}") from None
        entries[text] = _checked_entry(path, key, value)
    return entries


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked_entry(path: Path, key, value) -> dict:
    spread = next((name for name in ("var", "std") if isinstance(value, dict) and set(value) == {"count", "mean", name}),
                  None)
    if spread is None:
        found = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        raise LatprofError(f"{path}: entry {key!r} must be {{count, mean, var}} or {{count, mean, std}}, found {found}")
    count, mean, deviation = value["count"], value["mean"], value[spread]
    if not _number(mean) or mean <= 0:
        raise LatprofError(f"{path}: entry {key!r} has mean {mean!r}; a latency must be a positive number of ms")
    if not (_number(count) and count == int(count) and count >= 1) or not (_number(deviation) and deviation >= 0):
        raise LatprofError(f"{path}: entry {key!r} needs a count >= 1 (got {count!r}) and a {spread} >= 0 "
                           f"(got {deviation!r})")
    return {"count": int(count), "mean": float(mean), "var": float(deviation) ** (2 if spread == "std" else 1)}


def import_yaml(path: str | Path, device: str | None = None, hardware: str | None = None,
                runtime: str = "unknown (imported)", threads: int = 1, delegate: str = "unknown",
                dtype: str = "float32") -> LUT:
    """A latprof LUT of layer rows from a yaml LUT.

    ``overhead_us`` is 0: the format's entries are what each layer adds to a network, and its tools
    predict a network as the plain sum of its entries; 0 keeps that sum (an invoke overhead, if the
    publisher timed each layer as its own model, is then counted once per entry, as they count it).
    The runtime binary is unknown, so ``binary_sha256`` identifies the table: the yaml file's sha256.
    Latencies are kept to 1e-6 us, so that export and import again give the same rows.
    """
    path = Path(path)
    entries = read_yaml(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = []
    for key, entry in entries.items():
        latency = round(entry["mean"] * 1000, 6)
        spread = _Z95 * math.sqrt(entry["var"]) * 1000
        rows.append([key, key.split("-", 1)[0], latency, latency, round(max(0.0, latency - spread), 6),
                     round(latency + spread, 6), entry["count"], IMPORTED_SOURCE])
    table = pd.DataFrame(rows, columns=COLUMNS).set_index("key")
    origin = f"imported from {path.name}"
    details = {"source_file": path.name, "source_sha256": digest, "entries": len(entries),
               "entries_by_type": dict(sorted(Counter(table["op"]).items())), "variant": keys_variant(entries),
               "var_ms2": {key: entry["var"] for key, entry in entries.items()}}
    provenance = Provenance(device or origin, hardware or origin, runtime, digest, threads, delegate, dtype,
                            IMPORT_METHOD, details)
    return LUT(provenance, table, 0.0, [str(path)])


# ---- export ----

@dataclass
class ExportSummary:
    path: str
    variant: str
    entries: int
    from_layer_rows: int
    from_ops: int
    layers: int
    not_expressible: int
    incomplete: int
    not_positive: int
    conflicting: int

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        skipped = [f"{n} {what}" for n, what in (
            (self.not_expressible, "layers the format cannot express (regular conv, pool shortcut; SE, h-swish outside ofa)"),
            (self.incomplete, "entries whose ops the LUT lacks"),
            (self.not_positive, "entries adding nothing beyond the invoke overhead"),
            (self.conflicting, "keys another layer gave another value (the first kept)")) if n]
        return (f"wrote {self.path}: {self.entries} {self.variant} entries ({self.from_layer_rows} layer rows, "
                f"{self.from_ops} summed from ops; {self.layers} layers considered)"
                + (f"; skipped {', '.join(skipped)}" if skipped else ""))


def _var_ms2(lut: LUT, key: str, ops: tuple[OpSpec, ...] = ()) -> float:
    """A layer row's imported variance, else one from p5/p95 (normal approximation, ops independent)."""
    imported = lut.provenance.details.get("var_ms2", {})
    if not ops and key in imported:
        return float(imported[key])
    keys = [op.key for op in ops] or [key]
    spreads = (lut.table.loc[keys, "p95_us"] - lut.table.loc[keys, "p5_us"]) / (2 * _Z95) / 1000
    return float((spreads.fillna(0) ** 2).sum())


def export_entries(lut: LUT, layers, variant: str = PROXYLESS) -> tuple[dict[str, dict], dict[str, int]]:
    """Yaml entries of a LUT: every layer row as it is, plus an entry per layer of ``layers`` the
    format can express and whose ops are all in the LUT.

    An entry's mean is what it adds to a network under latprof's model (latency less the invoke
    overhead, summed over its ops); the stem's ``Conv`` entry also carries the overhead, which a
    network pays once and every network has one stem, so a network's entries sum to latprof's
    prediction.  count is the fewest runs of its ops; var the sum of the ops' variances from p5/p95.
    """
    entries: dict[str, dict] = {}
    counts = Counter()

    def mean_ms(key: str, added_us: float) -> float:
        return round((added_us + (lut.overhead_us if key.startswith("Conv-") else 0.0)) / 1000, 9)

    rows = layer_rows(lut)
    for key, row in rows.iterrows():
        entries[key] = {"count": int(row["runs"]), "mean": mean_ms(key, lut.row_latency_us(key)), "var": _var_ms2(lut, key)}
    counts["from_layer_rows"] = len(rows)
    for layer in sorted(set(layers), key=repr):
        counts["layers"] += 1
        parts = layer_parts(layer, variant)
        if parts is None:
            counts["not_expressible"] += 1
            continue
        for key, ops in parts:
            if key in rows.index:  # the row is what predictions use
                continue
            latencies = [lut.op_latency_us(op) for op in ops]
            if None in latencies:
                counts["incomplete"] += 1
                continue
            entry = {"count": int(lut.table.loc[[op.key for op in ops], "runs"].min()),
                     "mean": mean_ms(key, sum(latencies)), "var": _var_ms2(lut, key, ops)}
            if entry["mean"] <= 0:
                counts["not_positive"] += 1
            elif key in entries:
                counts["conflicting"] += entries[key]["mean"] != entry["mean"]
            else:
                entries[key] = entry
                counts["from_ops"] += 1
    return entries, counts


def export_yaml(lut: LUT, path: str | Path, layers, variant: str = PROXYLESS) -> ExportSummary:
    """Write ``export_entries`` as a yaml LUT (sorted keys, block style, like the published files)."""
    import yaml

    if variant not in VARIANTS:
        raise LatprofError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    entries, counts = export_entries(lut, layers, variant)
    if not entries:
        raise LatprofError(f"nothing to export: the LUT has no layer rows and no layer of the {counts['layers']} asked "
                           "for has all its ops in it (profile them, e.g. 'latprof profile --all', or pass --arch)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(entries, default_flow_style=False, sort_keys=True))
    return ExportSummary(str(path), variant, len(entries), counts["from_layer_rows"], counts["from_ops"],
                         counts["layers"], counts["not_expressible"], counts["incomplete"], counts["not_positive"],
                         counts["conflicting"])


def export_layers(space_name: str | None = "mnasnet", archs=()) -> set[LayerSpec]:
    """The layers an export considers: those of a search space and of some architectures."""
    from latprof.space import get_space

    layers = set(get_space(space_name).unique_layers()) if space_name else set()
    for arch in archs:
        layers.update(Network(arch if isinstance(arch, Architecture) else Architecture.from_string(arch)).layers)
    return layers
