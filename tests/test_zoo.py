"""Models latprof did not build: keras.applications' mobile networks decompose into ops that all have
a microbenchmark, run in LiteRT, and are predicted completely from their profiled ops."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from latprof.errors import LatprofError
from latprof.ops import OpSpec
from latprof.tflite_file import decompose
from latprof.zoo import CATALOGUE, FAMILIES, ZooModel, select

# Small members of four families (two from the catalogue, two at a small resolution of their own),
# with the op kinds each converts to at batch 1: no SHAPE/STRIDED_SLICE/PACK of a free batch.
SMALL = {
    "mobilenet_v1-0.25-128": {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "RESHAPE", "SOFTMAX"},
    "mobilenet_v2-0.35-96": {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"},
    "mobilenet_v3_small-0.75-96": {"MUL", "ADD", "CONV_2D", "HARD_SWISH", "DEPTHWISE_CONV_2D", "MEAN", "RESHAPE",
                                   "SOFTMAX"},
    "efficientnet_b0-64": {"CONV_2D", "LOGISTIC", "MUL", "DEPTHWISE_CONV_2D", "MEAN", "ADD", "FULLY_CONNECTED",
                           "SOFTMAX"},
}


@pytest.fixture(scope="module")
def zoo_files(model_cache):
    """The small models converted into the session's model cache, with downloads made to fail."""
    import keras.src.utils.file_utils as file_utils

    from latprof.zoo import ensure_zoo

    def no_download(*args, **kwargs):
        raise AssertionError(f"keras.applications tried to download {args or kwargs}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(file_utils, "get_file", no_download)
        paths = ensure_zoo([ZooModel.from_name(name) for name in SMALL], "float32", model_cache, workers=1)
    return {model.name: path for model, path in paths.items()}


def test_catalogue():
    names = [model.name for model in CATALOGUE]
    assert len(names) >= 24 and len(set(names)) == len(names)
    assert {model.family for model in CATALOGUE} == set(FAMILIES)
    assert {model.alpha for model in CATALOGUE if model.family == "mobilenet_v2"} == {0.35, 0.5, 0.75, 1.0, 1.3, 1.4}
    assert any(model.minimalistic for model in CATALOGUE)
    for model in CATALOGUE:
        assert ZooModel.from_name(model.name) == model
    assert "mobilenet_v2-1.0-224" in names and "efficientnet_b0-224" in names
    assert select() == list(CATALOGUE)
    assert [m.family for m in select(families=["efficientnet_b1"])] == ["efficientnet_b1"]
    assert select(["mobilenet_v2-0.35-96"], ["mobilenet_v1"])[0] == ZooModel("mobilenet_v2", 0.35, 96)
    assert ZooModel("mobilenet_v2", 1.0, 224).cache_key != ZooModel("mobilenet_v2", 1.0, 192).cache_key


def test_free_batch_models_are_named_and_cached_apart():
    batch_one = ZooModel("mobilenet_v3_small", 1.0, 224)
    free = ZooModel.from_name("mobilenet_v3_small-1.0-224-freebatch")
    assert free == ZooModel("mobilenet_v3_small", 1.0, 224, free_batch=True) and free.name.endswith("-freebatch")
    assert free.cache_key != batch_one.cache_key and free.file_name("float32") == f"{free.name}.tflite"
    both = ZooModel.from_name("mobilenet_v3_large-1.0-224-minimalistic-freebatch")
    assert both.minimalistic and both.free_batch and ZooModel.from_name(both.name) == both
    assert select(["efficientnet_b0-224-freebatch"]) == [ZooModel("efficientnet_b0", None, 224, free_batch=True)]
    assert not any(model.free_batch for model in CATALOGUE)  # the catalogue stays at batch 1


def test_free_batch_model_is_built_with_keras_default_input():
    assert tuple(ZooModel.from_name("mobilenet_v3_small-0.35-96-freebatch").build().inputs[0].shape) == (None, 96, 96, 3)
    assert tuple(ZooModel.from_name("mobilenet_v3_small-0.35-96").build().inputs[0].shape) == (1, 96, 96, 3)


@pytest.mark.parametrize("name, hint", [
    ("mobilenet_v2-1.0", "not a zoo model name"), ("resnet50-1.0-224", "unknown zoo family"),
    ("efficientnet_b0-1.0-224", "no width multiplier"), ("mobilenet_v2-224", "width multiplier"),
    ("mobilenet_v2-1.0-224-minimalistic", "minimalistic"), ("mobilenet_v1-1.0-16", "resolution"),
    ("mobilenet_v3_small-1.0-224-freebatch-minimalistic", "not a zoo model name"),
])
def test_bad_names_are_refused(name, hint):
    with pytest.raises(LatprofError, match=hint):
        ZooModel.from_name(name)


@pytest.mark.parametrize("name", SMALL)
def test_zoo_model_decomposes_into_expected_ops(name, zoo_files):
    model = decompose(zoo_files[name])
    kinds = Counter(op.op for op in model.ops)
    assert set(kinds) == SMALL[name]
    resolution = ZooModel.from_name(name).resolution
    assert model.dtype == "float32"
    assert model.ops[0].inputs[0] == (resolution, resolution, 3)
    assert model.ops[-1].op == "SOFTMAX" and model.ops[-1].output == (1000,)


def test_family_structure_shows_in_ops(zoo_files):
    v1 = decompose(zoo_files["mobilenet_v1-0.25-128"]).ops
    assert Counter((op.op, op.activation) for op in v1)[("DEPTHWISE_CONV_2D", "RELU6")] == 13
    v2 = decompose(zoo_files["mobilenet_v2-0.35-96"]).ops
    assert Counter(op.op for op in v2)["ADD"] == 10  # the inverted residuals' shortcuts
    v3 = decompose(zoo_files["mobilenet_v3_small-0.75-96"]).ops
    # Rescaling (x / 127.5 - 1) as two ops with a scalar constant, then hard-swish after the stem.
    assert [op.key for op in v3[:2]] == ["MUL|in=96x96x3,cscalar|out=96x96x3", "ADD|in=96x96x3,cscalar|out=96x96x3"]
    assert v3[3].op == "HARD_SWISH"
    # squeeze-excite: the gate (hard-sigmoid's x/6) then the channel-wise product
    assert any(a.const_inputs and b.op == "MUL" and len(b.inputs[1]) == 3 and b.inputs[1][:2] == (1, 1)
               for a, b in zip(v3, v3[1:]))
    eff = Counter(op.op for op in decompose(zoo_files["efficientnet_b0-64"]).ops)
    assert eff["MEAN"] == 17 and eff["LOGISTIC"] == eff["MUL"] == 65  # 16 SE blocks + head; swish = x * sigmoid(x)


def _variants(zoo_files) -> dict[tuple, object]:
    """One op spec per kind of op (op, fused activation, constant operands, padding, output rank)."""
    variants = {}
    for path in zoo_files.values():
        for op in decompose(path).ops:
            variants.setdefault((op.op, op.activation, op.const_inputs, op.padding, len(op.output)), op)
    return variants


def test_every_op_kind_has_a_microbenchmark_of_exactly_that_op(zoo_files, model_cache):
    from latprof.convert import ensure_models

    variants = _variants(zoo_files)
    assert {key[0] for key in variants} == set().union(*SMALL.values())
    failed = ensure_models(list(variants.values()), "float32", model_cache, workers=1)
    assert failed == {}
    for spec in variants.values():
        assert list(decompose(model_cache.path(spec, "float32")).ops) == [spec]


def test_zoo_model_runs_in_litert(zoo_files):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(zoo_files["mobilenet_v3_small-0.75-96"]))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert tuple(inp["shape"]) == (1, 96, 96, 3)
    interpreter.set_tensor(inp["index"], np.random.default_rng(0).uniform(0, 255, (1, 96, 96, 3)).astype("float32"))
    interpreter.invoke()
    probabilities = interpreter.get_tensor(out["index"])
    assert probabilities.shape == (1, 1000)
    assert np.all(np.isfinite(probabilities)) and abs(float(probabilities.sum()) - 1) < 1e-3


