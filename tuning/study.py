"""A study in three stages: prepare (data, runner, study store, tracking) -> search -> finish (refit,
export, log), closed on one path whether it succeeded, was interrupted or failed.

``run_study`` takes the study as one loaded ``StudyConfig``, its command-line overrides already applied
(the commands load the file once, then hand the config over); the study file's text for MLflow comes from
that one load (``StudyConfig.source``).

A re-run of a finished study (its trials all counted, its best model exported) trains nothing: its
result is read back from the export directory and the study store.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from tuning.config import recipe
from tuning.config.schema import StudyConfig, load_study, space_digest
from tuning.coordination import close_orphan_runs, open_parent_run, start_helpers
from tuning.data.sources import DatasetSplit
from tuning.errors import ExportFailed
from tuning.export import mlflow_model
from tuning.export.baseline import fit_baseline
from tuning.export.choice import choose
from tuning.export.ensembling import build_ensemble, exported_model
from tuning.export.files import export_model, make_pipeline, test_metrics
from tuning.export.results import StudyResult, stored_result
from tuning.parallel import interrupt
from tuning.parallel.workers import interrupt_all, wait_all
from tuning.plan import Draft, StudyPlan, draft, resolve
from tuning.records import INTERRUPTED, TrialRecord, best_record, failure_reason
from tuning.report.html import report_safely
from tuning.search import lr_bounds
from tuning.search.schedulers import StudyStore, TrialScheduler, make_scheduler, make_store
from tuning.search.store.base import FACTORY_DIGEST, PARENT_RUN, SPACE_DIGEST, resume_problem
from tuning.search.trial import resume
from tuning.search.trial.keeper import ModelKeeper
from tuning.search.trial.runner import StudyObserver, TrialRunner, make_runner
from tuning.tracking.progress import ProgressDisplay, choice_text
from tuning.tracking.tracker import MlflowTracker

__all__ = ["RunOptions", "StudyResult", "run_study"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run a study: what is not part of the study's config."""

    quiet: bool = False
    console: Any = None
    observers: Sequence[StudyObserver] = ()
    workers: int = 1
    storage: str | None = None
    fresh: bool = False
    worker: bool = False


class _Collector:
    """Keeps the records of trials run in this process (for an interrupted study)."""

    portable = False

    def __init__(self) -> None:
        self.records: list[TrialRecord] = []

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        pass

    def on_trial_end(self, record: TrialRecord) -> None:
        self.records.append(record)


@dataclass
class Session:
    """The collaborators of one run of a study, built by :func:`prepare`."""

    config: StudyConfig
    options: RunOptions
    split: DatasetSplit
    runner: TrialRunner
    store: StudyStore
    scheduler: TrialScheduler
    tracker: MlflowTracker
    display: ProgressDisplay
    collector: _Collector
    started: float
    keeper: ModelKeeper
    helpers: list = field(default_factory=list)


def flat_settings(config: StudyConfig) -> dict[str, Any]:
    """The study config as dotted keys (``search.n_trials``), for the parent run's params."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            out[prefix] = value

    walk("", config.model_dump(mode="json"))
    return out


# ---------------------------------------------------------------------------------------------- prepare


def finished_result(config: StudyConfig, options: RunOptions) -> StudyResult | None:
    """A finished study's stored result when this run would add nothing (see the module docstring)."""
    if options.fresh or options.worker:
        return None
    store = make_store(config, config.export_dir, storage=options.storage)
    records = store.peek_records()
    if not records or not store.is_finished(config.search.n_trials, records):
        return None
    if store.peek_attr(SPACE_DIGEST) != space_digest(config) or resume_problem(
            config, store.location, None, store.peek_attr(FACTORY_DIGEST)):
        return None  # opening the store refuses it, with the reason
    result = stored_result(config.name, records, config.export_dir, config.search.n_trials)
    if result is not None:
        import mlflow

        result.tracking_uri = config.mlflow.tracking_uri or mlflow.get_tracking_uri()
        result.parent_run_id = store.peek_attr(PARENT_RUN) or ""
    return result


