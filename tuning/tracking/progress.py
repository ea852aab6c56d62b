"""Live progress on the terminal: trial k/N, best so far, elapsed and ETA; a final summary table."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tuning.records import COMPLETE, FAILED, PRUNED, TrialRecord, better


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


class ProgressDisplay:
    """A trial observer that draws a progress bar and logs one line per trial."""

    portable = False  # it draws in the launching process

    def __init__(self, n_trials: int, metric: str, direction: str, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True, log_path=False)
        self.metric, self.direction, self.quiet = metric, direction, quiet
        self.best: float | None = None
        self.best_number: int | None = None
        self.progress = Progress(
            TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, disable=quiet, transient=False,
        )
        self.task = self.progress.add_task("", total=n_trials)
        self.started = time.monotonic()

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def resume(self, records: list[TrialRecord]) -> None:
        """Start from a resumed study's finished trials (they count towards the total) and best value."""
        done = [r for r in records if r.state in (COMPLETE, PRUNED, FAILED)]
        for record in done:
            if record.state == COMPLETE and record.value is not None and better(record.value, self.best, self.direction):
                self.best, self.best_number = record.value, record.number
        self.progress.update(self.task, completed=len(done), description=self._describe())

    def _describe(self, running: int | None = None) -> str:
        best = f"best {self.metric} {_fmt(self.best)} (trial {self.best_number})" if self.best is not None else "no result yet"
        return best + (f" | running trial {running}" if running is not None else "")

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        self.progress.update(self.task, description=self._describe(number))

    def on_trial_end(self, record: TrialRecord) -> None:
        if record.state == COMPLETE and record.value is not None and better(record.value, self.best, self.direction):
            self.best, self.best_number = record.value, record.number
        self.progress.update(self.task, advance=1, description=self._describe())
        if not self.quiet:
            params = ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in record.params.items())
            extra = f" ({record.reason})" if record.reason and record.state != COMPLETE else ""
            measures = "".join(f" {k}={_fmt(v)}" for k, v in record.measures.items())  # several objectives
            self.progress.console.log(escape(  # reasons and parameters are text, never markup
                f"trial {record.number}: {record.state} {self.metric}={_fmt(record.value)}{measures} "
                f"epochs={record.epochs_run} {record.duration_s:.1f}s [{params}]{extra}"
            ), highlight=False)


class _PlainTable(Table):
    """A table whose cells are text (a parameter value like ``[64, 32]`` is not read as markup)."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(escape(c) if isinstance(c, str) else c for c in cells), **kwargs)


def choice_text(choice: dict) -> str:
    """How a study of several objectives chose its exported point (``export.choose``, as
    :func:`tuning.export.choice.choose` recorded it), in words: ``best mse where latency_ms <= 0.5``."""
    where = ", ".join(f"{name} {bound}" for name, bound in choice.get("where", {}).items())
    met = "" if choice.get("met", True) else " (no trial of the front meets it: the front's best)"
    return f"best {choice['best']}" + (f" where {where}" if where else "") + met


def add_front(table: Table, result: Any) -> None:
    """Several objectives: how the exported point was chosen, and each trial of the Pareto front with its
    objectives (``*``: the exported one)."""
    choice = getattr(result, "choice", None)
    if not choice:
        return
    table.add_row("chosen by", choice_text(choice))
    names = list(choice.get("directions", {}))
    table.add_row("pareto front", f"{len(choice['front'])} trials ({', '.join(names)})")
    chosen = result.best.number if result.best is not None else None
    for record in result.front:
        values = [record.value, *(record.measures.get(name) for name in names[1:])]
        mark = " *" if record.number == chosen else ""
        table.add_row(f"  trial {record.number}{mark}", "  ".join(_fmt(v) for v in values))


def summary_table(result: Any) -> Table:
    """The final table: best params, validation and test scores (the exported model's: the ensemble's when
    there is one), epochs, the Pareto front (several objectives), wall time, export."""
    table = _PlainTable(title=f"study {escape(result.name)}", show_header=False)
    best = result.best
    table.add_row("trials", f"{result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed")
    if best is None:
        table.add_row("best", "no trial completed")
    else:
        table.add_row("chosen trial" if getattr(result, "choice", None) else "best trial", str(best.number))
        for key, value in best.params.items():
            table.add_row(f"  {key}", _fmt(value) if isinstance(value, float) else str(value))
        table.add_row(f"validation {best.metric}", _fmt(best.value))
        ensemble = getattr(result, "ensemble", None)
        if ensemble:
            members = ", ".join(f"{m['trial']} ({m['weight']:.2f})" for m in ensemble["members"])
            table.add_row("exported model", f"ensemble of trials {members}")
            table.add_row(f"validation {best.metric} (ensemble)", _fmt(ensemble.get(f"valid_{best.metric}")))
        for key, value in result.test_metrics.items():
            table.add_row(f"test {key}", _fmt(value))
        table.add_row("epochs (best trial)", str(best.epochs_run))
    add_front(table, result)
    if getattr(result, "already_complete", False):
        table.add_row("wall time", "nothing run: the study was already complete")
    else:
        table.add_row("wall time", f"{result.wall_time_s:.1f} s")
    if result.export_dir:
        table.add_row("model exported to", str(result.export_dir))
    if getattr(result, "report_path", None):
        table.add_row("report", str(result.report_path))
    table.add_row("MLflow", f"{result.tracking_uri} run {result.parent_run_id}")
    return table
