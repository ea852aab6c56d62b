"""What a study produced (:class:`StudyResult`), and the result of a finished study read back from what
it stored (its export directory and study store) instead of running it again."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tuning.records import COMPLETE, FAILED, PRUNED, TrialRecord

BEST_FILE, METRICS_FILE = "best_params.json", "metrics.json"


@dataclass
class StudyResult:
    """What a finished (or interrupted) study produced."""

    name: str
    records: list[TrialRecord]
    best: TrialRecord | None
    test_metrics: dict[str, float] = field(default_factory=dict)
    export_dir: Path | None = None
    tracking_uri: str = ""
    parent_run_id: str = ""
    wall_time_s: float = 0.0
    interrupted: bool = False
    report_path: Path | None = None
    already_complete: bool = False  # a re-run of a finished study: nothing trained, results as stored
    n_trials: int = 0  # the budget asked for
    ensemble: dict | None = None  # the exported ensemble's members and validation score, when there is one
    # several objectives: (name, direction) of each, the metric first; what export.choose chose (its "front":
    # the Pareto front's trial numbers, "objectives": the chosen trial's values); None for one objective
    objectives: list[tuple[str, str]] = field(default_factory=list)
    choice: dict | None = None

    @property
    def front(self) -> list[TrialRecord]:
        """The Pareto front's trials (several objectives), by number; [] for one objective."""
        numbers = set((self.choice or {}).get("front", ()))
        return [r for r in self.records if r.number in numbers]

    def _count(self, state: str) -> int:
        return sum(r.state == state for r in self.records)

    @property
    def n_complete(self) -> int:
        return self._count(COMPLETE)

    @property
    def n_pruned(self) -> int:
        return self._count(PRUNED)

    @property
    def n_failed(self) -> int:
        return self._count(FAILED)

    @property
    def status(self) -> str:
        """The parent run's final status: KILLED (interrupted), FAILED (no trial completed) or FINISHED."""
        if self.interrupted:
            return "KILLED"
        return "FINISHED" if self.best is not None else "FAILED"

    def failure_reasons(self) -> list[tuple[str, int]]:
        """Why the trials that did not complete stopped: (reason, count), most frequent first. Numbers in a
        reason (the epoch, a value) are written as N so that trials failing the same way count together."""
        counts = Counter(re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "N", r.reason or f"{r.state} (no reason recorded)")
                         for r in self.records if r.state != COMPLETE)
        return counts.most_common()


def stored_result(name: str, records: list[TrialRecord], export_dir: Path, n_trials: int) -> StudyResult | None:
    """The result of a finished study from its export files and stored trials (None if they are missing)."""
    try:
        best_info = json.loads((export_dir / BEST_FILE).read_text())
        scores = json.loads((export_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    metric = best_info.get("metric", "")
    for record in records:
        record.metric = record.metric or metric
    best = next((r for r in records if r.number == best_info.get("trial")), None)
    if best is None:
        best = TrialRecord(best_info.get("trial", -1), best_info.get("params", {}), state=COMPLETE,
                           value=best_info.get(f"valid_{metric}"), metric=metric)
    report = export_dir / "report" / "report.html"
    choice = best_info.get("choice")
    objectives = list((choice or {}).get("directions", {}).items())
    return StudyResult(name, records, best, test_metrics=dict(scores.get("test", {})), export_dir=export_dir,
                       report_path=report if report.exists() else None, already_complete=True, n_trials=n_trials,
                       ensemble=best_info.get("ensemble"), objectives=objectives, choice=choice)