def print_notes(notes: list[str], console: Console) -> None:
    """What loading and preprocessing decided (columns dropped, the task inferred ...), before the search."""
    for note in notes:
        console.print(f"[bold]note:[/] {escape(note)}", highlight=False)


def prepare(plan: StudyPlan, options: RunOptions, started: float) -> Session:
    """Build the runner, the study store, the scheduler and the tracking of ``plan`` (its ``config`` is the
    one the search uses, on its loaded ``split``), in that order, each given what it needs; open the store and
    the shared parent run; start ``--workers`` helpers. The plan's range-test step gives its notes and, once
    the store accepted the space, stores a range test run here.

    A step that fails (or Ctrl-C) lets go of what the steps before it opened, as :func:`close` does: the
    parent run ends FAILED (KILLED) with the reason (tag ``study.reason``), the store is closed, no helper
    is left running; then the error goes on."""
    config, split, lr_step, model_notes = plan.config, plan.split, plan.lr_step, plan.notes
    console = options.console or Console(stderr=True, log_path=False)
    config.export_dir.mkdir(parents=True, exist_ok=True)
    metric, direction = config.search.resolved_metric(split.task), config.search.direction(split.task)
    tracker = MlflowTracker(config.mlflow.tracking_uri, config.experiment_name)
    store: StudyStore | None = None
    session: Session | None = None
    try:
        display = ProgressDisplay(config.search.n_trials, metric, direction, quiet=options.quiet, console=console)
        collector = _Collector()
        keeper = ModelKeeper(direction, config.export.ensemble.pool)  # the models the export may reuse
        runner = make_runner(config, split, observers=[tracker, collector, display, *options.observers],
                             keeper=keeper)
        if not (options.quiet or options.worker):
            print_notes([*split.notes, *model_notes, *lr_step.notes, *runner.data.notes], console)
        for observer in options.observers:
            observer.attach(runner)
        store = make_store(config, config.export_dir, storage=options.storage)
        store.open(direction, metric, fresh=options.fresh and not options.worker)
        if options.fresh and not options.worker:
            resume.clear(config)  # an earlier study's checkpoints
        lr_files = lr_bounds.save(lr_step)  # once the store accepted the space: what resumes reuse
        open_parent_run(tracker, store, config, flat_settings(config), split)
        tracker.log_files(lr_files, "lr_range")
        close_orphan_runs(tracker, store)
        display.resume(store.records())
        session = Session(config, options, split, runner, store, make_scheduler(store), tracker, display,
                          collector, started, keeper)
        if not options.worker:
            session.helpers = start_helpers(config, store, options.workers, config.export_dir, tracker.tracking_uri)
        return session
    except BaseException as exc:
        try:
            release(tracker, store, session.helpers if session else [], worker=options.worker,
                    status=end_status(exc), reason=f"before the search: {failure_reason(exc)}")
        except BaseException as cleanup:  # the first error is the one to report
            logger.warning("cleaning up after a failed start: %s", failure_reason(cleanup))
        raise


# ----------------------------------------------------------------------------------------------- search


def search(session: Session) -> bool:
    """Run trials until the budget is full (or the timeout); False if interrupted by Ctrl-C / SIGTERM."""
    search_config = session.config.search
    try:
        with session.display:
            session.scheduler.run(session.runner, search_config.n_trials, search_config.timeout)
        wait_all(session.helpers)
        session.helpers = []
    except KeyboardInterrupt:
        return False
    return True


# ----------------------------------------------------------------------------------------------- finish


