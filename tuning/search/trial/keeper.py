"""The fitted models of the best trials run in this process, so the export can reuse them instead of
training them again."""

from __future__ import annotations

from typing import Any

from tuning.records import TrialRecord

__all__ = ["ModelKeeper"]


class ModelKeeper:
    """Holds the fitted estimators of the ``size`` best finished trials offered to it.

    Trials rank by value in ``direction`` (ties: the lower trial number), as the export ranks them
    (:func:`tuning.export.ensembling.ranked_trials`), so what the export asks for is here when this
    process trained it.
    """

    def __init__(self, direction: str, size: int = 1) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', not {direction!r}")
        self.direction = direction
        self.size = max(1, int(size))
        self._models: dict[int, tuple[float, Any]] = {}

    def _rank(self, item: tuple[int, tuple[float, Any]]) -> tuple[float, int]:
        number, (value, _) = item
        return (-value if self.direction == "maximize" else value), number

    def offer(self, record: TrialRecord, estimator: Any) -> bool:
        """Keep ``estimator``, the fitted model of trial ``record``, if the trial is finished and among the
        best ``size``; return whether it is kept (the model it pushes out is dropped)."""
        if not record.finished or estimator is None:
            return False
        self._models[record.number] = (float(record.value), estimator)
        ranked = sorted(self._models.items(), key=self._rank)[: self.size]
        self._models = dict(ranked)
        return record.number in self._models

    def get(self, number: int) -> Any | None:
        """The fitted model of trial ``number``, or None if it is not kept here."""
        kept = self._models.get(number)
        return None if kept is None else kept[1]

    @property
    def best_number(self) -> int | None:
        """The number of the best trial kept (None before any)."""
        return min(self._models.items(), key=self._rank)[0] if self._models else None

    @property
    def numbers(self) -> list[int]:
        """The kept trials' numbers, best first."""
        return [number for number, _ in sorted(self._models.items(), key=self._rank)]

    def __contains__(self, number: object) -> bool:
        return number in self._models

    def __len__(self) -> int:
        return len(self._models)