@pytest.mark.parametrize("name, ops", [("mobilenet_v1-0.25-128", 31), ("mobilenet_v1-0.25-128-freebatch", 34)])
def test_profiled_zoo_model_is_predicted_completely(name, ops, host_device, model_cache, tmp_path):
    """Profiled inside itself (the default method), every op of a zoo model gets a LUT row: with
    a free batch dimension, the shape ops LiteRT's interpreter runs too."""
    from latprof.lut import build_lut
    from latprof.predict import predict
    from latprof.profiling import profile
    from latprof.zoo import ensure_zoo

    (path,) = ensure_zoo([ZooModel.from_name(name)], "float32", model_cache, workers=1).values()
    summary = profile(host_device, tmp_path / "run", model_cache, networks={name: path}, record_state=False)
    assert summary.timed_alone == {} and summary.unsupported == {}
    assert summary.measured_now == summary.requested == 1
    prediction = predict(str(path), build_lut([tmp_path / "run"]))
    assert prediction.missing == [] and prediction.ops == ops
    assert prediction.latency_ms is not None and prediction.latency_ms > 0


def test_cli_lists_the_catalogue(run_cli):
    result = run_cli("zoo", "--list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == [model.name for model in CATALOGUE]
    assert {"family", "alpha", "resolution", "minimalistic", "cached"} <= set(rows[0])
    families = json.loads(run_cli("zoo", "--list", "--json", "--family", "mobilenet_v3_large").stdout)
    assert families and {row["family"] for row in families} == {"mobilenet_v3_large"}


def test_cli_refuses_unknown_family_without_tensorflow(run_cli):
    result = run_cli("zoo", "--family", "resnet", "-o", "unused")
    assert result.returncode == 2 and result.stderr.startswith("latprof: error: unknown zoo family 'resnet'")
    assert len(result.stderr.splitlines()) == 1


def test_zoo_module_does_not_import_tensorflow(python_executable, cli_env):
    code = "import latprof.zoo, sys; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    result = subprocess.run([python_executable, "-c", code], capture_output=True, text=True, env=cli_env, timeout=120)
    assert result.returncode == 0, result.stderr


def test_cli_writes_models(run_cli, tmp_path, zoo_files):
    out = tmp_path / "zoo"
    result = run_cli("zoo", "mobilenet_v1-0.25-128", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    target = out / "mobilenet_v1-0.25-128.tflite"
    assert written == [{"name": "mobilenet_v1-0.25-128", "path": str(target)}]
    assert sorted(p.name for p in out.iterdir()) == [target.name]
    # the CLI converted it on its own (another cache): the same ops as the library's conversion
    assert decompose(target).ops == decompose(zoo_files["mobilenet_v1-0.25-128"]).ops
    assert run_cli("zoo", "--list", "--json", "mobilenet_v1-0.25-128").stdout.count('"cached": true') == 1


def test_free_batch_zoo_model_adds_shape_ops_without_microbenchmarks(zoo_files, model_cache):
    """Built with Keras' default free batch (``-freebatch``), a model computes its Reshape's shape
    at run time.  Those few shape ops are timed inside the network (tests/test_free_batch.py); as
    single-op models they get no microbenchmark, and the reason says how to convert instead."""
    from latprof.builder import build_op_model
    from latprof.zoo import ensure_zoo

    (path,) = ensure_zoo([ZooModel.from_name("mobilenet_v1-0.25-128-freebatch")], "float32", model_cache,
                         workers=1).values()
    assert path != zoo_files["mobilenet_v1-0.25-128"]
    ops = decompose(path).ops
    shape_ops = [op for op in ops if op.op in ("SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE")]
    assert [op.key for op in shape_ops] == ["SHAPE|in=1x1x1000|out=4", "STRIDED_SLICE|in=4|out=scalar",
                                            "PACK|in=scalar,cscalar|out=2", "RESHAPE|in=1x1x1000,2|out=1000"]
    for op in shape_ops:
        with pytest.raises(LatprofError, match="free batch dimension: convert the model at batch 1"):
            build_op_model(op)
    batch_one = [op for op in decompose(zoo_files["mobilenet_v1-0.25-128"]).ops if op.op != "RESHAPE"]
    assert [op for op in ops if op not in shape_ops] == batch_one
    # a slice of activations is no shape arithmetic: refused without the batch-1 advice
    with pytest.raises(LatprofError, match=r"for op STRIDED_SLICE \(STRIDED_SLICE\|in=16x16x8\|out=8x16x8\)$"):
        build_op_model(OpSpec("STRIDED_SLICE", ((16, 16, 8),), (8, 16, 8)))


def _spawned_workers() -> list[int]:
    """Pool workers this test process started (multiprocessing's spawn entry point in their command line)."""
    import os
    from pathlib import Path

    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"spawn_main" in cmdline:
            found.append(int(proc.name))
    return found


def test_a_dead_conversion_worker_is_one_clear_error(tmp_path):
    """A worker killed mid-way (the OOM killer, a converter crash) stops the batch with a LatprofError
    that says a re-run resumes, not with a BrokenProcessPool traceback."""
    import os
    import signal
    import threading
    import time

    from latprof.convert import ModelCache
    from latprof.zoo import ensure_zoo

    models = [ZooModel("mobilenet_v1", 0.25, 64), ZooModel("mobilenet_v1", 0.25, 72)]
    outcome = {}

    def convert():
        try:
            ensure_zoo(models, "float32", ModelCache(tmp_path), workers=2)
            outcome["result"] = "converted"
        except Exception as exc:  # the test looks at what came out
            outcome["result"] = exc

    thread = threading.Thread(target=convert)
    thread.start()
    deadline = time.time() + 60
    while not _spawned_workers() and time.time() < deadline:
        time.sleep(0.05)
    workers = _spawned_workers()
    assert workers, "the pool started no worker"
    os.kill(workers[0], signal.SIGKILL)
    thread.join(120)
    assert isinstance(outcome.get("result"), LatprofError), outcome
    assert "conversion worker died" in str(outcome["result"]) and "re-run" in str(outcome["result"])
