"""ProxylessNAS and Once-for-All ``net.config`` files as latprof architectures.

Both publish their networks as JSON (``net.config``): a ``first_conv``, a list of ``blocks`` and a
head.  ProxylessNAS' are MobileNetV2-like: each block a ``MobileInvertedResidualBlock`` of a
``mobile_inverted_conv`` (``MBInvertedConvLayer``: in/out channels, kernel, stride, expand ratio;
a ``ZeroLayer`` where the search dropped the layer) and a ``shortcut`` (``IdentityLayer`` or
null), then a 1x1 ``feature_mix_layer`` and a linear ``classifier``.  OFA's MobileNetV3 ones have
``ResidualBlock``s of a ``conv`` (``MBConvLayer``, adding ``mid_channels``, ``act_func`` relu or
h_swish and ``use_se``), a ``final_expand_layer`` (the 1x1 conv before the pool) and, after the
pool, the ``feature_mix_layer`` (MobileNetV3's mix conv) and the classifier.  OFA's squeeze-excite
squeezes to make_divisible(mid // 4, 8) and gates with a hard sigmoid: latprof's ``_se0.25_hsig``.

The configs carry no input size (OFA's tables time each network at one), so the importer takes
it.  ReLU6 layers (ProxylessNAS) become latprof's ReLU layers: the same ops but the clip, fused
into the conv alike, and the same keys in the yaml LUTs of either format.  The result is a plain
architecture string, which ``latprof predict`` reads like any other.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from latprof.arch import SKIP_IDENTITY, SKIP_NONE, Architecture, Block
from latprof.errors import LatprofError
from latprof.network import expanded_width

_MBCONV_NAMES = ("MBInvertedConvLayer", "MBConvLayer")
_ACTIVATIONS = {"relu": False, "relu6": False, "h_swish": True}


class _Config:
    """One config dict being read, so that every complaint names the file and the field."""

    def __init__(self, source: str, data, where: str):
        if not isinstance(data, dict):
            raise LatprofError(f"{source}: {where} must be an object, found {type(data).__name__}; "
                               "is this a ProxylessNAS/OFA net.config?")
        self.source, self.data, self.where = source, data, where

    def error(self, problem: str) -> LatprofError:
        return LatprofError(f"{self.source}: {self.where}: {problem}")

    def int(self, name: str) -> int:
        value = self.data.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(f"{name} must be an integer >= 1, found {value!r}")
        return value

    def child(self, name: str) -> _Config:
        if name not in self.data:
            raise self.error(f"no {name!r}; is this a ProxylessNAS/OFA net.config?")
        return _Config(self.source, self.data[name], f"{self.where}.{name}" if self.where != "config" else name)

    def hswish(self, default: str = "relu") -> bool:
        act = self.data.get("act_func") or default
        if act not in _ACTIVATIONS:
            raise self.error(f"act_func {act!r} is not one latprof builds ({', '.join(_ACTIVATIONS)})")
        return _ACTIVATIONS[act]


def read_config(path: str | Path) -> dict:
    """The JSON object of a net.config file."""
    path = Path(path)
    if not path.is_file():
        raise LatprofError(f"{path}: no such file; pass a ProxylessNAS/OFA net.config")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LatprofError(f"{path}: not a JSON net.config ({str(exc).splitlines()[0]})") from None
    return data


def architecture(data, resolution: int = 224, source: str = "net.config") -> Architecture:
    """A ProxylessNAS or OFA MobileNetV3 net.config (its parsed JSON) at ``resolution``."""
    config = _Config(source, data, "config")
    first = config.child("first_conv")
    if (first.int("in_channels"), first.int("kernel_size"), first.int("stride")) != (3, 3, 2):
        raise first.error("latprof's stem is a 3x3 stride-2 conv of the RGB image (in_channels 3)")
    stem, hswish = first.int("out_channels"), first.hswish()
    blocks_data = config.data.get("blocks")
    if not isinstance(blocks_data, list) or not blocks_data:
        raise config.error("'blocks' must be a non-empty list of blocks")
    blocks, channels = [], stem
    for index, block_data in enumerate(blocks_data):
        block = _block(_Config(source, block_data, f"blocks[{index}]"), channels)
        if block is not None:
            blocks, channels = _append(blocks, block), block.out_filters
    if not blocks:
        raise config.error("every block is a ZeroLayer: there is no network to import")
    head, mix = _head(config, channels, hswish)
    classifier = config.child("classifier")
    if classifier.int("in_features") != (mix or head):
        raise classifier.error(f"in_features {classifier.data['in_features']} != the {mix or head} channels before it")
    try:
        arch = Architecture(tuple(blocks), resolution, 1.0, stem, head, classifier.int("out_features"), mix, hswish)
    except LatprofError as exc:
        raise LatprofError(f"{source}: {exc}") from None
    for width in (stem, *(b.out_filters for b in blocks)):
        if arch.filters(width) != width:
            raise config.error(f"{width} channels: latprof's widths are multiples of 8 (its width rounding would "
                               f"make them {arch.filters(width)})")
    return arch


def import_net_config(path: str | Path, resolution: int = 224) -> Architecture:
    """``architecture`` of a net.config file."""
    return architecture(read_config(path), resolution, str(path))


def _block(block: _Config, channels: int) -> Block | None:
    """One layer as a one-layer block; None for a ZeroLayer (the search dropped the layer)."""
    conv_name = "conv" if "conv" in block.data else "mobile_inverted_conv"
    if block.data.get(conv_name) is None or (isinstance(block.data[conv_name], dict)
                                             and block.data[conv_name].get("name") == "ZeroLayer"):
        return None
    conv = block.child(conv_name)
    if conv.data.get("name") not in _MBCONV_NAMES:
        raise conv.error(f"layer {conv.data.get('name')!r} is not one latprof imports ({', '.join(_MBCONV_NAMES)})")
    cin, cout, kernel, stride = conv.int("in_channels"), conv.int("out_channels"), conv.int("kernel_size"), \
        conv.int("stride")
    if cin != channels:
        raise conv.error(f"in_channels {cin} != the {channels} channels the layer before gives")
    if stride not in (1, 2):
        raise conv.error(f"stride {stride}: latprof's layers stride 1 or 2")
    mid = _mid_channels(conv, cin)
    if mid < cin:
        raise conv.error(f"mid_channels {mid} < in_channels {cin}: an inverted residual expands")
    expand: float = mid // cin if mid % cin == 0 else float(f"{mid / cin:.6g}")
    if expanded_width(cin, expand) != mid:
        raise conv.error(f"mid_channels {mid} is neither a whole multiple of in_channels {cin} nor its ratio rounded "
                         "to a multiple of 8, as latprof builds a fractional expansion")
    shortcut = block.data.get("shortcut")
    identity_fits = stride == 1 and cin == cout
    if shortcut is not None and (not isinstance(shortcut, dict) or shortcut.get("name") != "IdentityLayer"):
        raise block.error(f"shortcut {shortcut!r}: latprof imports an IdentityLayer or null")
    if shortcut is not None and not identity_fits:
        raise block.error(f"an identity shortcut needs stride 1 and in_channels == out_channels (got stride {stride}, "
                          f"{cin} -> {cout})")
    use_se = bool(conv.data.get("use_se", False))
    return Block(1, kernel, stride, expand, cin, cout, 0.25 if use_se else 0.0,
                 SKIP_NONE if identity_fits and shortcut is None else SKIP_IDENTITY,
                 hswish=conv.hswish("relu6"), hard_se=use_se)


def _mid_channels(conv: _Config, cin: int) -> int:
    """OFA's rule: mid_channels when given, else round(in_channels x expand_ratio)."""
    if conv.data.get("mid_channels") is not None:
        return conv.int("mid_channels")
    ratio = conv.data.get("expand_ratio")
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or ratio < 1:
        raise conv.error(f"expand_ratio must be a number >= 1, found {ratio!r}")
    return round(cin * ratio)


