"""A catalogue of keras.applications mobile networks as .tflite files: models latprof's search
space did not make, to decompose, profile, predict and measure like any other .tflite file.

Models are built at batch 1 (what a phone runs) with ``weights=None``: random weights, so nothing
is downloaded, and latency does not depend on weight values.  A ``-freebatch`` model is built as
Keras converts by default, with a free batch dimension: its reshapes then compute their target
shapes at run time (SHAPE, STRIDED_SLICE, PACK ops), as a user's own conversion does.  Each is
converted once per (name, dtype, Keras and TensorFlow version) and kept in the content-addressed
model cache, several at a time by the conversion pool of ``latprof.convert``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from latprof.convert import ModelCache, convert_keras, ensure_whole_models
from latprof.errors import LatprofError

# family name -> keras.applications constructor
FAMILIES = {
    "mobilenet_v1": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_small": "MobileNetV3Small",
    "mobilenet_v3_large": "MobileNetV3Large",
    "efficientnet_b0": "EfficientNetB0",
    "efficientnet_b1": "EfficientNetB1",
}
_KEY_PREFIX = "zoo:"
_NAME = re.compile(r"(?P<family>[a-z0-9_]+)(?:-(?P<alpha>\d+(?:\.\d+)?))?-(?P<resolution>\d+)"
                   r"(?P<minimalistic>-minimalistic)?(?P<free_batch>-freebatch)?")


@dataclass(frozen=True, order=True)
class ZooModel:
    """One network of a keras.applications family at a width multiplier and input resolution.

    ``alpha`` is None for EfficientNet, whose B-number sets width and depth; ``minimalistic``
    (ReLU, 3x3 kernels, no squeeze-excite) exists for MobileNetV3 only.  ``free_batch`` builds it
    with a free batch dimension, Keras' default, instead of batch 1."""

    family: str
    alpha: float | None
    resolution: int
    minimalistic: bool = False
    free_batch: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise LatprofError(f"unknown zoo family {self.family!r}; one of {', '.join(FAMILIES)}")
        if self.family.startswith("efficientnet") != (self.alpha is None):
            raise LatprofError(f"{self.family}: " + ("EfficientNet takes no width multiplier" if self.alpha is not None
                                                    else "a width multiplier (alpha) is needed"))
        if self.alpha is not None and not 0 < self.alpha <= 4:
            raise LatprofError(f"{self.family}: width multiplier {self.alpha} is outside (0, 4]")
        if self.minimalistic and not self.family.startswith("mobilenet_v3"):
            raise LatprofError(f"{self.family}: only MobileNetV3 has a minimalistic variant")
        if not 32 <= self.resolution <= 1024:
            raise LatprofError(f"{self.family}: resolution {self.resolution} is outside 32..1024")

    @property
    def name(self) -> str:
        """``family-alpha-resolution[-minimalistic][-freebatch]``, e.g. ``mobilenet_v2-1.0-224``,
        ``efficientnet_b0-224``, ``mobilenet_v3_small-1.0-224-freebatch``."""
        width = "" if self.alpha is None else f"-{self.alpha}"
        return (f"{self.family}{width}-{self.resolution}" + ("-minimalistic" if self.minimalistic else "")
                + ("-freebatch" if self.free_batch else ""))

    @classmethod
    def from_name(cls, name: str) -> ZooModel:
        match = _NAME.fullmatch(name)
        if not match:
            raise LatprofError(f"not a zoo model name: {name!r}; write family-alpha-resolution[-minimalistic]"
                               "[-freebatch], e.g. mobilenet_v2-1.0-224 or efficientnet_b0-224 "
                               "(see 'latprof zoo --list')")
        alpha = match["alpha"]
        return cls(match["family"], None if alpha is None else float(alpha), int(match["resolution"]),
                   bool(match["minimalistic"]), bool(match["free_batch"]))

    @property
    def cache_key(self) -> str:
        """What the model cache files the converted model under (Keras' version: it defines the network)."""
        return f"{_KEY_PREFIX}{self.name}|keras{version('keras')}"

    def file_name(self, dtype: str) -> str:
        return self.name + ("" if dtype == "float32" else f"-{dtype}") + ".tflite"

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}

    def build(self):
        """The Keras model: batch 1 (or a free batch), random weights (nothing is downloaded), 1000 classes."""
        import keras

        batch = None if self.free_batch else 1
        options = {"input_tensor": keras.Input((self.resolution, self.resolution, 3), batch_size=batch),
                   "weights": None}
        if self.alpha is not None:
            options["alpha"] = self.alpha
        if self.family.startswith("mobilenet_v3"):
            options["minimalistic"] = self.minimalistic
        return getattr(keras.applications, FAMILIES[self.family])(**options)


