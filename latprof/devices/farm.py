"""Several phones of the same model as one device: the work is sharded, the provenance is one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from threading import Lock

from latprof.devices.android import AndroidDevice, Result, file_sha256, measure_in_rounds, network_profiles
from latprof.devices.base import Device, Progress, _no_progress
from latprof.errors import LatprofError
from latprof.measurement import NetworkProfile, Provenance, Timing
from latprof.ops import OpSpec


class PhoneFarm(Device):
    """Measures on every phone at once; a LUT built from it is valid for each of them.

    Phones whose provenance differs (another SoC, Android build, binary or clock setup) are
    refused: their measurements would not describe one device.  The farm's configuration is the
    phones' own, which must be one.
    """

    methods = AndroidDevice.methods
    delegates = AndroidDevice.delegates

    def __init__(self, phones: Sequence[AndroidDevice]):
        self.phones = list(phones)
        if not self.phones:
            raise LatprofError("a phone farm needs at least one phone")
        configs = {phone.config for phone in self.phones}
        if len(configs) > 1:
            raise LatprofError(f"the phones of a farm must share one configuration, not {len(configs)} "
                               f"({', '.join(map(str, configs))})")
        self.config = self.phones[0].config
        self._check_config(self.config)

    def provenance(self) -> Provenance:
        first, *others = [phone.provenance() for phone in self.phones]
        for phone, other in zip(self.phones[1:], others):
            first.require_same(other, f"phone {phone.serial}",
                               "shard only over phones of the same model, Android build and settings")
        return replace(first, details={**first.details, "serials": [phone.serial for phone in self.phones]})

    def measure_models(self, models: Sequence[str | Path], progress: Progress = _no_progress) -> list[Timing]:
        """Every model timed now, in rounds as on one phone (``measure_in_rounds``), each round
        dealt out round-robin."""
        files = {file_sha256(model): Path(model) for model in models}
        timings = measure_in_rounds(list(files), self.phones[0].settings.rounds, lambda order, report: self._shard(
            order, lambda phone, shard, done: phone.run_job({name: files[name] for name in shard}, done, fresh=True),
            report), progress, paced=False)
        return [timings[file_sha256(model)] for model in models]

    def time_isolated(self, models: Sequence[str | Path], progress: Progress = _no_progress) -> list[Timing]:
        """Results any phone already holds are collected first, so a resumed run never measures a
        model twice; the rest is dealt out round-robin."""
        names = [file_sha256(model) for model in models]
        files = dict(zip(names, map(Path, models)))
        results: dict[str, Result] = {}
        for phone in self.phones:
            results.update(phone.finished([name for name in files if name not in results]))
        todo = [name for name in files if name not in results]
        results.update(self._shard(todo, lambda phone, shard, report: phone.run_job(
            {name: files[name] for name in shard}, report), progress, already=len(results)))
        return [results[name] for name in names]

    def profile_networks(self, models: Sequence[Path], ops: Sequence[Sequence[OpSpec]],
                         progress: Progress = _no_progress) -> tuple[list[NetworkProfile], dict[str, str]]:
        """A network is timed whole and profiled on one phone.  Results any phone holds are
        collected first; a network one phone has timed whole but not profiled goes back to that
        phone, the others are dealt out round-robin."""
        self.phones[0]._require_in_network()
        names = [file_sha256(model) for model in models]
        files = dict(zip(names, map(Path, models)))
        wholes: dict[str, Result] = {}
        tables: dict[str, Result] = {}
        holder: dict[str, int] = {}
        for index, phone in enumerate(self.phones):
            found = phone.finished([name for name in files if name not in wholes], tolerant=True)
            wholes.update(found)
            holder.update(dict.fromkeys(found, index))
            tables.update(phone.finished([name for name in files if name not in tables], profiling=True, tolerant=True))
        todo = [name for name in files if name not in tables and not isinstance(wholes.get(name), Exception)]
        fresh = [name for name in todo if name not in holder]
        shards = [[name for name in todo if holder.get(name) == i] + fresh[i::len(self.phones)]
                  for i in range(len(self.phones))]
        done = len(files) - len(todo)
        counts, lock = [0] * len(self.phones), Lock()

        def report(index: int, count: int) -> None:
            with lock:
                counts[index] = count
                progress(done + sum(counts))

        with ThreadPoolExecutor(len(self.phones)) as pool:
            futures = [pool.submit(phone.profile_results, {name: files[name] for name in shard},
                                   lambda count, i=i: report(i, count))
                       for i, (phone, shard) in enumerate(zip(self.phones, shards)) if shard]
            for future in futures:
                phone_wholes, phone_tables = future.result()
                wholes.update(phone_wholes)
                tables.update(phone_tables)
        return network_profiles(models, names, ops, wholes, tables)

    def _shard(self, todo: list[str], run: Callable[[AndroidDevice, list[str], Progress], dict[str, Result]],
               progress: Progress, already: int = 0) -> dict[str, Result]:
        """Deal ``todo`` out round-robin and run each phone's share at once; all the results."""
        shards = [todo[i::len(self.phones)] for i in range(len(self.phones))]
        counts, lock = [0] * len(self.phones), Lock()
        results: dict[str, Result] = {}

        def report(index: int, done: int) -> None:
            with lock:
                counts[index] = done
                progress(already + sum(counts))

        progress(already)
        with ThreadPoolExecutor(len(self.phones)) as pool:
            futures = [pool.submit(run, phone, shard, lambda done, i=i: report(i, done))
                       for i, (phone, shard) in enumerate(zip(self.phones, shards)) if shard]
            for future in futures:
                results.update(future.result())
        return results
