"""The Optuna backend's study store: TPE (or random, CMA-ES, grid) sampling, per-epoch pruning, persistent storage.

Any number of workers (processes, on one machine or many) may run the same study: Optuna's storage is the
only thing they share and the arbiter of every race.

* **Budget.** A worker stops when ``n_trials`` trials are counted (complete, pruned, failed with a reason).
  A trial that starts when the trials before it (by number, which the storage assigns under a lock) already
  fill the budget is *surplus*: it trains nothing, is marked and is never counted, so the study never
  over-runs. While other workers' trials hold the last slots, the idle worker polls instead of stopping, so
  that a slot freed by a dead worker is still filled.
* **Dead workers.** Every running trial sends a heartbeat; one silent for ``GRACE_PERIOD_S`` is failed by
  Optuna and its parameters are queued again (``RetryHeartbeatStaleTrialCallback``). A trial whose process
  is known dead (same host, pid gone) is failed and queued at once, which makes a re-run after ``kill -9``
  resume without waiting; so is the trial interrupted by Ctrl-C.
* **Export.** The worker group that ran the last counted trial exports the best model, once.

:class:`OptunaStore` keeps the state (storage, budget, recovery, export vote);
:class:`~tuning.search.schedulers.optuna.OptunaScheduler` runs the trials. The random backend's store
(:mod:`.random`) is one too, with its seeded candidates queued and no pruner. Sampler and pruner:
:mod:`.sampling`; storage: :mod:`.storage`; the budget rules: :mod:`.budget`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from tuning.compat.optuna import storage_engine
from tuning.errors import StudyError
from tuning.parallel.sqlite import checkpoint
from tuning.parallel.workers import group_alive, is_alive
from tuning.records import TrialRecord
from tuning.search.store import objectives
from tuning.search.store.base import EXPORTED, SPACE_DIGEST, StudyStore
from tuning.search.store.budget import SURPLUS, WORKER, counts_toward_budget, holds_slot, to_record
from tuning.search.store.sampling import make_pruner, make_sampler
from tuning.search.store.storage import (
    GRACE_PERIOD_S,
    RetryInterrupted,
    holds_studies,
    make_storage,
    quiet_experimental,
    retry_history,
    safe_url,
    storage_url,
)

HEAL_AFTER_S = 60.0  # a finished study nobody exported is exported by a later run after this long


class OptunaStore(StudyStore):
    """One Optuna study per study name, in ``<output>/optuna.db`` unless ``storage`` names another database."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.url = self.storage or storage_url(self.state_dir)
        self.rdb: optuna.storages.RDBStorage | None = None
        self.retry = RetryInterrupted()  # the storage's heartbeat callback too: one record of what we failed
        self.study: optuna.Study | None = None
        self.n_trials = self.config.search.n_trials

    @property
    def location(self) -> str:
        return f"the Optuna storage {safe_url(self.url)}"

    # ---- before open --------------------------------------------------------------------------------
    def _peek(self, read: Callable[[optuna.Study], Any]) -> Any:
        """``read(study)`` of the stored study, None when there is none; creates nothing (no database file,
        no table: :func:`holds_studies`); the connections go after it."""
        if not holds_studies(self.url):
            return None
        storage = make_storage(self.url)
        try:
            return read(optuna.load_study(study_name=self.config.name, storage=storage))
        except KeyError:
            return None
        finally:
            storage_engine(storage).dispose()

    def peek_attr(self, key: str):
        return self._peek(lambda study: study.user_attrs.get(key))

    def peek_records(self, metric: str = "") -> list[TrialRecord] | None:
        return self._peek(lambda study: self._records(study.get_trials(deepcopy=False), metric))

    def close(self) -> None:
        """Close the storage's connections; an SQLite file is checkpointed, leaving no ``-wal``/``-shm`` files."""
        if self.rdb is not None:
            storage_engine(self.rdb).dispose()
        checkpoint(self.url)

    @staticmethod
    def _records(trials: list[optuna.trial.FrozenTrial], metric: str) -> list[TrialRecord]:
        return [to_record(t, metric) for t in trials if SURPLUS not in t.user_attrs and t.state != TrialState.WAITING]

    # ---- state --------------------------------------------------------------------------------------
    def open(self, direction: str, metric: str, fresh: bool = False) -> None:
        self.metric = metric
        if self.storage is None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self.rdb = make_storage(self.url, self.retry)
        name = self.config.name
        if fresh:
            try:
                optuna.delete_study(study_name=name, storage=self.rdb)
            except KeyError:
                pass
        wanted = objectives.directions(self.config, direction)
        try:  # several objectives: a multi-objective study (its sampler is told every value, no pruner)
            self.study = optuna.create_study(study_name=name, storage=self.rdb, directions=wanted)
            self.created = True
            if len(wanted) > 1:
                self.set_attr(objectives.OBJECTIVES, objectives.names(self.config, metric))
        except optuna.exceptions.DuplicatedStudyError:  # the storage decides who creates it
            self.study = optuna.load_study(study_name=name, storage=self.rdb)
            self._check_direction(wanted)
        if not self.created:
            self.wait_attr(SPACE_DIGEST, 5.0)  # its creator stores it right after creating the study
        self.check_space()
        self.study.sampler = self.study_sampler(len(self.study.get_trials(deepcopy=False)))
        self.study.pruner = self.study_pruner()

    def study_sampler(self, n_existing: int) -> optuna.samplers.BaseSampler:
        """The sampler of ``search.sampler`` (``n_existing``: trials already stored)."""
        return make_sampler(self.config, seed=self._seed(n_existing))

    def study_pruner(self) -> optuna.pruners.BasePruner:
        """The pruner of ``search.pruner``."""
        return make_pruner(self.config)

    def _check_direction(self, wanted: list[str]) -> None:
        stored = objectives.stored_directions(self.study)
        if len(stored) == len(wanted) == 1 and stored != wanted:
            raise StudyError(f"study '{self.config.name}' in {self.location} was created to {stored[0]} its metric, "
                             f"but {self.metric} is to {wanted[0]}; pass --fresh or rename the study")
        names = objectives.names(self.config, self.metric)
        stored_names = self.wait_attr(objectives.OBJECTIVES, 5.0) if len(stored) > 1 else [self.metric]
        if stored != wanted or (len(wanted) > 1 and stored_names != names):
            was = ", ".join(f"{n} ({d})" for n, d in zip(stored_names or ["?"] * len(stored), stored, strict=False))
            now = ", ".join(f"{n} ({d})" for n, d in zip(names, wanted, strict=True))
            raise StudyError(f"study '{self.config.name}' in {self.location} was created with the objectives "
                             f"{was}, not {now}; pass --fresh or rename the study")

    def _seed(self, n_existing: int) -> int:
        """The sampler seed: the study's seed for a fresh single-worker run (reproducible); shifted by the
        trials already stored (a resumed sampler does not replay its first draws) and by the worker, so
        parallel workers do not all propose the same parameters."""
        worker = self.worker
        salt = worker.index if self.storage is None else zlib.crc32(f"{worker.group}:{worker.index}".encode())
        return (self.config.search.seed + n_existing + 7919 * salt) % 2**32

    def get_attr(self, key: str):
        return self.study.user_attrs.get(key)

    def set_attr(self, key: str, value) -> None:
        self.study.set_user_attr(key, value)

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def records(self) -> list[TrialRecord]:
        return self._records(self.trials(), self.metric)

    def is_surplus(self, trial: optuna.Trial) -> bool:
        """Whether the trials numbered before this one already fill the budget (see the module docstring):
        such a trial trains nothing."""
        earlier = [t for t in self.trials() if t.number < trial.number]
        return sum(holds_slot(t) for t in earlier) >= self.n_trials

    # ---- dead workers ------------------------------------------------------------------------------
    def recover(self) -> None:
        with quiet_experimental():
            optuna.storages.fail_stale_trials(self.study)  # silent for GRACE_PERIOD_S: failed, queued again
        now = datetime.now()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get(WORKER)
            if worker is None and SURPLUS not in trial.user_attrs:
                age = (now - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0
                dead = age > GRACE_PERIOD_S  # never reached the objective and sends no heartbeat
            else:
                dead = is_alive(worker) is False
            if dead:
                self._fail_and_retry(trial)

    def _fail_and_retry(self, trial: optuna.trial.FrozenTrial) -> None:
        """Mark a dead worker's trial FAIL (the storage lets only one process win) and queue it again."""
        try:
            failed = self.study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):  # no longer running: another won
            return
        except RuntimeError as exc:  # the grid sampler calls study.stop() once its grid is covered: outside
            if "Study.stop" not in str(exc):  # optimize() there is nothing to stop (the trial is failed)
                raise
            failed = self.trial(trial.number)
        self.retry(self.study, failed)

    def trial(self, number: int) -> optuna.trial.FrozenTrial | None:
        """The stored trial numbered ``number`` (None if there is none)."""
        return next((t for t in self.trials() if t.number == number), None)

    def retry_interrupted(self, number: int) -> None:
        """The trial stopped by Ctrl-C is FAIL without a reason (not counted): queue its parameters again."""
        trial = self.trial(number)
        if trial is not None and trial.state == TrialState.FAIL and SURPLUS not in trial.user_attrs:
            self.retry(self.study, trial)

    def running_numbers(self) -> set[int]:
        return {t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if SURPLUS not in t.user_attrs}

    def pending_keys(self) -> set[int]:
        pending = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        return {(retry_history(t) or [t.number])[0] for t in pending if SURPLUS not in t.user_attrs}

    def take_interrupted(self) -> dict[int, dict]:
        failed, self.retry.failed = self.retry.failed, {}
        return failed

    # ---- export -------------------------------------------------------------------------------------
    def export_due(self) -> bool:
        """True for the worker group that ran the last counted trial, once per set of counted trials.

        Every worker reads the same stored trials, so exactly one group qualifies. While the budget is not
        full (a timeout), nobody exports as long as some trial still runs: its worker will. A finished study
        that nobody exported (its exporter died) is exported by a later run: at once when the exporter is
        known dead (same host), else after ``HEAL_AFTER_S``.
        """
        trials = self.trials()
        counted = [t for t in trials if counts_toward_budget(t)]
        if not counted or self.get_attr(EXPORTED) == len(counted):
            return False
        if len(counted) < self.n_trials and any(t.state == TrialState.RUNNING and SURPLUS not in t.user_attrs
                                                for t in trials):
            return False
        last = max(counted, key=lambda t: (t.datetime_complete or datetime.min, t.number))
        owner = (last.user_attrs.get(WORKER) or {}).get("group")
        if owner == self.worker.group or group_alive(owner) is False:
            return True
        finished = last.datetime_complete or datetime.min
        return (datetime.now() - finished).total_seconds() > HEAL_AFTER_S

    def mark_exported(self) -> None:
        self.set_attr(EXPORTED, sum(counts_toward_budget(t) for t in self.trials()))
