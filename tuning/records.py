"""Trial records: what every backend reports and what tracking, export and reports read."""

from __future__ import annotations

import base64
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

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
    epoch (of the first fold when cross-validating). For ensembles, a complete trial also carries
    ``best_epoch`` (its best validation epoch, whose weights early stopping restores), ``learning_rates`` (the rate of each epoch up to it)
    and ``valid_output`` (its predictions, or class probabilities, on the validation rows, float32), so
    the exporting process can select and retrain members it did not train itself. With several objectives
    (``search.objectives``) a complete trial's ``measures`` hold the other objectives, measured on its fitted
    pipeline (``n_params``, ``model_bytes``, ``latency_ms`` and ``latency_ms_b256``).
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
    best_epoch: int = 0
    learning_rates: list[float] = field(default_factory=list)
    valid_output: Any = None
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state == COMPLETE and self.value is not None and math.isfinite(self.value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_output(output: Any) -> dict[str, Any]:
    """A float32 array as JSON (shape + base64 of its little-endian bytes): a trial's validation output
    kept in a study store, about 5 characters a value."""
    array = np.ascontiguousarray(output, dtype="<f4")
    return {"shape": list(array.shape), "f4": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_output(stored: dict[str, Any] | None) -> np.ndarray | None:
    """The array :func:`encode_output` stored (None for None)."""
    if not stored:
        return None
    return np.frombuffer(base64.b64decode(stored["f4"]), dtype="<f4").reshape(stored["shape"]).copy()


INTERRUPTED = "interrupted by the user"  # the reason of a trial or study stopped by Ctrl-C / SIGTERM


def failure_reason(error: BaseException) -> str:
    """Why ``error`` stopped a trial or a study, as its record or MLflow run gives it (``Type: message``)."""
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    return f"{type(error).__name__}: {error}".strip()[:500]


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


def objective_values(record: TrialRecord, objectives: list[tuple[str, str]]) -> tuple[float, ...] | None:
    """A finished trial's value of each of ``objectives`` ((name, direction), the metric first: its
    ``value``; the others from its ``measures``), or None when it lacks one."""
    if not record.finished:
        return None
    values = [record.value, *(record.measures.get(name) for name, _ in objectives[1:])]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return tuple(float(v) for v in values)


def dominates(a: tuple[float, ...], b: tuple[float, ...], directions: list[str]) -> bool:
    """Whether objective values ``a`` are at least as good as ``b`` in every objective and better in one."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b, strict=True)]
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def pareto_front(records: list[TrialRecord], objectives: list[tuple[str, str]]) -> list[TrialRecord]:
    """The finished trials no other finished trial dominates on ``objectives``, by trial number (trials with
    equal values are all kept)."""
    directions = [direction for _, direction in objectives]
    points = [(r, v) for r in records if (v := objective_values(r, objectives)) is not None]
    front = [r for r, v in points if not any(dominates(w, v, directions) for _, w in points)]
    return sorted(front, key=lambda r: r.number)
