"""Where candidates train: local worker processes by default, or Ray tasks on a cluster.

Both hand back ``concurrent.futures.Future`` objects, so the search loop waits on whichever
candidate finishes first and never on a slow one longer than it must.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

from latprof.errors import LatprofError


class LocalExecutor:
    """Fresh spawned processes (TensorFlow is not fork-safe); one task per core by default."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable, *args) -> Future:
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RayExecutor:
    """Ray tasks (one CPU each) on the cluster at ``address``, or a local Ray when None."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise LatprofError("--executor ray needs Ray: pip install 'ray>=2.9'") from None
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         **({} if address else {"num_cpus": workers}))
            except ConnectionError as exc:
                raise LatprofError(f"cannot reach the Ray cluster at {address}: {exc}") from None
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
        self._remote = {}

    def submit(self, fn: Callable, *args) -> Future:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(num_cpus=1)(fn)
        return remote.remote(*args).future()

    def shutdown(self) -> None:
        self._ray.shutdown()


def make_executor(name: str, workers: int | None = None, address: str | None = None):
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, workers)
    raise LatprofError(f"unknown executor {name!r}: 'local' or 'ray'")
