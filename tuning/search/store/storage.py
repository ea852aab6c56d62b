"""Optuna's RDB storage for a study: the default SQLite file, PostgreSQL URLs, heartbeats and the retry of
a dead worker's trial."""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna

from tuning.search.store.budget import CANDIDATE

HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 30
MAX_RETRY = 3  # a configuration whose worker keeps dying (say, out of memory) is given up after this


def storage_url(state_dir: Path) -> str:
    """The default embedded storage: SQLite in the study's output directory (created by nothing here: the
    store's ``open`` makes the directory)."""
    return f"sqlite:///{(state_dir / 'optuna.db').resolve()}"


def holds_studies(url: str) -> bool:
    """Whether the storage at ``url`` has Optuna's tables, found without creating anything: an SQLite file
    that does not exist is not created, and no table is created in an existing database (opening a storage
    creates both). A database that cannot be inspected (a server down) answers True: opening it then says
    why it is unusable."""
    import sqlalchemy

    from tuning.parallel.sqlite import sqlite_path

    url = driver_url(url)
    path = sqlite_path(url)
    if path is not None and not Path(path).is_file():
        return False
    try:
        engine = sqlalchemy.create_engine(url)
    except Exception:
        return True
    try:
        return sqlalchemy.inspect(engine).has_table("studies")  # Optuna's table of studies
    except Exception:
        return True
    finally:
        engine.dispose()


def safe_url(url: str) -> str:
    """A storage URL fit for messages (password hidden)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Optuna's callback that queues a failed trial's parameters again."""
    with quiet_experimental():
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Heartbeats and retries are "experimental" in Optuna: a supported feature here, not news."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
        yield


def retry_history(trial: optuna.trial.FrozenTrial) -> list[int]:
    """The numbers of the attempts a retried trial follows, oldest first ([] for a first attempt)."""
    with quiet_experimental():
        return list(optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(trial))


class RetryInterrupted:
    """Queue an interrupted trial's parameters again as a fresh attempt, and remember the trial.

    Optuna's retry callback copies the failed trial's user attrs; the dead attempt's worker, MLflow run
    and scores must not follow the retry, so they are dropped (all but the random backend's candidate
    index, which the retry still runs). Only the process that failed a trial (the storage lets one win)
    calls this, so ``failed`` lists the trials this process is responsible for.
    """

    def __init__(self) -> None:
        self._retry = _retry_callback()
        self.failed: dict[int, dict] = {}  # number -> params of the trials handled here

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.failed[trial.number] = dict(trial.params)
        attempt = copy.deepcopy(trial)
        attempt.user_attrs = {key: value for key, value in trial.user_attrs.items() if key == CANDIDATE}
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
    fsyncs, and still survives the process dying: see :mod:`tuning.parallel.sqlite`); a server connection is
    checked before use. Workers starting together may race to create the tables: that is retried.
    """
    import random

    from tuning.compat.optuna import storage_engine
    from tuning.parallel.sqlite import relax_sync, use_wal

    url = driver_url(url)
    use_wal(url)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    kwargs = {"engine_kwargs": engine, "heartbeat_interval": HEARTBEAT_INTERVAL_S,
              "grace_period": GRACE_PERIOD_S, "heartbeat_stale_trial_callback": retry or RetryInterrupted()}
    for attempt in range(attempts):
        try:
            with quiet_experimental():
                storage = optuna.storages.RDBStorage(url, **kwargs)
            relax_sync(storage_engine(storage))
            return storage
        except Exception as exc:
            if attempt == attempts - 1:
                from tuning.errors import StudyError

                raise StudyError(f"cannot open the Optuna storage {safe_url(url)}: {exc}") from exc
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")