def export_best(session: Session, result: StudyResult) -> None:
    """Refit (or reuse) the best trial's model, or build the ensemble of the best trials, score it on the
    test set, export it and log it."""
    runner, split, best, out_dir = session.runner, session.split, result.best, session.config.export_dir
    best_info = {"trial": best.number, "params": best.params, f"valid_{runner.metric}": best.value,
                 "metric": runner.metric}
    if result.choice is not None:  # several objectives: the chosen point of the Pareto front, and why
        best_info.update(objectives=result.choice["objectives"],
                         choice={k: v for k, v in result.choice.items() if k != "objectives"})
    valid = {runner.metric: best.value}
    ensemble_config = session.config.export.ensemble
    if ensemble_config.enabled:
        model, best_info["ensemble"] = build_ensemble(runner, result.records, ensemble_config,
                                                      n_jobs=session.options.workers, keeper=session.keeper,
                                                      train_on=session.config.export.train_on)
        valid[f"ensemble_{runner.metric}"] = best_info["ensemble"][f"valid_{runner.metric}"]
        notes = [f"ensemble member trial {d['trial']} dropped: trained again, {d['reason']}; the other members' "
                 "weights renormalised" for d in best_info["ensemble"].get("dropped", [])]
    else:
        model, notes = exported_model(runner, best, keeper=session.keeper, train_on=session.config.export.train_on)
    notes = [note for note in [(result.choice or {}).get("note")] if note] + notes
    if notes:
        best_info["notes"] = notes
        if not session.options.quiet:
            print_notes(notes, session.display.console)
        session.tracker.log_notes(notes)
    pipeline = make_pipeline(runner.data.scaler, model)
    check_finite(pipeline, split)
    result.test_metrics = test_metrics(pipeline, split.X_test, split.y_test, runner.metric, split.task)
    result.ensemble = best_info.get("ensemble")
    scores = {"valid": valid, "test": result.test_metrics}
    baseline = fit_baseline(runner, split, seed=session.config.search.seed) if session.config.export.baseline else None
    if baseline is not None:
        scores["baseline"] = {"model": baseline.model, "fit_s": baseline.fit_s, "test": baseline.test}
    export_model(pipeline, out_dir, best_info, scores)
    result.export_dir = out_dir
    session.tracker.log_best(best, result.test_metrics, out_dir, ensemble=result.ensemble, baseline=baseline)
    mlflow_model.log_model(session.tracker, pipeline, split.X_test, session.config.export.registered_model_name)
    session.store.mark_exported()


def check_finite(pipeline: Any, split: DatasetSplit) -> None:
    """The export predicts finite values on the validation and test rows (raw, as a user's), else
    :class:`~tuning.errors.ExportFailed`."""
    for part, X in (("validation", split.X_valid), ("test", split.X_test)):
        out = pipeline.predict(X) if split.task == "regression" else pipeline.predict_proba(X)
        if not np.all(np.isfinite(np.asarray(out, dtype=np.float64))):
            raise ExportFailed(f"the exported model predicts NaN or infinite values on the {part} rows; nothing "
                               "was exported")


def finish(session: Session, completed: bool) -> StudyResult:
    """The study's result: after a full search, every stored trial, the export (if due here) and the
    report; after an interrupt, the trials this process ran."""
    tracker, direction = session.tracker, session.runner.direction
    result = StudyResult(session.config.name, [], None, tracking_uri=tracker.tracking_uri,
                         parent_run_id=tracker.parent_run_id, n_trials=session.config.search.n_trials)
    tracker.flush()
    if not completed:
        result.records, result.interrupted = session.collector.records, True
        result.best = best_record(result.records, direction)
    else:
        close_orphan_runs(tracker, session.store)
        result.records = session.store.records()
        result.objectives = session.config.search.objective_list(session.split.task)
        result.best, result.choice = choose(result.records, result.objectives, session.config.export.choose)
        if result.choice is not None and not session.options.worker:  # several objectives: the Pareto front
            tracker.log_front(result.choice["front"], choice_text(result.choice))
        if not session.options.worker:
            resume.clear(session.config, keep=session.store.pending_keys())  # none left behind
            if result.best is not None and session.store.export_due():
                export_best(session, result)
            result.report_path = report_safely(session.config, tracker.tracking_uri, tracker.parent_run_id)
    result.wall_time_s = time.monotonic() - session.started
    return result


def end_status(error: BaseException) -> str:
    """The parent run's final status after ``error``: KILLED for Ctrl-C / SIGTERM, else FAILED."""
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


