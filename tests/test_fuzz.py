"""Property-based fuzzing (Hypothesis) of every file latprof reads: a LUT, a predictor, a run
folder, a search folder and a .tflite.  Whatever the damage (a value replaced by any JSON, a
member deleted, the file cut short, a byte changed), the command that reads the file either works
or stops with a one-line error and a non-zero exit: never a traceback.

The cases are derandomized, so that CI runs the same ones every time; the commands run in this
process (click's runner) and stop before anything is measured or trained.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latprof.cli import main
from latprof.profiling import MEASUREMENTS_FILE, RUN_FILE

FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=4)


def members(document, prefix=()) -> list[tuple]:
    """Every path into a JSON document (keys and list indices), the root excepted."""
    children = document.items() if isinstance(document, dict) else \
        enumerate(document) if isinstance(document, list) else ()
    paths = []
    for key, value in children:
        paths.append((*prefix, key))
        paths += members(value, (*prefix, key))
    return paths


def edited(document, path: tuple, value=None, delete: bool = False):
    """A copy of ``document`` with the member at ``path`` replaced by ``value`` (or deleted)."""
    copy = json.loads(json.dumps(document))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


@st.composite
def damaged_json(draw, text: str) -> bytes:
    """A JSON file's text, damaged one way."""
    document = json.loads(text)
    how = draw(st.sampled_from(["replace", "delete", "truncate", "byte"]))
    if how in ("replace", "delete"):
        path = draw(st.sampled_from(members(document)))
        return json.dumps(edited(document, path, draw(JSON), how == "delete")).encode()
    return damaged_bytes(draw, text.encode(), how)


def damaged_bytes(draw, data: bytes, how: str) -> bytes:
    if how == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    position = draw(st.integers(0, len(data) - 1))
    return data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1:]


@st.composite
def damaged_jsonl(draw, text: str) -> bytes:
    """A JSON-lines file's text with one line damaged, or the file cut short or a byte changed."""
    how = draw(st.sampled_from(["line", "truncate", "byte"]))
    if how != "line":
        return damaged_bytes(draw, text.encode(), how)
    lines = text.splitlines()
    index = draw(st.integers(0, len(lines) - 1))
    lines[index] = draw(damaged_json(lines[index])).decode("utf-8", "replace")
    return ("\n".join(lines) + "\n").encode()


def works_or_one_line_error(*args) -> None:
    """The CLI's contract: exit 0, or one line on stderr (``latprof: error: ...``) and a non-zero
    exit; an exception that escapes the CLI is a failure.  (``predict`` exits 1 with its report,
    and nothing on stderr, when the LUT lacks some of the ops: a LUT that lost a row.)"""
    result = CliRunner().invoke(main, [str(a) for a in args], prog_name="latprof")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"latprof {' '.join(map(str, args))} raised") from result.exception
    if args[0] == "predict" and result.exit_code == 1 and not result.stderr:
        assert all(r["latency_ms"] is None or r["latency_ms"] >= 0 for r in json.loads(result.stdout))
        assert any(r["latency_ms"] is None for r in json.loads(result.stdout))
    elif result.exit_code != 0:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("latprof: error: "), result.stderr
        assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def predictor_path(tmp_path_factory, tiny_lut_path) -> Path:
    path = tmp_path_factory.mktemp("fuzz-predictor") / "predictor.json"
    result = CliRunner().invoke(main, ["predictor", "train", str(tiny_lut_path), "-o", str(path), "--folds", "2"])
    assert result.exit_code == 0, result.output
    return path


@FUZZ
@given(data=st.data())
def test_a_damaged_lut(data, tiny_lut_path, tiny_arch_text, tmp_path):
    bad = tmp_path / "lut.json"
    bad.write_bytes(data.draw(damaged_json(tiny_lut_path.read_text())))
    works_or_one_line_error("lut", "show", bad, "--json")
    works_or_one_line_error("predict", tiny_arch_text, "--lut", bad, "--json")


@FUZZ
@given(data=st.data())
def test_a_damaged_predictor(data, predictor_path, tiny_lut_path, tmp_path):
    bad = tmp_path / "predictor.json"
    bad.write_bytes(data.draw(damaged_json(predictor_path.read_text())))
    # an op the tiny LUT lacks, so that the predictor is asked for it
    works_or_one_line_error("predict", "res96_w1:r1_k5_s11_e6_i32_o24", "--lut", tiny_lut_path,
                            "--predictor", bad, "--json")


