"""The MNAS search loop: ask the controller, look up latency, train, reward, tell; survive kill -9.

A search folder holds ``search.json`` (what was asked for), ``log.jsonl`` (one line per finished
evaluation, appended and fsynced as it finishes) and ``state.json`` (the controller's state, the
candidates asked so far and those told back, replaced atomically after every ask and tell).
Resuming reads both: evaluations in the log that the controller has not been told yet are told,
candidates asked but not in the log are trained again, nothing else is repeated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from latprof.errors import LatprofError
from latprof.jsonl import append_jsonl, read_jsonl, write_json
from latprof.locks import folder_lock
from latprof.search.registry import CONTROLLERS, make_controller
from latprof.search.reward import Reward
from latprof.search.train import TrainSettings, train_candidate
from latprof.space import get_space
from latprof.typed import typed, typed_value

CONFIG_FILE, LOG_FILE, STATE_FILE = "search.json", "log.jsonl", "state.json"
MAX_REJECTIONS = 20  # rejected candidates allowed per trained one before the search gives up


@dataclass(frozen=True)
class SearchDevice:
    """Where a search measures: device names ('host' or adb serials), the DeviceConfig's fields,
    and a phone's benchmark_model; kept so that ``--resume`` measures on the same device."""

    names: tuple[str, ...] = ("host",)
    config: dict = field(default_factory=dict)
    benchmark_binary: str | None = None



@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search; stored in the folder, so ``--resume`` needs nothing else."""

    target_ms: float
    controller: str = "ppo"
    space: str = "mnasnet"
    seed: int = 0
    alpha: float = -0.07
    beta: float = -0.07
    latency: str = "lut"
    lut: str | None = None
    predictor: str | None = None
    budget: int = 200
    workers: int = 2
    reject_outside: float | None = None  # skip training when LAT > f*T or LAT < T/f
    train: TrainSettings = field(default_factory=TrainSettings)
    controller_options: dict = field(default_factory=dict)
    device: SearchDevice = field(default_factory=SearchDevice)
    lut_sha256: str | None = None  # of the LUT the search started with
    allow_mixed: bool = False  # the LUT mixes runs of different provenance, and the user said so

    @property
    def reward(self) -> Reward:
        return Reward(self.target_ms, self.alpha, self.beta)

    @property
    def objective(self) -> str:
        """"reward" or "pareto": the controller option, or the controller's default."""
        return self.controller_options.get("objective", CONTROLLERS[self.controller].option_defaults()["objective"])

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self) -> None:
        if not (self.target_ms > 0 and self.budget >= 1 and self.workers >= 1):
            raise ValueError("the target, budget and workers must be positive")
        if self.controller not in CONTROLLERS:
            raise ValueError(f"unknown controller {self.controller!r}")
        if self.reject_outside is not None and not self.reject_outside > 1:
            raise ValueError(f"reject_outside is {self.reject_outside}, not a factor above 1")

    @classmethod
    def from_dict(cls, data: dict) -> SearchConfig:
        """A search description as ``to_dict`` wrote it, every field of the right type (ValueError if not)."""
        return typed(cls, data, "the search description")


@dataclass
class SearchProgress:
    trained: int
    budget: int
    best_reward: float | None
    seconds: float


def load_config(out_dir: Path) -> SearchConfig:
    path = Path(out_dir) / CONFIG_FILE
    if not path.is_file():
        raise LatprofError(f"{out_dir}: not a search folder (no {CONFIG_FILE}); start one with 'latprof search -o'")
    try:
        return SearchConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError, RecursionError, LatprofError) as exc:
        raise LatprofError(f"{path}: corrupt search description ({exc})") from None


def read_log(out_dir: Path, space=None) -> list[dict]:
    """The finished evaluations, each checked (a line latprof could have written), ids unique;
    with ``space``, their decisions must be candidates of it."""
    path = Path(out_dir) / LOG_FILE
    log = read_jsonl(path, required=("id", "arch", "reward", "rejected", "decisions", "latency_ms"))
    seen = set()
    for number, entry in enumerate(log, 1):
        problem = _entry_problem(entry, space)
        if not problem and entry["id"] in seen:
            problem = f"evaluation {entry['id']} is logged twice"
        if problem:
            raise LatprofError(f"{path}: corrupt evaluation on line {number} ({problem}); restore the file, or "
                               "start a new search")
        seen.add(entry["id"])
    return log


def _entry_problem(entry: dict, space) -> str:
    """What is wrong with a log line, or ""."""
    try:
        if typed_value(entry["id"], int, "id") < 0 or typed_value(entry["latency_ms"], float, "latency_ms") < 0:
            raise ValueError("a negative id or latency")
        typed_value(entry["arch"], str, "arch"), typed_value(entry["reward"], float, "reward")
        rejected = typed_value(entry["rejected"], bool, "rejected")
        accuracy = typed_value(entry.get("accuracy"), float | None, "accuracy")
        if not (0 <= accuracy <= 1 if accuracy is not None else rejected):
            raise ValueError(f"accuracy is {accuracy!r}, for an evaluation that was not rejected")
    except ValueError as exc:
        return str(exc)
    if space is not None and not _candidate(entry["decisions"], space):
        return f"decisions {entry['decisions']!r} are not a candidate of the space {space.name}"
    return ""


def _candidate(decisions, space) -> bool:
    sizes = [len(choice.options) for choice in space.choices()]
    return isinstance(decisions, list) and len(decisions) == len(sizes) and all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d < size for d, size in zip(decisions, sizes))


