"""The study store: the study's state between runs and between workers (the other half of the search
contract is the trial scheduler, :mod:`tuning.search.schedulers.base`).

A :class:`StudyStore` keeps the stored trials (resume), study attributes (the search-space digest, the
shared parent-run id the study layer stores there), the trial budget (which trials count, which still run
somewhere, which a dead worker left) and who exports. It is built from the config alone (no runner), so a
command can look at a stored study before it loads any data. It knows nothing of MLflow or export;
:mod:`tuning.search.schedulers.registry` builds it by name.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuning.config.schema import StudyConfig, factory_digest, space_digest
from tuning.errors import StudyError
from tuning.parallel.workers import WorkerId
from tuning.records import COMPLETE, FAILED, PRUNED, RUNNING, TrialRecord

PARENT_RUN = "mlflow_parent_run_id"  # study attribute: the study layer's shared parent run (opaque here)
SPACE_DIGEST = "space_digest"
FACTORY_DIGEST = "factory_digest"  # sha256 of a model.build factory's source file
EXPORTED = "exported_trials"  # how many counted trials the last export had seen
COUNTED = (COMPLETE, PRUNED, FAILED)  # trial states that use up the budget (killed ones are retried)
ATTR_WAIT_S = 60.0  # how long a worker waits for the study's creator to record the parent run id


def space_changed(config: StudyConfig, location: str) -> StudyError:
    """The refusal to resume a study whose search space is not the stored one."""
    return StudyError(
        f"study '{config.name}' already exists in {location} with a different search space; "
        "pass --fresh to start it over, or give the study a new name"
    )


def factory_changed(config: StudyConfig, location: str) -> StudyError:
    """The refusal to resume a study whose model factory's source file changed."""
    return StudyError(
        f"study '{config.name}' already exists in {location}, trained with another version of its model "
        f"factory {config.model.factory.label} (its source file changed since); pass --fresh to start it over, "
        "or give the study a new name"
    )


def resume_problem(config: StudyConfig, location: str, stored_space: Any, stored_factory: Any) -> StudyError | None:
    """Why a stored study with these digests cannot be resumed with ``config`` (None: it can)."""
    if stored_space is not None and stored_space != space_digest(config):
        return space_changed(config, location)
    current = factory_digest(config)
    if stored_factory is not None and current is not None and stored_factory != current:
        return factory_changed(config, location)
    return None


class StudyStore(ABC):
    """The persistent state of one study (see the module docstring)."""

    def __init__(self, config: StudyConfig, state_dir: Path, storage: str | None = None,
                 worker: WorkerId | None = None):
        self.config = config
        self.state_dir = Path(state_dir)
        self.storage = storage
        self.worker = worker or WorkerId.current()
        self.created = False  # whether this process created the study's persistent state
        self.metric = ""  # the objective's name, set by open()

    # ---- before open: look, create nothing --------------------------------------------------------
    @property
    @abstractmethod
    def location(self) -> str:
        """Where the state lives, for messages."""

    @abstractmethod
    def peek_attr(self, key: str) -> Any:
        """A stored study attribute before ``open``, creating nothing (None when there is no study)."""

    @abstractmethod
    def peek_records(self, metric: str = "") -> list[TrialRecord] | None:
        """The stored trials before ``open`` (None when there is no stored study)."""

    def is_finished(self, n_trials: int, records: list[TrialRecord] | None = None) -> bool:
        """Whether the stored study already has ``n_trials`` counted trials, none running, and its best
        model exported (``records``: :meth:`peek_records`, if already read)."""
        records = self.peek_records() if records is None else records
        if not records or any(r.state == RUNNING for r in records):
            return False
        counted = sum(r.state in COUNTED for r in records)
        return counted >= n_trials and self.peek_attr(EXPORTED) == counted

    # ---- state ------------------------------------------------------------------------------------
    @abstractmethod
    def open(self, direction: str, metric: str, fresh: bool = False) -> None:
        """Create the study's state, or load it to resume; ``fresh`` deletes what was stored first."""

    @abstractmethod
    def get_attr(self, key: str) -> Any:
        """A stored study attribute, or None."""

    @abstractmethod
    def set_attr(self, key: str, value: Any) -> None:
        """Store a study attribute (visible to every worker of the study)."""

    @abstractmethod
    def records(self) -> list[TrialRecord]:
        """Every trial of the study, as stored."""

    def check_space(self) -> None:
        """Refuse to resume a study whose search space or model factory changed (its trials would not be
        comparable)."""
        stored, stored_factory = self.get_attr(SPACE_DIGEST), self.get_attr(FACTORY_DIGEST)
        problem = resume_problem(self.config, self.location, stored, stored_factory)
        if problem is not None:
            raise problem
        if stored is None:
            self.set_attr(SPACE_DIGEST, space_digest(self.config))
        current = factory_digest(self.config)
        if stored_factory is None and current is not None:
            self.set_attr(FACTORY_DIGEST, current)

    def shared_attr(self, key: str, create: Callable[[], Any], wait_s: float = ATTR_WAIT_S) -> tuple[Any, bool]:
        """The attribute ``key`` shared by every worker, and whether this call created it.

        The process that created the study creates the value; the others wait for it to appear (and
        create it themselves only if it never does, e.g. because the creator died in between).
        """
        value = None if self.created else self.wait_attr(key, wait_s)
        if value:
            return value, False
        value = create()
        self.set_attr(key, value)
        return value, True

    def wait_attr(self, key: str, wait_s: float, poll_s: float = 0.5) -> Any:
        """``get_attr(key)``, polling up to ``wait_s`` seconds while it is not there yet."""
        deadline = time.monotonic() + wait_s
        value = self.get_attr(key)
        while value is None and time.monotonic() < deadline:
            time.sleep(poll_s)
            value = self.get_attr(key)
        return value

    def close(self) -> None:
        """Let go of the state's connections at the end of a run (nothing to do by default)."""
        return None

    # ---- workers ----------------------------------------------------------------------------------
    def recover(self) -> None:
        """Mark trials whose worker died as failed (not counted) and queue their parameters again."""
        return None

    def running_numbers(self) -> set[int]:
        """Numbers of the trials some live worker is running right now."""
        return set()

    def pending_keys(self) -> set[int]:
        """The checkpoint keys (a trial's first attempt's number: ``tuning.search.trial.resume``) of the trials
        running or queued to run: their checkpoints are still wanted."""
        return set()

    def take_interrupted(self) -> dict[int, dict[str, Any]]:
        """Trials this process marked as interrupted since the last call (a dead worker's or its own
        Ctrl-C'd trial): number -> parameters. Each such trial is handled by exactly one process."""
        return {}

    # ---- export -----------------------------------------------------------------------------------
    @abstractmethod
    def export_due(self) -> bool:
        """Whether this process should refit and export the best model now (once per finished study)."""

    @abstractmethod
    def mark_exported(self) -> None:
        """Record that the best model of the current trials was exported."""