# (family, width multiplier, resolutions[, minimalistic]): published variants spanning the mobile
# range, 0.4 ms (mobilenet_v1-0.25-128) to 27 ms (efficientnet_b1-240) on one EPYC core in fp32;
# all 28 convert in about two minutes.
_PUBLISHED = [
    ("mobilenet_v1", 0.25, (128, 224)), ("mobilenet_v1", 0.5, (160, 224)), ("mobilenet_v1", 0.75, (192, 224)),
    ("mobilenet_v1", 1.0, (128, 224)),
    ("mobilenet_v2", 0.35, (96, 224)), ("mobilenet_v2", 0.5, (128, 224)), ("mobilenet_v2", 0.75, (160, 224)),
    ("mobilenet_v2", 1.0, (192, 224)), ("mobilenet_v2", 1.3, (224,)), ("mobilenet_v2", 1.4, (224,)),
    ("mobilenet_v3_small", 0.75, (224,)), ("mobilenet_v3_small", 1.0, (160, 224)),
    ("mobilenet_v3_small", 1.0, (224,), True),
    ("mobilenet_v3_large", 0.75, (224,)), ("mobilenet_v3_large", 1.0, (192, 224)),
    ("mobilenet_v3_large", 1.0, (224,), True),
    ("efficientnet_b0", None, (224,)), ("efficientnet_b1", None, (240,)),
]
CATALOGUE: tuple[ZooModel, ...] = tuple(ZooModel(family, alpha, resolution, *minimalistic)
                                        for family, alpha, resolutions, *minimalistic in _PUBLISHED
                                        for resolution in resolutions)


def select(names: Iterable[str] = (), families: Iterable[str] = ()) -> list[ZooModel]:
    """Models by name (any family/width/resolution, not only the catalogue's) plus the catalogue's
    models of ``families``; the whole catalogue when both are empty."""
    names, families = list(names), list(families)
    for family in families:
        if family not in FAMILIES:
            raise LatprofError(f"unknown zoo family {family!r}; one of {', '.join(FAMILIES)}")
    chosen = [ZooModel.from_name(name) for name in names]
    chosen += [model for model in CATALOGUE if model.family in families]
    return list(dict.fromkeys(chosen if names or families else CATALOGUE))


def zoo_model_bytes(key: str, dtype: str) -> bytes:
    """Conversion worker's side: the .tflite of the zoo model filed under cache key ``key``."""
    name = key.removeprefix(_KEY_PREFIX).split("|")[0]
    return convert_keras(ZooModel.from_name(name).build(), dtype)


def ensure_zoo(models: list[ZooModel], dtype: str, cache: ModelCache, workers: int | None = None,
               progress: Callable[[int], None] = lambda done: None) -> dict[ZooModel, Path]:
    """The cached .tflite of each model, converting those the cache lacks (1 to 8 s each)."""
    paths = ensure_whole_models("zoo", [model.cache_key for model in models], dtype, cache, workers, progress)
    return {model: paths[model.cache_key] for model in models}


def write_zoo(models: list[ZooModel], out_dir: str | Path, dtype: str, cache: ModelCache, workers: int | None = None,
              progress: Callable[[int], None] = lambda done: None) -> dict[ZooModel, Path]:
    """Write each model as ``out_dir/<name>.tflite`` (``<name>-int8.tflite`` for int8): copies from
    the cache, so editing them never touches the cache."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LatprofError(f"{out_dir} is a file; -o takes a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for model, cached in ensure_zoo(models, dtype, cache, workers, progress).items():
        written[model] = out_dir / model.file_name(dtype)
        shutil.copyfile(cached, written[model])
    return written
