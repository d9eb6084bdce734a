"""The images search candidates train on: the embedded default task, or the user's image folder.

The default, ``syn-digits``, is a house-number-style digit task in the manner of Syn Digits
(Ganin & Lempitsky 2015, the synthetic stand-in for SVHN), built from what ships offline with
latprof's dependencies: the digits are drawn in 21 of matplotlib's fonts (DejaVu, STIX, Computer
Modern) with random size, stroke weight, rotation, shear, shift and colour, sometimes flanked by
neighbouring digits, over patches of the two photos scikit-learn ships (``load_sample_images``)
with textures of random strength, plus noise.  Every image is drawn afresh, nothing is downloaded,
and its 4,000 images at 32x32 take about two seconds; they are kept in memory only.

Why this one, measured with 2 epochs (at 32x32 unless said) on this machine:
- scikit-learn's 1,797 handwritten 8x8 digits (MNIST-M style over the same photo patches) are too
  few: networks memorised the source digits (MnasNet-A1 at 64x64: 51% train, 19% validation).
- Light digits on black are too easy (a 5-layer CNN: 94%); with strong clutter and ink of either
  polarity, too hard for two epochs (MnasNet-A1: 16-22%, barely above chance).
- This task: the 5-layer CNN reaches 74% and MnasNet-A1 30%, so ACC is neither saturated nor
  noise, and architectures differ (``bench/train_speed.py`` reports the spread).
Keras and TFDS datasets need downloads at run time, which latprof may not do.

A user's folder has one subfolder of images per class, as Keras' ``image_dataset_from_directory``
expects.  Images are read with Pillow, squashed to ``resolution`` x ``resolution`` RGB, and a
stratified ``VAL_FRACTION`` of each class is held out for validation, chosen by ``seed``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from latprof.errors import LatprofError

DEFAULT = "default"
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # the ones image_dataset_from_directory reads
VAL_FRACTION = 0.2
# Two epochs over 3,000 images take a MnasNet candidate tens of seconds on one core; 1,000
# validation images measure accuracy to about +-1.5%.
TRAIN_IMAGES, VAL_IMAGES = 3000, 1000


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images (float32 NHWC in [0, 1]) and integer labels, split into training and validation.

    ``eq=False``: comparing or hashing the arrays element-wise is never what a caller means.
    The arrays are read-only because the default dataset is cached and shared between calls.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: int
    class_names: tuple[str, ...] = ()
    description: str = ""

    def summary(self) -> str:
        """One line for logs: what the task is and how big."""
        size = self.x_train.shape[1]
        return (f"{self.name}: {self.classes} classes, {len(self.y_train)} train / {len(self.y_val)} val images "
                f"at {size}x{size}" + (f"; {self.description}" if self.description else ""))


def load_dataset(source: str = DEFAULT, resolution: int = 32, seed: int = 0) -> Dataset:
    """The embedded ``digits-m`` task for ``"default"``, else the image folder at ``source``."""
    if resolution < 8:
        raise LatprofError(f"training resolution {resolution} is too small; use at least 8 (32 is the default)")
    if source == DEFAULT:
        return _syn_digits(resolution, seed)
    return _image_folder(Path(source).expanduser(), resolution, seed)


def _read_only(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.setflags(write=False)


def _split(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of indices: ``VAL_FRACTION`` of each class (at least one) for validation."""
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = max(1, round(len(members) * VAL_FRACTION))
        val.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


# --- the embedded default: syn-digits ---------------------------------------------------------------

# matplotlib's fonts with ordinary digit glyphs: 21 faces of DejaVu, STIX and Computer Modern.
FONTS = tuple([f"DejaVu{family}{style}.ttf" for family in ("Sans", "SansMono", "Serif")
               for style in ("", "-Bold", "-Oblique" if family != "Serif" else "-Italic",
                             "-BoldOblique" if family != "Serif" else "-BoldItalic")]
              + [f"STIXGeneral{style}.ttf" for style in ("", "Bol", "Italic", "BolIta")]
              + [f"cm{face}10.ttf" for face in ("r", "b", "ss", "ti", "tt")])


@functools.lru_cache(maxsize=4)
def _syn_digits(resolution: int, seed: int) -> Dataset:
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(image) for image in load_sample_images().images]
    rng = np.random.default_rng(seed)
    x_train, y_train = _render(TRAIN_IMAGES, photos, resolution, rng)
    x_val, y_val = _render(VAL_IMAGES, photos, resolution, rng)
    _read_only(x_train, y_train, x_val, y_val)
    return Dataset("syn-digits", x_train, y_train, x_val, y_val, classes=10, class_names=tuple("0123456789"),
                   description=f"digits in {len(FONTS)} fonts, randomly posed, with neighbours, over photo patches")


@functools.cache
def _font(name: str, size: int):
    from matplotlib import get_data_path
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(get_data_path()) / "fonts" / "ttf" / name), size)


