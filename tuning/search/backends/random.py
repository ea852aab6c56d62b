"""Random search exactly as scikit-learn's RandomizedSearchCV samples it, one live trial at a time.

``RandomizedSearchCV._run_search`` is ``evaluate_candidates(ParameterSampler(...))``; we draw the same
candidates from the same ``ParameterSampler`` with the same seed, and the runner scores each with the
same folds (``check_cv``) and early stopping on the validation set. Running candidate by candidate is
what lets every trial appear in MLflow while the search runs.

The study persists in ``<output>/random_state.json``: seed, space digest, the candidate list and every
trial (its candidate, state and record). A re-run resumes: counted trials are kept, a trial whose process
died is marked killed and its candidate runs again under a new trial number. With ``search.n_jobs`` > 1
the candidates are fitted in parallel through joblib (loky processes by default, or the backend named by
``search.joblib_backend``, e.g. Dask or Ray when installed); each process tracks its own trials.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sklearn.model_selection import ParameterSampler

from tuning.errors import StudyError
from tuning.parallel.workers import WorkerId, is_alive, limit_threads
from tuning.records import KILLED, RUNNING, TrialRecord, decode_output, encode_output
from tuning.search.backends.base import COUNTED, EXPORTED, StudyStore, TrialScheduler
from tuning.search.space import to_distributions, to_python

if TYPE_CHECKING:
    from tuning.search.trial import TrialRunner

STATE_FILE = "random_state.json"


def candidates(config, n_trials: int) -> list[dict]:
    """The seeded candidate list (identical to RandomizedSearchCV's for the same seed)."""
    sampler = ParameterSampler(to_distributions(config.space), n_iter=n_trials, random_state=config.search.seed)
    return [to_python(p) for p in sampler]


class StateFile:
    """The JSON state, rewritten atomically under an exclusive lock (parallel workers update it too)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read, apply ``change`` in place, write back; return the new state."""
        with self._locked():
            state = self.read()
            change(state)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(state, indent=1, default=str))
            os.replace(tmp, self.path)
            return state

    def delete(self) -> None:
        with self._locked():
            self.path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
            try:
                import fcntl
            except ImportError:  # no advisory locks (Windows): single-process use only
                yield
                return
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class StateRecorder:
    """A trial observer that writes each trial's start and end to the state file (picklable: it goes
    to the process that runs the trial)."""

    portable = True

    def __init__(self, state: StateFile, worker: WorkerId, candidate_of: dict[int, int]) -> None:
        self.state, self.worker, self.candidate_of = state, worker, candidate_of

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        entry = {"candidate": self.candidate_of[number], "state": RUNNING, "params": params,
                 "worker": {**self.worker.as_dict(), "pid": os.getpid()}, "record": None}
        self.state.update(lambda s: s.setdefault("trials", {}).__setitem__(str(number), entry))

    def on_trial_end(self, record: TrialRecord) -> None:
        stored = {**record.to_dict(), "history": {}, "traceback": None,  # curves live in MLflow
                  "valid_output": None if record.valid_output is None else encode_output(record.valid_output)}

        def change(s: dict[str, Any]) -> None:
            entry = s.setdefault("trials", {}).setdefault(str(record.number), {})
            entry.update(state=record.state, record=stored)

        self.state.update(change)


def _stored_record(stored: dict[str, Any]) -> TrialRecord:
    return TrialRecord(**{**stored, "valid_output": decode_output(stored.get("valid_output"))})


def _run_remote(runner: TrialRunner, number: int, params: dict[str, Any]) -> TrialRecord:
    """One trial in a joblib worker (module level, so it pickles)."""
    return runner.run(number, params)


def joblib_config(name: str | None, n_jobs: int):
    """``joblib.parallel_config`` for ``n_jobs`` on the named joblib backend (Ray needs registering)."""
    import joblib

    if name == "ray":
        try:
            from ray.util.joblib import register_ray
        except ImportError as exc:
            raise StudyError("search.joblib_backend 'ray' needs the ray package") from exc
        register_ray()
    if name == "dask":
        try:
            import distributed  # noqa: F401  (joblib's dask backend uses the current dask client)
        except ImportError as exc:
            raise StudyError("search.joblib_backend 'dask' needs the dask[distributed] package") from exc
    return joblib.parallel_config(backend=name, n_jobs=n_jobs) if name else joblib.parallel_config(n_jobs=n_jobs)


