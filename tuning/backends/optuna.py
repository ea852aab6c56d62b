"""Optuna backend: TPE (or random, CMA-ES, grid) sampling, per-epoch pruning, persistent storage.

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
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tuning.backends.base import EXPORTED, SPACE_DIGEST, SearchBackend
from tuning.records import COMPLETE, FAILED, KILLED, PRUNED, RUNNING, PruneTrial, TrialRecord
from tuning.space import grid, suggest
from tuning.workers import group_alive, is_alive

HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 30
MAX_RETRY = 3  # a configuration whose worker keeps dying (say, out of memory) is given up after this
POLL_S = 2.0  # how often an idle worker checks whether the last running trials finished
HEAL_AFTER_S = 60.0  # a finished study nobody exported is exported by a later run after this long
WORKER = "worker"  # user attr: the WorkerId of the process running the trial
SURPLUS = "surplus"  # user attr: the trial started after the budget was full; it trained nothing
RUN_ID = "mlflow_run_id"  # user attr: the trial's MLflow run


class TrialFailed(Exception):
    """A trial that could not train (its record holds the reason); Optuna marks it FAIL and goes on."""


def make_sampler(config, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler of ``search.sampler``, seeded with ``seed`` (default ``search.seed``)."""
    seed = config.search.seed if seed is None else seed
    name = config.search.sampler
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return optuna.samplers.GridSampler(grid(config.space), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=min(10, max(3, config.search.n_trials // 5)))


def min_resource(config) -> int:
    """Epochs every trial gets before a pruner may stop it."""
    return max(1, config.training.epochs // 20)


def make_pruner(config) -> optuna.pruners.BasePruner:
    name = config.search.pruner
    epochs = config.training.epochs
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min_resource(config))
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource(config), reduction_factor=3)
    return optuna.pruners.HyperbandPruner(min_resource=min_resource(config), max_resource=epochs, reduction_factor=3)


def pruning_steps(config) -> frozenset[int] | None:
    """The epochs at which the pruner can decide anything (None: every epoch).

    Successive halving and Hyperband only look at a trial when it reaches a rung (``min_resource`` times
    a power of 3), so reporting other epochs to the storage (two database round trips an epoch, ~10% of a
    small model's training time) changes nothing but the cost. The median pruner looks at every epoch.
    """
    name = config.search.pruner
    if name == "none":
        return frozenset()
    if name in ("hyperband", "successive_halving"):
        steps, step = set(), min_resource(config)
        while step <= config.training.epochs:
            steps.add(step)
            step *= 3
        return frozenset(steps)
    return None


def storage_url(state_dir: Path) -> str:
    """The default embedded storage: SQLite in the study's output directory."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(state_dir / 'optuna.db').resolve()}"


def safe_url(url: str) -> str:
    """A storage URL fit for messages (password hidden)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _retry_callback():
    """Optuna's callback that queues a failed trial's parameters again (renamed in Optuna 4.9)."""
    try:
        from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
    except ImportError:  # Optuna < 4.9
        from optuna.storages import RetryFailedTrialCallback as Retry
    with _quiet_experimental():
        return Retry(max_retry=MAX_RETRY)


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Heartbeats and retries are "experimental" in Optuna: a supported feature here, not news."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
        yield


class RetryInterrupted:
    """Queue an interrupted trial's parameters again as a fresh attempt, and remember the trial.

    Optuna's retry callback copies the failed trial's user attrs; the dead attempt's worker, MLflow run
    and scores must not follow the retry, so they are dropped. Only the process that failed a trial (the
    storage lets one win) calls this, so ``failed`` lists the trials this process is responsible for.
    """

    def __init__(self) -> None:
        self._retry = _retry_callback()
        self.failed: dict[int, dict] = {}  # number -> params of the trials handled here

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.failed[trial.number] = dict(trial.params)
        attempt = copy.deepcopy(trial)
        attempt.user_attrs = {}
        self._retry(study, attempt)


def driver_url(url: str) -> str:
    """A PostgreSQL URL with the driver that is installed: SQLAlchemy 2.1 reads ``postgresql://`` as
    psycopg 3, while psycopg2 is the one this project depends on."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and sep:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return f"postgresql+psycopg2://{rest}"
    return url


def make_storage(url: str, retry: RetryInterrupted | None = None, attempts: int = 3) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats and retries of dead workers' trials (StudyError if unusable).

    SQLite waits up to a minute for a lock (several local workers share one file) and runs in WAL mode
    with ``synchronous=NORMAL`` (a commit costs well under a millisecond instead of 15-20 ms of journal
    fsyncs, and still survives the process dying: see :mod:`tuning.sqlite`); a server connection is
    checked before use. Workers starting together may race to create the tables: that is retried.
    """
    import inspect
    import random

    from tuning.sqlite import relax_sync, use_wal

    url = driver_url(url)
    use_wal(url)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    callback = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"
    kwargs = {"engine_kwargs": engine, "heartbeat_interval": HEARTBEAT_INTERVAL_S,
              "grace_period": GRACE_PERIOD_S, callback: retry or RetryInterrupted()}
    for attempt in range(attempts):
        try:
            with _quiet_experimental():
                storage = optuna.storages.RDBStorage(url, **kwargs)
            relax_sync(storage.engine)
            return storage
        except Exception as exc:
            if attempt == attempts - 1:
                from tuning.errors import StudyError

                raise StudyError(f"cannot open the Optuna storage {safe_url(url)}: {exc}") from exc
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


_STATES = {
    TrialState.COMPLETE: COMPLETE,
    TrialState.PRUNED: PRUNED,
    TrialState.FAIL: FAILED,
    TrialState.RUNNING: RUNNING,
}


def to_record(trial: optuna.trial.FrozenTrial, metric: str) -> TrialRecord:
    """A stored Optuna trial as a TrialRecord (no curves: those live in MLflow)."""
    attrs = trial.user_attrs
    duration = trial.duration.total_seconds() if trial.duration else 0.0
    state = _STATES.get(trial.state, FAILED)
    reason = attrs.get("reason")
    if trial.state == TrialState.FAIL and reason is None:
        state, reason = KILLED, "interrupted: its worker stopped (parameters queued again)"
    return TrialRecord(
        number=trial.number,
        params=dict(trial.params),
        state=state,
        value=trial.value if trial.value is not None else attrs.get("value"),
        metric=metric,
        fold_scores=list(attrs.get("fold_scores", [])),
        epochs_run=int(attrs.get("epochs_run", 0)),
        duration_s=duration,
        reason=reason,
        started_at=trial.datetime_start.timestamp() if trial.datetime_start else 0.0,
    )


def counts_toward_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Complete, pruned and failed-with-a-reason trials use up ``n_trials``; interrupted ones do not."""
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    return trial.state in finished or (trial.state == TrialState.FAIL and "reason" in trial.user_attrs)


def holds_slot(trial: optuna.trial.FrozenTrial) -> bool:
    """Counted, or running/queued and not surplus: the trial has (or will have) a place in the budget."""
    active = trial.state in (TrialState.RUNNING, TrialState.WAITING) and SURPLUS not in trial.user_attrs
    return active or counts_toward_budget(trial)


@dataclass
class Budget:
    """Where a study stands: counted trials, trials running (somewhere) and trials queued."""

    done: int
    running: int
    waiting: int

    @classmethod
    def of(cls, trials: list[optuna.trial.FrozenTrial]) -> Budget:
        return cls(
            done=sum(counts_toward_budget(t) for t in trials),
            running=sum(t.state == TrialState.RUNNING and SURPLUS not in t.user_attrs for t in trials),
            waiting=sum(t.state == TrialState.WAITING for t in trials),
        )


class SurplusTrial(Exception):
    """A trial started after the budget was full; it is marked, trains nothing and is never counted."""


class OptunaBackend(SearchBackend):
    """One Optuna study per study name, in ``<output>/optuna.db`` unless ``storage`` names another database."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.url = self.storage or storage_url(self.state_dir)
        self.rdb: optuna.storages.RDBStorage | None = None
        self.retry = RetryInterrupted()  # the storage's heartbeat callback too: one record of what we failed
        self.study: optuna.Study | None = None
        self.n_trials = self.config.search.n_trials
        self._current: int | None = None  # storage id of the trial this process runs

    # ---- state --------------------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return f"the Optuna storage {safe_url(self.url)}"

    def open(self, fresh: bool = False) -> None:
        self.rdb = make_storage(self.url, self.retry)
        name = self.config.name
        if fresh:
            try:
                optuna.delete_study(study_name=name, storage=self.rdb)
            except KeyError:
                pass
        try:
            self.study = optuna.create_study(study_name=name, storage=self.rdb, direction=self.runner.direction)
            self.created = True
        except optuna.exceptions.DuplicatedStudyError:  # the storage decides who creates it
            self.study = optuna.load_study(study_name=name, storage=self.rdb)
            self._check_direction()
        if not self.created:
            self.wait_attr(SPACE_DIGEST, 5.0)  # its creator stores it right after creating the study
        self.check_space()
        n_existing = len(self.study.get_trials(deepcopy=False))
        self.study.sampler = make_sampler(self.config, seed=self._seed(n_existing))
        self.study.pruner = make_pruner(self.config)

    def _check_direction(self) -> None:
        if self.study.direction.name.lower() != self.runner.direction:
            from tuning.errors import StudyError

            raise StudyError(
                f"study '{self.config.name}' in {self.location} was created to {self.study.direction.name.lower()} "
                f"its metric, but {self.runner.metric} is to {self.runner.direction}; pass --fresh or rename the study"
            )

    def _seed(self, n_existing: int) -> int:
        """The sampler seed: the study's seed for a fresh single-worker run (reproducible); shifted by the
        trials already stored (a resumed sampler does not replay its first draws) and by the worker, so
        parallel workers do not all propose the same parameters."""
        worker = self.worker
        salt = worker.index if self.storage is None else zlib.crc32(f"{worker.group}:{worker.index}".encode())
        return (self.config.search.seed + n_existing + 7919 * salt) % 2**32

    def get_attr(self, key: str):
        return self.study.user_attrs.get(key)

    def peek_attr(self, key: str):
        """``get_attr`` before ``open``, creating nothing (None when there is no stored study)."""
        if self.storage is None and not (self.state_dir / "optuna.db").exists():
            return None
        try:
            return optuna.load_study(study_name=self.config.name, storage=make_storage(self.url)).user_attrs.get(key)
        except KeyError:
            return None

    def set_attr(self, key: str, value) -> None:
        self.study.set_user_attr(key, value)

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def records(self) -> list[TrialRecord]:
        return [to_record(t, self.runner.metric) for t in self.trials()
                if SURPLUS not in t.user_attrs and t.state != TrialState.WAITING]

    # ---- dead workers ------------------------------------------------------------------------------
    def recover(self) -> None:
        with _quiet_experimental():
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
            won = self.rdb.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            won = False
        if won:
            self.retry(self.study, self.rdb.get_trial(trial._trial_id))

    def running_numbers(self) -> set[int]:
        return {t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if SURPLUS not in t.user_attrs}

    def take_interrupted(self) -> dict[int, dict]:
        failed, self.retry.failed = self.retry.failed, {}
        return failed

    # ---- trials -------------------------------------------------------------------------------------
    def run(self, n_trials: int, timeout: float | None) -> list[TrialRecord]:
        self.n_trials = n_trials
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            self.recover()
            state = Budget.of(self.trials())
            if state.done >= n_trials:
                break
            if state.waiting == 0 and state.done + state.running >= n_trials:
                time.sleep(POLL_S)  # other workers hold the last slots; one whose worker dies comes back
                continue
            self._run_one()
        return self.records()

    def _run_one(self) -> None:
        try:
            self.study.optimize(self.objective, n_trials=1, catch=(TrialFailed, SurplusTrial))
        except KeyboardInterrupt:
            self._retry_interrupted()
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # this process stalled (a sleeping laptop) and others gave its trial up and queued it again
        finally:
            self._current = None

    def _retry_interrupted(self) -> None:
        """The trial stopped by Ctrl-C is FAIL without a reason (not counted): queue its parameters again."""
        if self._current is None:
            return
        trial = self.rdb.get_trial(self._current)
        if trial.state == TrialState.FAIL and SURPLUS not in trial.user_attrs:
            self.retry(self.study, trial)

    def is_surplus(self, trial: optuna.Trial) -> bool:
        """Whether the trials numbered before this one already fill the budget (see the module docstring)."""
        earlier = [t for t in self.trials() if t.number < trial.number]
        return sum(holds_slot(t) for t in earlier) >= self.n_trials

    def objective(self, trial: optuna.Trial) -> float:
        self._current = trial._trial_id
        if self.is_surplus(trial):
            trial.set_user_attr(SURPLUS, True)
            raise SurplusTrial()
        trial.set_user_attr(WORKER, self.worker.as_dict())

        steps = pruning_steps(self.config)

        def report(epoch: int, value: float) -> None:
            if steps is not None and epoch + 1 not in steps:
                return
            trial.report(value, step=epoch + 1)
            if trial.should_prune():
                raise PruneTrial()

        record = self.runner.run(trial.number, suggest(trial, self.config.space), report=report)
        run_id = self.run_id_of(trial.number) if self.run_id_of else None
        if run_id:
            trial.set_user_attr(RUN_ID, run_id)
        trial.set_user_attr("epochs_run", record.epochs_run)
        trial.set_user_attr("fold_scores", record.fold_scores)
        if record.reason:
            trial.set_user_attr("reason", record.reason)
        if record.state == PRUNED:
            raise optuna.TrialPruned(record.reason)
        if record.state != COMPLETE:
            raise TrialFailed(record.reason)
        return float(record.value)

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
