"""Keras -> .tflite conversion, and the content-addressed cache of microbenchmark models.

A float32 microbenchmark is written directly (``latprof.op_models``, milliseconds) when its form
is one latprof writes; any other, and every int8 one, is a Keras model converted by TensorFlow,
which costs 0.5 to 1.4 s.  Either way a model is made once per (op spec, dtype, generator,
TensorFlow version) and kept under its hash; large batches of conversions run in a pool of
worker processes, each paying TensorFlow's import once.
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

from latprof.errors import LatprofError
from latprof.native import quiet_native_output
from latprof.ops import OpSpec

GENERATOR_VERSION = "2"  # 2: float32 microbenchmarks written by latprof.op_models
DTYPES = ("float32", "int8")


def default_cache_dir() -> Path:
    return Path(os.environ.get("LATPROF_CACHE", Path.home() / ".cache" / "latprof")) / "models"


def convert_keras(model, dtype: str = "float32") -> bytes:
    """Convert a Keras model to TFLite; int8 is full-integer post-training quantization with
    random calibration data (latency does not depend on the calibration values)."""
    with quiet_native_output():
        return _frozen_conversion(model, dtype)


def _frozen_conversion(model, dtype: str) -> bytes:
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Tracing and freezing by hand is three times faster than from_keras_model's SavedModel
    # round trip (5 s instead of 15 s for MnasNet-A1) and gives the same ops.
    specs = [tf.TensorSpec(t.shape, tf.float32) for t in model.inputs]
    call = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    frozen = convert_variables_to_constants_v2(call.get_concrete_function(*specs))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if dtype == "int8":
        rng = np.random.default_rng(0)
        shapes = [tuple(d or 1 for d in t.shape) for t in model.inputs]  # a free batch dimension calibrates at 1
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.standard_normal(s).astype("float32") for s in shapes] for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif dtype != "float32":
        raise LatprofError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return converter.convert()


@cache
def _tensorflow_version() -> str:
    """Read once: importlib.metadata reads the package's files each time, half a millisecond,
    which thousands of cache paths would feel."""
    return version("tensorflow")


@dataclass(frozen=True)
class ModelCache:
    """Microbenchmark models under the hash of what determines their content."""

    root: Path

    def path(self, spec: OpSpec | str, dtype: str) -> Path:
        """Where the model of an op spec (or of an architecture string) lives."""
        text = spec.key if isinstance(spec, OpSpec) else spec
        ident = f"{text}|{dtype}|gen{GENERATOR_VERSION}|tf{_tensorflow_version()}"
        digest = hashlib.sha256(ident.encode()).hexdigest()[:24]
        return self.root / digest[:2] / f"{digest}.tflite"

    def missing(self, specs: Iterable[OpSpec], dtype: str) -> list[OpSpec]:
        return [spec for spec in specs if not self.path(spec, dtype).is_file()]

    def write(self, spec: OpSpec | str, dtype: str, data: bytes) -> Path:
        target = self.path(spec, dtype)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as handle:
            handle.write(data)
        os.replace(handle.name, target)  # atomic: a killed run never leaves half a model
        return target


def _written_directly(spec: OpSpec) -> bytes | None:
    """The float32 model of ``spec`` from latprof.op_models; None for a form it does not write."""
    from latprof.op_models import op_model_bytes

    try:
        return op_model_bytes(spec)
    except LatprofError:
        return None


def _single_op(data: bytes, spec: OpSpec) -> bytes:
    """``data``, once it is checked to hold ``spec``'s op and nothing else (int8 models keep their
    QUANTIZE and DEQUANTIZE at the edges)."""
    from latprof.tflite_file import decompose_bytes

    ops = decompose_bytes(data, spec.key).ops
    core = [op for op in ops if op.op not in ("QUANTIZE", "DEQUANTIZE")]
    if [op.key for op in core] != [spec.key]:
        raise LatprofError(f"microbenchmark for {spec.key} holds {[op.key for op in ops]}")
    return data


def microbenchmark(spec: OpSpec, dtype: str) -> bytes:
    """The single-op model of ``spec``: written directly for the float32 forms latprof.op_models
    knows, else the converted Keras model; checked to hold that op and nothing else."""
    data = _written_directly(spec) if dtype == "float32" else None
    if data is None:
        from latprof.builder import build_op_model

        data = convert_keras(build_op_model(spec), dtype)
    return _single_op(data, spec)


def _model_bytes(item: str, kind: str, dtype: str) -> bytes:
    """The .tflite of an op key (kind "op"), an architecture string (kind "arch") or a zoo model's
    cache key (kind "zoo", see latprof.zoo)."""
    if kind == "op":
        return microbenchmark(OpSpec.from_key(item), dtype)
    if kind == "zoo":
        from latprof.zoo import zoo_model_bytes

        return zoo_model_bytes(item, dtype)
    from latprof.arch import Architecture
    from latprof.builder import build_model

    return convert_keras(build_model(Architecture.from_string(item)), dtype)


def _convert_items(items: list[str], kind: str, dtype: str, root: str) -> list[tuple[str, str]]:
    """Worker: convert items into the cache, returning (item, error or "") for each."""
    with quiet_native_output():  # TensorFlow's import logs CUDA probing to fd 2
        import keras

    cache, results = ModelCache(Path(root)), []
    for item in items:
        try:
            cache.write(item, dtype, _model_bytes(item, kind, dtype))
            results.append((item, ""))
        except LatprofError as exc:
            results.append((item, str(exc)))
        keras.backend.clear_session()  # keeps memory and layer-name counters from growing
    return results


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool after the chunks in flight."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_chunks(kind: str, items: list[str], dtype: str, cache: ModelCache, chunk: int, workers: int,
                done: int, progress: Callable[[int], None]) -> dict[str, str]:
    """Run a conversion worker over chunks of items, in this process or a pool; returns failures.
    ``progress`` gets the running count of finished items, starting from ``done``."""
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    failed: dict[str, str] = {}
    total = done + len(items)
    if workers <= 1:
        results = (_convert_items(part, kind, dtype, str(cache.root)) for part in chunks)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_ignore_interrupts)
        n = len(chunks)
        results = pool.map(_convert_items, chunks, [kind] * n, [dtype] * n, [str(cache.root)] * n)
    try:
        for result in results:
            done += len(result)
            progress(done)
            failed.update({item: error for item, error in result if error})
    except BrokenProcessPool:
        raise LatprofError(f"a conversion worker died after {done} of {total} models were converted (out of "
                           "memory, or a crash in TensorFlow's converter); re-run: converted models are kept") from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return failed


def _write_directly(specs: list[OpSpec], cache: ModelCache, done: int, failed: dict[str, str],
                    progress: Callable[[int], None]) -> list[OpSpec]:
    """Write the float32 models latprof.op_models knows, in this process and without TensorFlow;
    returns the specs left for the converter.  A written model that fails the check goes into
    ``failed``, as a conversion that fails it does."""
    left = []
    for spec in specs:
        data = _written_directly(spec)
        if data is None:
            left.append(spec)
            continue
        try:
            cache.write(spec, "float32", _single_op(data, spec))
        except LatprofError as exc:
            failed[spec.key] = str(exc)
        done += 1
        progress(done)
    return left


def ensure_models(specs: list[OpSpec], dtype: str, cache: ModelCache, workers: int | None = None,
                  progress: Callable[[int], None] = lambda done: None) -> dict[OpSpec, str]:
    """Make sure every spec has its microbenchmark in the cache; returns the specs that could not
    be generated, with the reason.  Float32 models latprof writes directly are written first; the
    rest are converted, in parallel over processes when the batch is large enough to pay for each
    worker's TensorFlow import (about ten seconds)."""
    todo = cache.missing(dict.fromkeys(specs), dtype)
    done, failed = len(specs) - len(todo), {}
    if dtype == "float32":
        left = _write_directly(todo, cache, done, failed, progress)
        done, todo = done + len(todo) - len(left), left
    keys = [spec.key for spec in todo]
    workers = workers or min(os.cpu_count() or 1, max(1, len(keys) // 40))
    failed.update(_run_chunks("op", keys, dtype, cache, 8, workers, done, progress))
    return {OpSpec.from_key(key): error for key, error in failed.items()}


def ensure_architectures(archs: list, dtype: str, cache: ModelCache, workers: int | None = None,
                         progress: Callable[[int], None] = lambda done: None) -> dict[str, Path]:
    """The .tflite of each architecture, converted once (about 5 s each) and kept in the cache."""
    return ensure_whole_models("arch", [arch.to_string() for arch in archs], dtype, cache, workers, progress)


def ensure_whole_models(kind: str, items: list[str], dtype: str, cache: ModelCache, workers: int | None = None,
                        progress: Callable[[int], None] = lambda done: None) -> dict[str, Path]:
    """The .tflite of each whole model (architecture strings, kind "arch", or zoo cache keys, kind
    "zoo"), converted once (seconds each) and kept in the cache under its item text."""
    texts = list(dict.fromkeys(items))
    todo = [text for text in texts if not cache.path(text, dtype).is_file()]
    workers = workers or min(os.cpu_count() or 1, max(1, len(todo) // 4))
    failed = _run_chunks(kind, todo, dtype, cache, 2, workers, len(texts) - len(todo), progress)
    if failed:
        noun = "architectures" if kind == "arch" else "models"
        raise LatprofError(f"could not convert {len(failed)} {noun}: {next(iter(failed.values()))}")
    return {text: cache.path(text, dtype) for text in texts}