def _render(count: int, photos: list[Image.Image], resolution: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` labelled images; every image is drawn with its own font, pose, colours and patch."""
    from PIL import ImageDraw

    canvas = 2 * resolution  # glyphs are drawn at twice the resolution, then warped down (anti-aliasing)
    labels = rng.integers(10, size=count).astype(np.int32)
    font_index, font_size = rng.integers(len(FONTS), size=count), (canvas * rng.uniform(0.7, 1.05, count)).astype(int)
    stroke = rng.integers(canvas // 32, canvas // 16 + 1, size=count)  # bold strokes survive downsampling
    neighbours = rng.random(count) < 0.2  # digits either side, as in a crop of a house number
    neighbour_digits, spacing = rng.integers(10, size=(count, 2)), rng.uniform(1.0, 1.3, count)
    angle, shear = np.radians(rng.uniform(-20, 20, count)), rng.uniform(-0.25, 0.25, count)
    centre = resolution * (0.5 + rng.uniform(-0.1, 0.1, (count, 2)))
    photo_index, side, corner = rng.integers(len(photos), size=count), rng.uniform(0.15, 0.5, count), rng.random((count, 2))

    glyphs = np.empty((count, resolution, resolution, 1), dtype=np.uint8)
    patches = np.empty((count, resolution, resolution, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        font = _font(FONTS[font_index[i]], font_size[i])
        mask = Image.new("L", (canvas, canvas))
        draw = ImageDraw.Draw(mask)
        draw.text((canvas / 2, canvas / 2), str(label), fill=255, font=font, anchor="mm", stroke_width=stroke[i], stroke_fill=255)
        if neighbours[i]:
            step = font.getlength(str(label)) * spacing[i]
            for offset, digit in zip((-step, step), neighbour_digits[i]):
                draw.text((canvas / 2 + offset, canvas / 2), str(digit), fill=255, font=font, anchor="mm",
                          stroke_width=stroke[i], stroke_fill=255)
        # Output pixel -> canvas pixel: rotate and shear about the glyph's centre, and scale by 2.
        cos, sin = 2 * np.cos(angle[i]), 2 * np.sin(angle[i])
        a, b, d, e = cos - shear[i] * sin, sin + shear[i] * cos, -sin, cos
        cx, cy = centre[i]
        warp = (a, b, canvas / 2 - a * cx - b * cy, d, e, canvas / 2 - d * cx - e * cy)
        glyphs[i, ..., 0] = mask.transform((resolution, resolution), Image.Transform.AFFINE, warp,
                                           Image.Resampling.BILINEAR)
        photo = photos[photo_index[i]]
        length = side[i] * photo.height
        left, top = corner[i] * (photo.width - length, photo.height - length)
        patches[i] = photo.resize((resolution, resolution), Image.Resampling.BILINEAR,
                                  box=(left, top, left + length, top + length))
    background, alpha = patches.astype(np.float32) / 255, glyphs.astype(np.float32) / 255
    # Clutter: the photo patch, darkened, its texture at a random strength; light ink of random colour.
    mean = 0.5 * background.mean(axis=(1, 2), keepdims=True)
    background = mean + rng.uniform(0.2, 0.8, (count, 1, 1, 1)).astype(np.float32) * (0.5 * background - mean)
    ink = np.clip(mean + rng.uniform(0.3, 0.8, (count, 1, 1, 3)), 0, 1)
    images = background * (1 - alpha) + ink.astype(np.float32) * alpha
    images += 0.04 * rng.standard_normal(images.shape, dtype=np.float32)
    np.clip(images, 0, 1, out=images)
    return images, labels


# --- a user's image folder --------------------------------------------------------------------------

def _image_folder(root: Path, resolution: int, seed: int) -> Dataset:
    layout = "one subfolder of images per class"
    if not root.is_dir():
        raise LatprofError(f"image folder {root} does not exist; pass a folder with {layout}, or 'default'")
    class_dirs = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if len(class_dirs) < 2:
        raise LatprofError(f"image folder {root} has {len(class_dirs)} class subfolder(s); classification needs "
                           f"at least 2 ({layout})")
    files, labels = [], []
    for label, folder in enumerate(class_dirs):
        found = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
        if len(found) < 2:
            raise LatprofError(f"class folder {folder} has {len(found)} image(s); each class needs at least 2, one to "
                               f"validate on ({', '.join(IMAGE_EXTENSIONS)})")
        files += found
        labels += [label] * len(found)
    images = np.stack([_read_image(path, resolution) for path in files])
    labels_array = np.array(labels, dtype=np.int32)
    rng = np.random.default_rng(seed)
    train, val = _split(labels_array, rng)
    train = rng.permutation(train)  # files come sorted by class; training order should not
    x_train, y_train, x_val, y_val = images[train], labels_array[train], images[val], labels_array[val]
    _read_only(x_train, y_train, x_val, y_val)
    return Dataset(root.name, x_train, y_train, x_val, y_val, classes=len(class_dirs),
                   class_names=tuple(folder.name for folder in class_dirs), description=f"images from {root}")


def _read_image(path: Path, resolution: int) -> np.ndarray:
    """One image as RGB float32 in [0, 1], squashed to resolution x resolution."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (resolution, resolution))  # JPEGs decode at a reduced scale: much faster
            pixels = image.convert("RGB").resize((resolution, resolution), Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LatprofError(f"cannot read image {path}: {reason}") from None
    return np.asarray(pixels, dtype=np.float32) / 255