def _append(blocks: list[Block], block: Block) -> list[Block]:
    """Fold a layer into the block before it when it repeats that block's layer (stride 1, same
    width and choices), so the string reads like the published ones: ``r3_k5_s22_e3_...``."""
    if blocks:
        last = blocks[-1]
        if block.stride == 1 and block.in_filters == block.out_filters == last.out_filters and \
                replace(block, repeats=last.repeats, stride=last.stride, in_filters=last.in_filters) == last:
            return [*blocks[:-1], replace(last, repeats=last.repeats + 1)]
    return [*blocks, block]


def _head(config: _Config, channels: int, hswish: bool) -> tuple[int, int]:
    """(head, mix): ProxylessNAS' feature mix layer is latprof's head conv; OFA's final expand layer is,
    and its feature mix layer, after the pool, latprof's mix conv."""
    convs = [config.child(name) for name in ("final_expand_layer", "feature_mix_layer") if config.data.get(name)]
    if not convs:
        raise config.error("no 'feature_mix_layer'; is this a ProxylessNAS/OFA net.config?")
    for conv in convs:
        if conv.int("in_channels") != channels or conv.int("kernel_size") != 1:
            raise conv.error(f"a 1x1 conv of the {channels} channels before it is what latprof builds here "
                             f"(got in_channels {conv.data.get('in_channels')}, kernel {conv.data.get('kernel_size')})")
        if conv.hswish("relu6") != hswish:
            raise conv.error(f"act_func {conv.data.get('act_func')!r} differs from first_conv's; latprof's 'hs' "
                             "setting gives stem and head one activation")
        channels = conv.int("out_channels")
    return convs[0].int("out_channels"), convs[1].int("out_channels") if len(convs) == 2 else 0