def read_state(out_dir: Path, config: SearchConfig, space, log: list[dict]):
    """The controller, the candidates asked (by id) and the ids told, from ``state.json``; each
    checked: the controller's state must be one it could have written for this space, the asked
    candidates candidates of it, and every logged evaluation one that was asked."""
    path = Path(out_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
        controller = CONTROLLERS[config.controller].from_state(state["controller"], workdir=Path(out_dir))
        if json.loads(json.dumps(controller.state())) != state["controller"]:
            raise ValueError("the controller's state does not read back as written")
        if controller.choices != [len(choice.options) for choice in space.choices()]:
            raise ValueError(f"the controller chooses among {controller.choices}, not the space's options")
        controller.check()
        asked = {int(k): v for k, v in dict(state["asked"]).items()}
        told = {int(i) for i in state["told"]}
        if not all(k >= 0 and _candidate(v, space) for k, v in asked.items()):
            raise ValueError("an asked candidate is not a candidate of the space")
        if not told <= set(asked) or not {entry["id"] for entry in log} <= set(asked):
            raise ValueError("an evaluation was told or logged but never asked")
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError,
            LatprofError) as exc:
        raise LatprofError(f"{path}: corrupt search state ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                           "; restore the file, or start a new search") from None
    return controller, asked, told


class _Search:
    """The state of one search folder and the steps that change it, each persisted at once."""

    def __init__(self, out_dir: Path, config: SearchConfig, resume: bool):
        self.out_dir, self.config = out_dir, config
        self.space = get_space(config.space)
        self.log = read_log(out_dir, self.space) if resume else []
        if resume and ((out_dir / STATE_FILE).is_file() or self.log):
            self.controller, self.asked, self.told = read_state(out_dir, config, self.space, self.log)
        else:
            sizes = [len(choice.options) for choice in self.space.choices()]
            self.controller = make_controller(config.controller, sizes, config.seed, workdir=out_dir,
                                              **config.controller_options)
            self.asked, self.told = {}, set()
        logged = {entry["id"]: entry for entry in self.log}
        for entry in self.log:  # finished before the kill, but the controller never heard of it
            if entry["id"] not in self.told:
                self._tell(entry)
        self.pending = [(i, d) for i, d in sorted(self.asked.items()) if i not in logged]

    def save(self) -> None:
        write_json(self.out_dir / STATE_FILE, {"controller": self.controller.state(), "told": sorted(self.told),
                                               "asked": {str(k): v for k, v in self.asked.items()}})

    def ask(self) -> tuple[int, list[int]]:
        if self.pending:
            return self.pending.pop(0)
        (decisions,) = self.controller.ask(1)
        index = max(self.asked, default=-1) + 1
        self.asked[index] = list(decisions)
        self.save()
        return index, list(decisions)

    def finish(self, entry: dict) -> None:
        append_jsonl(self.out_dir / LOG_FILE, [entry])
        self.log.append(entry)
        self._tell(entry)
        self.save()

    def _tell(self, entry: dict) -> None:
        pareto = self.controller.objective == "pareto"  # a rejected candidate counts as accuracy 0
        result = (entry.get("accuracy") or 0.0, entry["latency_ms"]) if pareto else entry["reward"]
        self.controller.tell([self.asked[entry["id"]]], [result])
        self.told.add(entry["id"])

    @property
    def trained(self) -> int:
        return sum(1 for entry in self.log if not entry["rejected"])


def run_search(out_dir: str | Path, config: SearchConfig | None, latency_source, executor, resume: bool = False,
               progress: Callable[[SearchProgress], None] = lambda p: None) -> list[dict]:
    """Search until ``config.budget`` candidates are trained; returns the log.  The folder is
    locked meanwhile: a second search on it is refused (``latprof.locks``)."""
    with folder_lock(out_dir, "search"):
        return _run_search(Path(out_dir), config, latency_source, executor, resume, progress)


def _run_search(out_dir: Path, config: SearchConfig | None, latency_source, executor, resume: bool,
                progress: Callable[[SearchProgress], None]) -> list[dict]:
    if resume:
        config = load_config(out_dir)
    elif (out_dir / CONFIG_FILE).exists():
        raise LatprofError(f"{out_dir} already holds a search: continue it with --resume, or choose another -o")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / CONFIG_FILE, config.to_dict())
    search = _Search(out_dir, config, resume)
    reward, started = config.reward, time.monotonic()
    running: dict[Future, dict] = {}

    def report() -> None:
        rewards = [entry["reward"] for entry in search.log if not entry["rejected"]]
        progress(SearchProgress(search.trained, config.budget, max(rewards, default=None), time.monotonic() - started))

    report()
    while search.trained + len(running) < config.budget or running:
        while len(running) < config.workers and search.trained + len(running) < config.budget:
            index, decisions = search.ask()
            arch = search.space.decode(decisions)
            latency_ms, source = latency_source.latency_ms(arch)
            entry = {"id": index, "arch": arch.to_string(), "decisions": decisions, "latency_ms": latency_ms,
                     "latency_source": source, "step": len(search.told), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            f = config.reject_outside
            if f and not config.target_ms / f <= latency_ms <= config.target_ms * f:
                search.finish({**entry, "accuracy": None, "reward": 0.0, "rejected": True, "train_seconds": 0.0})
                if len(search.log) - search.trained > MAX_REJECTIONS * max(1, search.trained + 1):
                    raise LatprofError(f"almost every candidate is further than {f}x from the {config.target_ms} ms "
                                       "target: loosen --reject-outside or move the target")
                continue
            running[executor.submit(train_candidate, arch.to_string(), config.train)] = entry
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in done:
            entry = running.pop(future)
            result = future.result()
            search.finish({**entry, "accuracy": round(result.accuracy, 5),
                           "reward": round(reward(result.accuracy, entry["latency_ms"]), 6), "rejected": False,
                           "train_seconds": round(result.seconds, 2), "params": result.params,
                           "wall_seconds": round(time.monotonic() - started, 1)})
            report()
    return search.log
