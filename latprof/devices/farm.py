"""Several phones of the same model as one device: the work is sharded, the provenance is one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from threading import Lock

from latprof.devices.android import AndroidDevice, file_sha256
from latprof.measurement import Provenance, Timing


class PhoneFarm:
    """Measures on every phone at once; a LUT built from it is valid for each of them.

    Phones whose provenance differs (another SoC, Android build, binary or clock setup) are
    refused: their measurements would not describe one device.
    """

    def __init__(self, phones: Sequence[AndroidDevice]):
        self.phones = list(phones)

    def provenance(self) -> Provenance:
        first, *others = [phone.provenance() for phone in self.phones]
        for phone, other in zip(self.phones[1:], others):
            first.require_same(other, f"phone {phone.serial}",
                               "shard only over phones of the same model, Android build and settings")
        return replace(first, details={**first.details, "serials": [phone.serial for phone in self.phones]})

    def measure_ops(self, models: Sequence[str | Path], progress: Callable[[int], None] = lambda done: None,
                    fresh: bool = False) -> list[Timing]:
        return self.measure_models(models, progress, fresh)

    def measure_models(self, models: Sequence[str | Path], progress: Callable[[int], None] = lambda done: None,
                       fresh: bool = False) -> list[Timing]:
        """Results any phone already holds are collected first, so a resumed run never measures
        a model twice (unless ``fresh``: all are timed now); the rest is dealt out round-robin."""
        names = [file_sha256(model) for model in models]
        files = dict(zip(names, map(Path, models)))
        results: dict[str, Timing] = {}
        if not fresh:
            for phone in self.phones:
                results.update(phone.finished([name for name in files if name not in results]))
        todo = [name for name in files if name not in results]
        shards = [todo[i::len(self.phones)] for i in range(len(self.phones))]
        counts, lock = [0] * len(self.phones), Lock()
        already = len(results)

        def report(index: int, done: int) -> None:
            with lock:
                counts[index] = done
                progress(already + sum(counts))

        with ThreadPoolExecutor(len(self.phones)) as pool:
            futures = [pool.submit(phone.run_job, {name: files[name] for name in shard},
                                   lambda done, i=i: report(i, done), fresh)
                       for i, (phone, shard) in enumerate(zip(self.phones, shards)) if shard]
            for future in futures:
                results.update(future.result())
        return [results[name] for name in names]