class RandomStore(StudyStore):
    """The random search's state file: candidates, trials and study attributes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.state = StateFile(self.state_dir / STATE_FILE)
        self._killed: dict[int, dict[str, Any]] = {}  # trials recover() marked killed

    @property
    def location(self) -> str:
        return str(self.state.path)

    # ---- before open --------------------------------------------------------------------------------
    def peek_attr(self, key: str) -> Any:
        return self.get_attr(key)

    def peek_records(self, metric: str = "") -> list[TrialRecord] | None:
        return self.records() if self.state.path.exists() else None

    # ---- state --------------------------------------------------------------------------------------
    def open(self, direction: str, metric: str, fresh: bool = False) -> None:
        self.metric = metric
        if fresh:
            self.state.delete()
        config = self.config

        def create(s: dict[str, Any]) -> None:
            if not s:
                s.update(study=config.name, seed=config.search.seed, attrs={}, trials={},
                         candidates=candidates(config, config.search.n_trials))
                self.created = True

        state = self.state.update(create)
        if state.get("seed") != config.search.seed:
            raise StudyError(f"study '{config.name}' in {self.location} was sampled with seed {state.get('seed')}, "
                             f"not {config.search.seed}; pass --fresh or rename the study")
        self.check_space()
        self.recover()

    def get_attr(self, key: str) -> Any:
        return self.state.read().get("attrs", {}).get(key)

    def set_attr(self, key: str, value: Any) -> None:
        self.state.update(lambda s: s.setdefault("attrs", {}).__setitem__(key, value))

    def recover(self) -> None:
        """Trials left running by a dead process become killed; a live one means the study is in use."""
        def change(s: dict[str, Any]) -> None:
            for number, entry in s.get("trials", {}).items():
                if entry.get("state") != RUNNING:
                    continue
                worker = entry.get("worker")
                if is_alive(worker) and worker.get("pid") != os.getpid():
                    raise StudyError(f"study '{self.config.name}' is being run by another process "
                                     f"(pid {worker['pid']}); its state is {self.location}")
                entry["state"] = KILLED
                entry["record"] = TrialRecord(int(number), entry.get("params", {}), state=KILLED,
                                              reason="interrupted: its process stopped").to_dict()
                self._killed[int(number)] = entry.get("params", {})

        self.state.update(change)

    def take_interrupted(self) -> dict[int, dict[str, Any]]:
        killed, self._killed = self._killed, {}
        return killed

    def records(self) -> list[TrialRecord]:
        trials = self.state.read().get("trials", {})
        return [_stored_record(trials[key]["record"]) for key in sorted(trials, key=int) if trials[key].get("record")]

    def _counted(self) -> int:
        return sum(e.get("state") in COUNTED for e in self.state.read().get("trials", {}).values())

    def export_due(self) -> bool:
        """Once per set of counted trials (one process runs a random study)."""
        counted = self._counted()
        return counted > 0 and self.get_attr(EXPORTED) != counted

    def mark_exported(self) -> None:
        self.set_attr(EXPORTED, self._counted())

    # ---- the plan -------------------------------------------------------------------------------------
    def plan(self, n_trials: int) -> list[tuple[int, int, dict[str, Any]]]:
        """(trial number, candidate index, params) still to run: candidates without a counted trial, up to
        the budget. A candidate's first attempt has its index as trial number (RandomizedSearchCV's order);
        the retry of an interrupted one gets the next unused number."""
        config = self.config

        def extend(s: dict[str, Any]) -> None:
            if len(s["candidates"]) < n_trials:  # a larger --n-trials: keep the drawn ones, append
                s["candidates"] += candidates(config, n_trials)[len(s["candidates"]):]

        state = self.state.update(extend)
        pool, trials = state["candidates"], state["trials"]
        counted = [e for e in trials.values() if e.get("state") in COUNTED]
        done = {e["candidate"] for e in counted}
        todo = [i for i in range(len(pool)) if i not in done][: max(0, n_trials - len(counted))]
        used = {int(n) for n in trials}
        fresh = max([len(pool) - 1, *used]) + 1
        plan = []
        for index in todo:
            if index in used:
                number, fresh = fresh, fresh + 1
            else:
                number = index
            plan.append((number, index, pool[index]))
        return plan


class RandomScheduler(TrialScheduler):
    """Runs the seeded candidates in order until ``n_trials`` are counted or ``timeout`` passes."""

    store: RandomStore

    def n_jobs(self) -> int:
        """Parallel candidate fits: ``search.n_jobs`` (-1: every core)."""
        jobs = self.config.search.n_jobs
        return (os.cpu_count() or 1) if jobs == -1 else jobs

    def run(self, runner: TrialRunner, n_trials: int, timeout: float | None) -> None:
        plan = self.store.plan(n_trials)
        deadline = None if timeout is None else time.monotonic() + timeout
        recorder = StateRecorder(self.store.state, self.store.worker, {number: index for number, index, _ in plan})
        todo = [(number, params) for number, _, params in plan]
        if self.n_jobs() > 1 and len(todo) > 1:
            self._run_parallel(runner, todo, deadline, recorder)
        else:
            self._run_here(runner, todo, deadline, recorder)

    @staticmethod
    def _in_time(plan: list[tuple[int, dict]], deadline: float | None) -> Iterator[tuple[int, dict]]:
        for item in plan:
            if deadline is not None and time.monotonic() > deadline:
                return
            yield item

    def _run_here(self, runner: TrialRunner, plan, deadline, recorder: StateRecorder) -> None:
        runner.observers.insert(0, recorder)
        try:
            for number, params in self._in_time(plan, deadline):
                runner.run(number, params)
        finally:
            runner.observers.remove(recorder)

    def _run_parallel(self, runner: TrialRunner, plan, deadline, recorder: StateRecorder) -> None:
        """Candidates through joblib: portable observers (tracking, state) go with each trial; the others
        (progress display) are told here as results come back."""
        from joblib import Parallel, delayed

        jobs = min(self.n_jobs(), len(plan))
        limit_threads(jobs)  # loky workers inherit the environment: TensorFlow threads divided between them
        portable = [o for o in runner.observers if getattr(o, "portable", False)]
        local = [o for o in runner.observers if not getattr(o, "portable", False)]
        remote = runner.detached([recorder, *portable])
        tasks = (delayed(_run_remote)(remote, number, params) for number, params in self._in_time(plan, deadline))
        with joblib_config(self.config.search.joblib_backend, jobs):
            for record in Parallel(return_as="generator_unordered")(tasks):
                for observer in local:
                    observer.on_trial_start(record.number, record.params)
                    observer.on_trial_end(record)


STORE, SCHEDULER = RandomStore, RandomScheduler
