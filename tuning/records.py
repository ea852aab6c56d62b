"""Trial records: what every backend reports and what tracking, export and reports read."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

COMPLETE = "complete"
PRUNED = "pruned"
FAILED = "failed"
KILLED = "killed"
RUNNING = "running"


@dataclass
class TrialRecord:
    """One trial: its parameters, outcome and per-epoch curves.

    ``value`` is the objective on the validation data (mean over folds when ``cv`` > 1);
    ``history`` maps a Keras log name (``loss``, ``val_loss``, ``val_accuracy`` ...) to one value per
    epoch (of the first fold when cross-validating).
    """

    number: int
    params: dict[str, Any]
    state: str = RUNNING
    value: float | None = None
    metric: str = ""
    fold_scores: list[float] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    duration_s: float = 0.0
    reason: str | None = None
    started_at: float = 0.0
    traceback: str | None = None

    @property
    def finished(self) -> bool:
        return self.state == COMPLETE and self.value is not None and math.isfinite(self.value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PruneTrial(Exception):
    """Raised from an epoch report to stop a trial that is not promising."""


def better(a: float, b: float | None, direction: str) -> bool:
    """Whether objective value ``a`` beats ``b`` (None is beaten by anything)."""
    if b is None:
        return True
    return a < b if direction == "minimize" else a > b


def best_record(records: list[TrialRecord], direction: str) -> TrialRecord | None:
    """The best finished trial, or None."""
    best: TrialRecord | None = None
    for record in records:
        if record.finished and (best is None or better(record.value, best.value, direction)):
            best = record
    return best