@FUZZ
@given(data=st.data())
def test_a_damaged_run_folder(data, tiny_run, tmp_path):
    run_dir, _ = tiny_run
    copy = tmp_path / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run_dir, copy)
    name = data.draw(st.sampled_from([MEASUREMENTS_FILE, RUN_FILE]))
    text = (copy / name).read_text()
    (copy / name).write_bytes(data.draw(damaged_jsonl(text) if name.endswith(".jsonl") else damaged_json(text)))
    works_or_one_line_error("lut", "build", copy, "-o", tmp_path / "lut.json", "--json")


@FUZZ
@given(data=st.data())
def test_a_damaged_tflite(data, tiny_model, tiny_lut_path, tmp_path):
    bad = tmp_path / "model.tflite"
    how = data.draw(st.sampled_from(["truncate", "byte"]))
    bad.write_bytes(damaged_bytes(data.draw, tiny_model.read_bytes(), how))
    works_or_one_line_error("predict", bad, "--lut", tiny_lut_path, "--json")


class _WouldTrain(Exception):
    """Raised instead of training: the damaged folder loaded, and the search went on."""


class _RefusingExecutor:
    def submit(self, fn, *args):
        raise _WouldTrain


@pytest.fixture(scope="module")
def search_folder(tmp_path_factory, monkeypatch_module) -> Path:
    """A finished search of two candidates of a two-block space, trained for real (one short
    epoch on a small image folder, in this process)."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from test_search import TINY_SPACE, MacsLatency
    from test_search_training import write_colour_folder

    from latprof import space as spaces
    from latprof.search.loop import SearchConfig, run_search
    from latprof.search.train import TrainSettings

    monkeypatch_module.setitem(spaces.SPACES, "tiny", spaces.SearchSpace(**TINY_SPACE))
    images = write_colour_folder(tmp_path_factory.mktemp("fuzz-images") / "colours", per_class=10)
    config = SearchConfig(target_ms=1.0, space="tiny", budget=2, workers=1, latency="macs",
                          train=replace(TrainSettings(), epochs=1, resolution=16, dataset=str(images)))
    folder = tmp_path_factory.mktemp("fuzz-search") / "search"
    with ThreadPoolExecutor(1) as executor:
        assert len(run_search(folder, config, MacsLatency(), executor)) == 2
    return folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@FUZZ
@given(data=st.data())
def test_a_damaged_search_folder(data, search_folder, tmp_path):
    """What ``search --resume`` reads (its description, log and state) loads, or is a LatprofError
    (the CLI's one-line error); a folder that loads goes on to its next candidate."""
    from test_search import MacsLatency

    from latprof.errors import LatprofError
    from latprof.search.loop import CONFIG_FILE, LOG_FILE, STATE_FILE, run_search

    copy = tmp_path / "search"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(search_folder, copy)
    name = data.draw(st.sampled_from([CONFIG_FILE, LOG_FILE, STATE_FILE]))
    text = (copy / name).read_text()
    (copy / name).write_bytes(data.draw(damaged_jsonl(text) if name == LOG_FILE else damaged_json(text)))
    try:
        run_search(copy, None, MacsLatency(), _RefusingExecutor(), resume=True)
    except (LatprofError, _WouldTrain):
        pass


def test_the_undamaged_files_work(predictor_path, tiny_lut_path, tiny_run, tiny_model, tmp_path):
    """The fuzzed commands succeed on the files as written, so the damage is what they refuse."""
    for args in (["predict", "res96_w1:r1_k5_s11_e6_i32_o24", "--lut", tiny_lut_path, "--predictor", predictor_path],
                 ["predict", tiny_model, "--lut", tiny_lut_path], ["lut", "build", tiny_run[0], "-o", tmp_path / "l.json"]):
        result = CliRunner().invoke(main, [str(a) for a in args], prog_name="latprof")
        assert result.exit_code == 0, result.output


def test_the_undamaged_search_folder_resumes(search_folder, tmp_path):
    from test_search import MacsLatency

    from latprof.search.loop import run_search

    copy = tmp_path / "search"
    shutil.copytree(search_folder, copy)
    assert [entry["id"] for entry in run_search(copy, None, MacsLatency(), _RefusingExecutor(), resume=True)] == [0, 1]
