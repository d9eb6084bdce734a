"""XNNPACK's own per-operator times inside a whole model, read through LiteRT's profiler.

``benchmark_model --enable_op_profiling`` gives a phone's per-op times inside a network; on the
host the Python interpreter has no profiler, but LiteRT's C library (``libLiteRt.so``, shipped in
the ai-edge-litert wheel) does: a compiled model made with the runtime option
``enable_profiling = true`` records an event per XNNPACK operator and run, timed by XNNPACK itself.
Its ``Lrt*Options`` builders are not exported, so the options are attached as what they build:
opaque TOML payloads under the identifiers ``xnnpack`` and ``runtime_options_string``.
A model with a free batch dimension runs at batch 1.
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from latprof.errors import LatprofError
from latprof.native import quiet_native_output

CPU = 1  # kLiteRtHwAcceleratorCpu
FLOAT32 = 1  # kLiteRtElementTypeFloat32: the first field of a ranked tensor type
# LiteRtRankedTensorType as int32s: the element type, then its LiteRtLayout: the rank (low 7 bits
# of a bit field) and LITERT_TENSOR_MAX_RANK dimensions
RANK_FIELD, RANK_BITS, DIMENSIONS_FIELD, MAX_RANK = 1, 0x7F, 2, 8
# tflite::Profiler::EventType values of the events read here
DEFAULT_EVENT, OPERATOR_EVENT, DELEGATE_OPERATOR_EVENT = 1, 2, 8
# The event that opens each run, before its operators: the graph's "Invoke".  (The RUNTIME_EVENT
# "invoke" comes only for a model without a signature def, and TFLiteConverter.from_keras_model
# writes one.)
RUN_EVENT = (DEFAULT_EVENT, b"Invoke")


class _MemoryUsage(ctypes.Structure):
    _fields_ = [("total_allocated_bytes", ctypes.c_size_t), ("in_use_allocated_bytes", ctypes.c_size_t),
                ("private_footprint_bytes", ctypes.c_size_t)]


class _Event(ctypes.Structure):
    """``ProfiledEventData`` of litert/c/litert_profiler_event.h."""

    _fields_ = [("tag", ctypes.c_char_p), ("event_type", ctypes.c_int), ("start_timestamp_us", ctypes.c_uint64),
                ("elapsed_time_us", ctypes.c_uint64), ("begin_mem_usage", _MemoryUsage),
                ("end_mem_usage", _MemoryUsage), ("event_metadata1", ctypes.c_int64),
                ("event_metadata2", ctypes.c_int64), ("event_source", ctypes.c_int)]


def library_path() -> Path:
    import ai_edge_litert

    return Path(ai_edge_litert.__file__).parent / "libLiteRt.so"


@cache
def library_sha256() -> str:
    """Hash of the library whose profiler times the ops: provenance of what it measured."""
    path = library_path()
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "unknown"


@cache
def _library():
    path = library_path()
    try:
        lib = ctypes.CDLL(str(path))
        lib.LiteRtCreateOpaqueOptions.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                                                  ctypes.POINTER(ctypes.c_void_p)]
        lib.LiteRtCreateModelFromFile.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.LiteRtGetTensorBufferHostMemory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.LiteRtGetTensorBufferSize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
        lib.LiteRtCompiledModelResizeInputTensor.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                                                             ctypes.POINTER(ctypes.c_int), ctypes.c_size_t]
        for name in ("LiteRtDestroyTensorBuffer", "LiteRtDestroyCompiledModel", "LiteRtDestroyModel"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        environment = ctypes.c_void_p()
        with quiet_native_output():  # it announces every accelerator it looks for
            _check(lib.LiteRtCreateEnvironment(0, None, ctypes.byref(environment)), "create a LiteRT environment")
    except (OSError, AttributeError) as exc:
        raise LatprofError(f"{path}: LiteRT's C library cannot be used to profile ops in networks ({exc}); "
                           "reinstall ai-edge-litert, or time ops isolated (--method isolated)") from None
    libc = ctypes.CDLL(None)
    libc.strdup.restype, libc.strdup.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    return lib, environment, libc


def _pin_free_dimensions(tensor_type: ctypes.Array) -> list[int]:
    """Set the free dimensions of a tensor type (a LiteRtRankedTensorType's bytes) to 1, in place;
    returns its dimensions if one was free, else [].

    A model converted with a free batch dimension (Keras' default) declares its inputs and
    outputs -1 there, and LiteRT makes no buffer for such a shape.  1 is what the file's
    ``shape`` holds where its ``shape_signature`` is free, so the model runs at the shapes
    ``latprof.tflite_file.decompose`` reads."""
    fields = np.frombuffer(tensor_type.raw[:4 * (DIMENSIONS_FIELD + MAX_RANK)], np.int32).copy()
    dimensions = fields[DIMENSIONS_FIELD:DIMENSIONS_FIELD + (int(fields[RANK_FIELD]) & RANK_BITS)]
    if (dimensions >= 0).all():
        return []
    dimensions[dimensions < 0] = 1
    ctypes.memmove(ctypes.addressof(tensor_type) + 4 * DIMENSIONS_FIELD, dimensions.tobytes(), dimensions.nbytes)
    return dimensions.tolist()


def _check(status: int, what: str) -> None:
    if status != 0:
        raise LatprofError(f"LiteRT could not {what} (status {status})")


@dataclass
class ProfiledModel:
    """A model compiled for the CPU with XNNPACK at ``threads`` threads and profiling on."""

    path: Path
    threads: int = 1

    def __post_init__(self) -> None:
        from latprof.tflite_file import read_model_bytes, verify

        # LiteRT's C API trusts the file: a truncated flatbuffer would crash the process.
        verify(read_model_bytes(self.path), str(self.path))
        lib, self._environment, libc = _library()
        self._lib = lib
        self._model, self._compiled, self._profiler = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        self._buffers: list[ctypes.c_void_p] = []
        what = f"load {self.path}"
        with quiet_native_output():
            _check(lib.LiteRtCreateModelFromFile(self._environment, str(self.path).encode(), ctypes.byref(self._model)),
                   what)
            options = ctypes.c_void_p()
            _check(lib.LiteRtCreateOptions(ctypes.byref(options)), what)
            _check(lib.LiteRtSetOptionsHardwareAccelerators(options, CPU), what)
            for identifier, toml in ((b"xnnpack", f"num_threads = {self.threads}\n".encode()),
                                     (b"runtime_options_string", b"enable_profiling = true\n")):
                opaque = ctypes.c_void_p()  # the runtime owns the payload and frees it with free()
                _check(lib.LiteRtCreateOpaqueOptions(identifier, libc.strdup(toml), ctypes.cast(libc.free, ctypes.c_void_p),
                                                     ctypes.byref(opaque)), what)
                _check(lib.LiteRtAddOpaqueOptions(options, opaque), what)
            _check(lib.LiteRtCreateCompiledModel(self._environment, self._model, options, ctypes.byref(self._compiled)),
                   f"compile {self.path}")
            self._inputs, self._outputs = self._make_buffers("Input"), self._make_buffers("Output")
            _check(lib.LiteRtCompiledModelGetProfiler(self._compiled, ctypes.byref(self._profiler)), "get the profiler")

    def _make_buffers(self, kind: str):
        lib, signature, count = self._lib, ctypes.c_void_p(), ctypes.c_size_t()
        _check(lib.LiteRtGetModelSignature(self._model, 0, ctypes.byref(signature)), f"read {self.path}'s signature")
        _check(getattr(lib, f"LiteRtGetNumSignature{kind}s")(signature, ctypes.byref(count)), "count tensors")
        buffers, rng = [], np.random.default_rng(0)
        for index in range(count.value):
            tensor, requirements, buffer = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
            tensor_type = ctypes.create_string_buffer(512)  # LiteRtRankedTensorType, only passed on
            _check(getattr(lib, f"LiteRtGetSignature{kind}TensorByIndex")(signature, index, ctypes.byref(tensor)),
                   "read a tensor")
            _check(lib.LiteRtGetRankedTensorType(tensor, tensor_type), "read a tensor type")
            dimensions = _pin_free_dimensions(tensor_type)
            if dimensions and kind == "Input":  # inputs are made first: the outputs' sizes follow theirs
                _check(lib.LiteRtCompiledModelResizeInputTensor(self._compiled, 0, index,
                                                                (ctypes.c_int * len(dimensions))(*dimensions),
                                                                len(dimensions)), f"fix {self.path}'s free batch at 1")
            _check(getattr(lib, f"LiteRtGetCompiledModel{kind}BufferRequirements")(
                self._compiled, 0, index, ctypes.byref(requirements)), "size a buffer")
            _check(lib.LiteRtCreateManagedTensorBufferFromRequirements(self._environment, tensor_type, requirements,
                                                                       ctypes.byref(buffer)), "make a buffer")
            self._buffers.append(buffer)
            buffers.append(buffer)
            address, size = ctypes.c_void_p(), ctypes.c_size_t()
            _check(lib.LiteRtGetTensorBufferHostMemory(buffer, ctypes.byref(address)), "map a buffer")
            _check(lib.LiteRtGetTensorBufferSize(buffer, ctypes.byref(size)), "size a buffer")
            # Inputs as the interpreter's timings feed them (latprof.devices.host): normal floats.
            floats = np.frombuffer(tensor_type.raw[:4], np.int32)[0] == FLOAT32
            data = rng.standard_normal(size.value // 4).astype(np.float32).tobytes() if floats and kind == "Input" \
                else bytes(size.value)
            ctypes.memmove(address, data, min(len(data), size.value))
        return (ctypes.c_void_p * len(buffers))(*buffers)

    def run(self) -> None:
        _check(self._lib.LiteRtRunCompiledModel(self._compiled, 0, len(self._inputs), self._inputs,
                                                len(self._outputs), self._outputs), f"run {self.path}")

    def operator_times(self, runs: int) -> list[list[tuple[str, float]]]:
        """Run ``runs`` times; per run, each operator's name and time in microseconds, in the
        order they ran: XNNPACK's operators, and the interpreter's own ops when some are not
        delegated."""
        lib = self._lib
        lib.LiteRtResetProfiler(self._profiler)
        lib.LiteRtStartProfiler(self._profiler)
        for _ in range(runs):
            self.run()
        lib.LiteRtStopProfiler(self._profiler)
        count = ctypes.c_int()
        _check(lib.LiteRtGetNumProfilerEvents(self._profiler, ctypes.byref(count)), "count profiler events")
        events = (_Event * max(1, count.value))()
        _check(lib.LiteRtGetProfilerEvents(self._profiler, count.value, events), "read profiler events")
        per_run: list[list[tuple[str, float]]] = []
        for event in events[:count.value]:
            if (event.event_type, event.tag) == RUN_EVENT:
                per_run.append([])
            elif event.event_type in (OPERATOR_EVENT, DELEGATE_OPERATOR_EVENT) and per_run:
                per_run[-1].append((event.tag.decode(errors="replace"), float(event.elapsed_time_us)))
        lib.LiteRtResetProfiler(self._profiler)
        if len(per_run) != runs:
            raise LatprofError(f"{self.path}: LiteRT's profiler recorded {len(per_run)} runs of {runs}")
        return per_run

    def __enter__(self) -> ProfiledModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for buffer in self._buffers:
            self._lib.LiteRtDestroyTensorBuffer(buffer)
        self._buffers = []
        if self._compiled:
            self._lib.LiteRtDestroyCompiledModel(self._compiled)
            self._compiled = ctypes.c_void_p()
        if self._model:
            self._lib.LiteRtDestroyModel(self._model)
            self._model = ctypes.c_void_p()