def release(tracker: MlflowTracker, store: StudyStore | None, helpers: Sequence[Any], *, worker: bool,
            status: str, reason: str | None = None) -> None:
    """Let go of what a run opened, each step whatever became of the ones before (the first error is raised
    at the end): stop ``helpers`` still running, set the shared parent run's final status and ``reason``
    (once it was opened, and unless trials still run elsewhere, whose worker will, or this is a
    ``--workers`` helper, whose launcher will), log the learning-curve pictures still queued, and close the
    study store (an SQLite file left without its write-ahead-log files)."""

    def end_parent_run() -> None:
        if not worker and tracker.parent_run_id and not store.running_numbers():
            tracker.end_study(status, reason)

    steps = [lambda: interrupt_all(list(helpers)), end_parent_run, tracker.close]
    if store is not None:
        steps.append(store.close)
    first: BaseException | None = None
    for step in steps:
        try:
            step()
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first


def close(session: Session, status: str, reason: str | None = None) -> None:
    """The one way out of a prepared run (:func:`release`): helpers stopped, the parent run ended with
    ``status`` (and ``reason``, why it FAILED or was KILLED), tracking flushed, the store closed."""
    release(session.tracker, session.store, session.helpers, worker=session.options.worker, status=status,
            reason=reason)


# ------------------------------------------------------------------------------------------------ entry


def run_study(
    config: StudyConfig | Draft | str | os.PathLike,
    *,
    quiet: bool = False,
    console: Any = None,
    observers: Sequence[StudyObserver] = (),
    workers: int | None = None,
    storage: str | None = None,
    fresh: bool = False,
    worker: bool = False,
) -> StudyResult:
    """Run a whole study: search, track every trial in MLflow, refit and export the best model.

    ``config`` is the study, loaded once, with any overrides applied (``load_study(path).with_overrides(
    seed=..., output_dir=...)``), or its :class:`~tuning.plan.Draft` (what the command resolved before the
    data loads: not resolved again); a path is a script's shorthand for ``load_study(path)``. The keywords are
    how to run it, not part of it. ``observers`` are extra :class:`~tuning.search.trial.runner.StudyObserver`
    objects: each is first handed the :class:`TrialRunner` (``attach(runner)``; ``runner.keeper`` holds the
    best fitted models so far, updated before observers hear that a trial ended), then told of every trial
    (after tracking and the progress display).

    The study's state persists under its name in its Optuna storage (by default ``<output>/optuna.db``, for
    both backends): running it again resumes it, ``fresh`` starts it over; a finished study is not run again
    (``result.already_complete``). ``workers`` > 1 (default: the study's ``search.workers``) runs that many
    processes on it; ``storage`` is a database URL that workers on several machines share. ``worker`` is the mode of the processes started for ``workers``: trials only, no export and no
    say on the parent run's status.

    A process running studies should call :func:`tuning.parallel.process.configure_study_process` first (the
    commands do).
    """
    interrupt.reset()  # a stop asked of an earlier study in this process (its Ctrl-C) was for that one
    if isinstance(config, Draft):  # resolved before the data loads by the command: not again here
        planned = config
    else:
        planned = draft(config if isinstance(config, StudyConfig) else load_study(config),  # the one read
                        retest=fresh and not worker)  # --fresh runs the learning-rate range test again
    workers = planned.config.search.workers if workers is None else workers
    options = RunOptions(quiet, console, tuple(observers), workers, storage, fresh, worker)
    done = finished_result(planned.config, options)
    if done is not None:
        return done
    started = time.monotonic()
    plan = resolve(planned, worker)  # the data loaded: the study the search runs, resolved once
    session = prepare(plan, options, started)
    status, reason = "FAILED", None
    try:
        if not worker:
            recipe.save(plan.recipe_step)  # once the store accepted the sized space: what re-runs and resumes reuse
        result = finish(session, search(session))
        status = result.status
        reason = {"KILLED": INTERRUPTED, "FAILED": "no trial completed"}.get(status)
        return result
    except BaseException as exc:  # KeyboardInterrupt: a second Ctrl-C, while exporting
        status, reason = end_status(exc), failure_reason(exc)
        raise
    finally:
        close(session, status, reason)
