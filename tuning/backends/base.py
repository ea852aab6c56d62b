"""The backend contract: schedule trials on a runner, persist the study, return every trial record.

Every backend keeps the study's state between runs (``open``) so that re-running a command resumes it,
stores a few study attributes (the MLflow parent run id, the search-space digest, what was exported)
and tells the study layer which trials are still running somewhere and whether this process should
export the best model.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuning.config import StudyConfig, space_digest
from tuning.errors import StudyError
from tuning.records import TrialRecord
from tuning.workers import WorkerId

if TYPE_CHECKING:  # the backends import without TensorFlow (the CLI checks a study before loading it)
    from tuning.trial import TrialRunner

PARENT_RUN = "mlflow_parent_run_id"
SPACE_DIGEST = "space_digest"
EXPORTED = "exported_trials"  # how many counted trials the last export had seen
ATTR_WAIT_S = 60.0  # how long a worker waits for the study's creator to record the parent run id


def space_changed(config: StudyConfig, location: str) -> StudyError:
    """The refusal to resume a study whose search space is not the stored one."""
    return StudyError(
        f"study '{config.name}' already exists in {location} with a different search space; "
        "pass --fresh to start it over, or give the study a new name"
    )


class SearchBackend(ABC):
    """Chooses parameters and runs trials through ``runner.run``; knows nothing of tracking/export."""

    def __init__(self, config: StudyConfig, runner: TrialRunner, state_dir: Path, storage: str | None = None,
                 worker: WorkerId | None = None):
        self.config = config
        self.runner = runner
        self.state_dir = Path(state_dir)
        self.storage = storage
        self.worker = worker or WorkerId.current()
        self.created = False  # whether this process created the study's persistent state
        self.run_id_of: Callable[[int], str | None] | None = None  # trial number -> tracking run (optional)

    # ---- persistent state -------------------------------------------------------------------------
    @abstractmethod
    def open(self, fresh: bool = False) -> None:
        """Create the study's state, or load it to resume; ``fresh`` deletes what was stored first."""

    @abstractmethod
    def get_attr(self, key: str) -> Any:
        """A stored study attribute, or None."""

    @abstractmethod
    def set_attr(self, key: str, value: Any) -> None:
        """Store a study attribute (visible to every worker of the study)."""

    @abstractmethod
    def peek_attr(self, key: str) -> Any:
        """``get_attr`` before ``open``, creating nothing (None when there is no stored study)."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the state lives, for messages."""

    def check_space(self) -> None:
        """Refuse to resume a study whose search space changed (its trials would not be comparable)."""
        stored = self.get_attr(SPACE_DIGEST)
        if stored is None:
            self.set_attr(SPACE_DIGEST, space_digest(self.config))
        elif stored != space_digest(self.config):
            raise space_changed(self.config, self.location)

    def parent_run(self, create: Callable[[], str], wait_s: float = ATTR_WAIT_S) -> tuple[str, bool]:
        """The study's MLflow parent run id and whether this call created it.

        The process that created the study creates the run; the others wait for its id to appear (and
        create it themselves only if it never does, e.g. because the creator died in between).
        """
        run_id = None if self.created else self.wait_attr(PARENT_RUN, wait_s)
        if run_id:
            return run_id, False
        run_id = create()
        self.set_attr(PARENT_RUN, run_id)
        return run_id, True

    def wait_attr(self, key: str, wait_s: float, poll_s: float = 0.5) -> Any:
        """``get_attr(key)``, polling up to ``wait_s`` seconds while it is not there yet."""
        deadline = time.monotonic() + wait_s
        value = self.get_attr(key)
        while value is None and time.monotonic() < deadline:
            time.sleep(poll_s)
            value = self.get_attr(key)
        return value

    # ---- running ------------------------------------------------------------------------------------
    @abstractmethod
    def run(self, n_trials: int, timeout: float | None) -> list[TrialRecord]:
        """Run trials until the study has ``n_trials`` counted trials (or ``timeout`` seconds pass);
        return all the study's records."""

    @abstractmethod
    def records(self) -> list[TrialRecord]:
        """Every trial of the study, as stored."""

    def recover(self) -> None:
        """Mark trials whose worker died as failed (not counted) and queue their parameters again."""
        return None

    def running_numbers(self) -> set[int]:
        """Numbers of the trials some live worker is running right now."""
        return set()

    def take_interrupted(self) -> dict[int, dict[str, Any]]:
        """Trials this process marked as interrupted since the last call (a dead worker's or its own
        Ctrl-C'd trial): number -> parameters. Each such trial is handled by exactly one process."""
        return {}

    # ---- export ---------------------------------------------------------------------------------------
    def export_due(self) -> bool:
        """Whether this process should refit and export the best model now (once per finished study)."""
        return True

    def mark_exported(self) -> None:
        """Record that the best model of the current trials was exported."""
        return None


def make_backend(config: StudyConfig, runner: TrialRunner, state_dir: Path, storage: str | None = None,
                 worker: WorkerId | None = None) -> SearchBackend:
    """The backend named by ``search.backend``."""
    if config.search.backend == "random":
        from tuning.backends.random import RandomSearchBackend

        if storage:
            raise StudyError("--storage needs the optuna backend; the random backend keeps its state in "
                             "random_state.json in the output directory (use search.n_jobs to parallelise it)")
        return RandomSearchBackend(config, runner, state_dir, worker=worker)
    from tuning.backends.optuna import OptunaBackend

    return OptunaBackend(config, runner, state_dir, storage=storage, worker=worker)
