"""Candidate accuracy from real training: the embedded dataset, image folders, the builder at the
training resolution, and a real training run in a spawned worker, as the search runs it."""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from latprof.arch import Architecture
from latprof.errors import LatprofError
from latprof.network import Network
from latprof.search import data
from latprof.search.data import load_dataset
from latprof.search.train import TrainSettings, train_candidate, zero_cost_score
from latprof.space import get_space


def test_default_dataset_is_deterministic_with_a_validation_split():
    first = load_dataset(resolution=16, seed=3)
    again = data._syn_digits.__wrapped__(16, 3)  # generated afresh, not from the cache
    other = load_dataset(resolution=16, seed=4)
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_val, again.y_val)
    assert not np.array_equal(first.x_train, other.x_train)
    assert first.classes >= 10 and set(first.y_val) == set(range(first.classes))
    assert first.x_train.shape[1:] == (16, 16, 3) and first.x_train.dtype == np.float32
    assert len(first.y_val) > 0.2 * len(first.y_train)
    assert 0 <= first.x_train.min() and first.x_train.max() <= 1
    assert not first.x_train.flags.writeable  # cached and shared: nobody may change it


def _write_folder(root, classes: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_image_folder_loads_classes_and_splits_each(tmp_path):
    _write_folder(tmp_path, {"cat": 5, "dog": 5, "eel": 10})
    (tmp_path / "cat" / "notes.txt").write_text("not an image: ignored")
    dataset = load_dataset(str(tmp_path), resolution=12, seed=1)
    assert dataset.classes == 3 and dataset.class_names == ("cat", "dog", "eel")
    assert dataset.x_train.shape[1:] == (12, 12, 3) and dataset.name == tmp_path.name
    assert len(dataset.y_train) + len(dataset.y_val) == 20
    assert np.bincount(dataset.y_val).tolist() == [1, 1, 2]
    assert np.array_equal(load_dataset(str(tmp_path), resolution=12, seed=1).x_val, dataset.x_val)


@pytest.mark.parametrize("layout, expected", [
    (None, "does not exist"),
    ({"only": 3}, "at least 2"),
    ({"a": 3, "b": 1}, "needs at least 2"),
    ({"a": 3, "b": 3, "broken": 0}, "cannot read image"),
])
def test_bad_image_folders_are_one_line_errors(tmp_path, layout, expected):
    root = tmp_path / "images"
    if layout is not None:
        _write_folder(root, layout)
    if layout and "broken" in layout:
        (root / "broken" / "x.png").write_bytes(b"not a png")
        (root / "broken" / "y.png").write_bytes(b"not a png either")
    with pytest.raises(LatprofError, match=expected) as error:
        load_dataset(str(root), resolution=16)
    assert "\n" not in str(error.value)


def test_settings_are_checked():
    with pytest.raises(LatprofError, match="invalid training settings"):
        TrainSettings(epochs=0)


def test_every_choice_of_the_space_builds_at_the_training_resolution():
    """Four networks cover every option of every decision; each trains on 32x32 inputs."""
    from latprof.builder import build_model

    space = get_space("mnasnet")
    choices = space.choices()
    for k in range(max(len(c.options) for c in choices)):
        arch = replace(space.decode([k % len(c.options) for c in choices]), resolution=32, classes=10)
        model = build_model(arch, batch_size=None)
        assert model(np.zeros((2, 32, 32, 3), dtype="float32"), training=True).shape == (2, 10)


def write_colour_folder(root, per_class: int = 100, size: int = 16):
    """An image folder (the format users pass) whose three classes differ in colour under heavy
    noise: a task even a tiny network learns in a few dozen steps, so a real training gives a real
    signal in seconds."""
    rng = np.random.default_rng(0)
    for channel, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.normal(80, 40, (size, size, 3))
            image[..., channel] += 100
            Image.fromarray(np.clip(image, 0, 255).astype("uint8")).save(root / name / f"{i}.png")
    return root


def _train_and_score(arch_text: str, settings: TrainSettings):
    return train_candidate(arch_text, settings), zero_cost_score(arch_text, settings)


def test_train_candidate_learns_in_a_spawned_worker(tiny_arch_text, tmp_path):
    """A real learning signal: six short epochs of the tiny network tell the colours apart (chance
    is a third); the function and its arguments survive pickling into a fresh process, as the
    search sends them."""
    folder = write_colour_folder(tmp_path / "colours")
    settings = TrainSettings(epochs=6, resolution=16, seed=0, dataset=str(folder))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result, score = pool.submit(_train_and_score, tiny_arch_text, settings).result(timeout=300)
    assert result.accuracy > 0.8
    assert (result.epochs, result.resolution) == (6, 16) and result.seconds > 0
    arch = replace(Architecture.from_string(tiny_arch_text), resolution=16, classes=3)
    assert result.params == Network(arch).params  # the Keras network is the one latprof describes
    assert math.isfinite(score) and score > 0
