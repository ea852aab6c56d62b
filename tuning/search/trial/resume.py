"""Trials that resume mid-way: a trial's checkpoints in the study's folder, and which trial a run continues.

While a trial trains, :class:`~estimators.common.checkpoint.FitCheckpoint` writes ``checkpoints/trial-<key>.npz``
in the study's folder (the export directory, beside ``optuna.db``) every ``search.checkpoint.every_epochs``
epochs or ``every_s`` seconds: the fit's state, and the trial's curves so far (``extra``). ``key`` is the
number of the trial's first attempt: a trial whose process died is queued again by the study store under a
new number (Optuna's retry, :mod:`tuning.search.store.storage`), and that retry, told the earlier attempts
(:class:`Attempt`), finds the first attempt's checkpoint and goes on from it: the epochs done are not trained
again, its curves continue those stored, the values the pruner was given are given again, and the trial's
MLflow run is the one its first attempt made (observers with ``on_trial_resume``). The checkpoint goes when
the trial ends (complete, pruned or failed; one stopped by Ctrl-C keeps it for its retry), and the folder
when the study's search ends.

Only a retry resumes, and only from a checkpoint of the same parameters: a first attempt that finds a file
of its key (left by an earlier study of the same name) removes it. Trials validated on K folds (``search.cv:
K``) and stacked trials (``search.stack``) write no checkpoints: they start over, as before.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuning.config.schema import StudyConfig

if TYPE_CHECKING:  # Keras loads with it: not when a command only looks at a stored study
    from estimators.common.checkpoint import FitCheckpoint, FitState

FOLDER = "checkpoints"


@dataclass(frozen=True)
class Attempt:
    """Which trial a run of ``number`` is: ``earlier`` lists the numbers of the attempts before it (oldest
    first; empty for a first attempt), whose checkpoint it may resume."""

    number: int
    earlier: tuple[int, ...] = ()

    @property
    def key(self) -> int:
        """The number of the first attempt, which names the trial's checkpoint."""
        return self.earlier[0] if self.earlier else self.number


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where a study's trials keep their checkpoints and how often they write them."""

    folder: Path
    every_epochs: int | None = None
    every_s: float | None = None

    @classmethod
    def of(cls, config: StudyConfig) -> CheckpointPolicy | None:
        """``search.checkpoint`` of ``config`` in its export directory (None when off)."""
        setting = config.search.checkpoint
        if setting is None:
            return None
        return cls(Path(config.export_dir) / FOLDER, setting.every_epochs, setting.every_s)

    def path(self, attempt: Attempt) -> Path:
        return self.folder / f"trial-{attempt.key}.npz"

    def resumable(self, attempt: Attempt, params: dict[str, Any]) -> FitState | None:
        """The checkpoint ``attempt`` goes on from: its first attempt's, when it is a retry and the checkpoint
        was written for the same ``params``; None otherwise (a stale file of a first attempt is removed)."""
        from estimators.common.checkpoint import read_checkpoint, remove_checkpoint

        path = self.path(attempt)
        if not attempt.earlier:
            remove_checkpoint(path)
            return None
        state = read_checkpoint(path)
        if state is None or not same_params(state.extra.get("params"), params):
            return None
        return state

    def callback(self, attempt: Attempt, extra, resume: FitState | None) -> FitCheckpoint:
        """The fit's checkpoint callback (``extra()``: the trial's state to store with it)."""
        from estimators.common.checkpoint import FitCheckpoint

        return FitCheckpoint(self.path(attempt), self.every_epochs, self.every_s, extra=extra, resume=resume)

    def remove(self, attempt: Attempt) -> None:
        from estimators.common.checkpoint import remove_checkpoint

        remove_checkpoint(self.path(attempt))


def same_params(stored: Any, params: dict[str, Any]) -> bool:
    """Whether a checkpoint's stored parameters are ``params`` (compared as JSON)."""
    return stored is not None and json.dumps(stored, sort_keys=True, default=str) == json.dumps(
        params, sort_keys=True, default=str)


def clear(config: StudyConfig, keep: set[int] | None = None) -> None:
    """Remove the study's checkpoints (a fresh start, a search that ended), but those of the trial keys in
    ``keep`` (trials still running or queued); the folder goes once empty."""
    from estimators.common.checkpoint import remove_checkpoint

    folder = Path(config.export_dir) / FOLDER
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in folder.glob("trial-*.npz*"):
        key = path.name[len("trial-"):].split(".", 1)[0]
        if not (key.isdigit() and int(key) in keep):
            remove_checkpoint(path)
