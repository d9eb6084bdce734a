"""Where candidates train: local worker processes by default, or Ray tasks on a cluster.

Both hand back ``concurrent.futures.Future`` objects, so the search loop waits on whichever
candidate finishes first and never on a slow one longer than it must.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

from latprof.errors import LatprofError

# How often a worker checks that the search that started it is still there.
PARENT_POLL_SECONDS = 0.5


def die_with_parent(parent: int) -> None:
    """Worker initializer: exit as soon as the process that started the worker is gone.

    A search killed with SIGKILL cannot shut its pool down, and its idle workers, each holding
    TensorFlow and a dataset in memory, would live on beside the resumed search's.  A watcher
    thread (portable, unlike Linux's parent-death signal) ends the worker when it is re-parented."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


class LocalExecutor:
    """Fresh spawned processes (TensorFlow is not fork-safe), which exit with the search that
    started them; one task per core by default."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=die_with_parent, initargs=(os.getpid(),))

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
