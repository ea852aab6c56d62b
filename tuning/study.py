"""The one place that wires the stages: config -> data -> runner -> backend -> tracking/export."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuning.backends import make_backend
from tuning.config import StudyConfig, load_study
from tuning.coordination import close_orphan_runs, open_parent_run, start_helpers, with_parallel_fits
from tuning.data import DatasetSplit, load_dataset, print_notes
from tuning.export import export_model, make_pipeline, test_metrics
from tuning.progress import ProgressDisplay
from tuning.records import COMPLETE, FAILED, PRUNED, TrialRecord, best_record
from tuning.report import report_safely
from tuning.tracking import MlflowTracker
from tuning.trial import TrialObserver, TrialRunner
from tuning.workers import interrupt_all, wait_all


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


class _Collector:
    """Keeps the records of trials run in this process (for an interrupted study)."""

    def __init__(self) -> None:
        self.records: list[TrialRecord] = []

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        pass

    def on_trial_end(self, record: TrialRecord) -> None:
        self.records.append(record)


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


def resolve_config(study: str | os.PathLike | StudyConfig, **overrides: Any) -> tuple[StudyConfig, Path | None]:
    """Load a study file (or take a config) and apply overrides that are not None."""
    path = None
    if isinstance(study, StudyConfig):
        config = study
    else:
        path = Path(study)
        config = load_study(path)
    if any(v is not None for v in overrides.values()):
        config = config.with_overrides(**overrides)
    return config, path


def refit_best(runner: TrialRunner, best: TrialRecord, split: DatasetSplit):
    """The fitted estimator of the best trial: reused when this process trained it, else refitted."""
    if runner.best_number == best.number and runner.best_estimator is not None:
        return runner.best_estimator
    d = runner.data
    return runner.make_estimator(best.params).fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid))


def quiet_libraries() -> None:
    """Our progress display reports every trial; silence the libraries' own per-trial chatter."""
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*cloudpickle format.*")
    warnings.filterwarnings("ignore", message=".*pickle or cloudpickle.*")
    for name in ("mlflow", "alembic", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_study(
    study: str | os.PathLike | StudyConfig,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    output_dir: str | os.PathLike | None = None,
    quiet: bool = False,
    console: Any = None,
    observers: Sequence[TrialObserver] = (),
    workers: int = 1,
    storage: str | None = None,
    fresh: bool = False,
    worker: bool = False,
) -> StudyResult:
    """Run a whole study: search, track every trial in MLflow, refit and export the best model.

    ``observers`` are extra :class:`TrialObserver` objects told of every trial (after tracking and the
    progress display); one with an ``attach(runner)`` method is first handed the :class:`TrialRunner`,
    whose ``best_estimator`` is the best-so-far fitted model.

    The study's state persists under its name (Optuna storage, by default ``<output>/optuna.db``, or
    ``<output>/random_state.json``): running it again resumes it, ``fresh`` starts it over. ``workers`` > 1
    runs that many processes on it (joblib fits for the random backend); ``storage`` is a database URL
    that workers on several machines share. ``worker`` is the mode of the processes started for
    ``workers``: trials only, no export and no say on the parent run's status.
    """
    config, path = resolve_config(
        study, n_trials=n_trials, timeout=timeout, seed=seed, tracking_uri=tracking_uri,
        experiment=experiment, output_dir=output_dir,
    )
    config = with_parallel_fits(config, workers)
    started = time.monotonic()
    quiet_libraries()
    split = load_dataset(config.dataset)
    out_dir = config.export_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    tracker = MlflowTracker(config.mlflow.tracking_uri, config.experiment_name)
    study_text = path.read_text() if path else yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)

    try:
        collector = _Collector()
        runner = TrialRunner(config, split)
        if not quiet and not worker:
            print_notes(split.notes + runner.data.notes, console)
        display = ProgressDisplay(config.search.n_trials, runner.metric, runner.direction, quiet=quiet, console=console)
        runner.observers = [tracker, collector, display, *observers]
        for observer in observers:
            if hasattr(observer, "attach"):
                observer.attach(runner)
        backend = make_backend(config, runner, out_dir, storage=storage)
        backend.open(fresh=fresh and not worker)
        open_parent_run(tracker, backend, config, flat_settings(config), path, study_text, split)
        close_orphan_runs(tracker, backend)
        backend.run_id_of = tracker.run_id_of
        display.resume(backend.records())
        result = StudyResult(config.name, [], None, tracking_uri=tracker.tracking_uri, parent_run_id=tracker.parent_run_id)
        helpers = [] if worker else start_helpers(config, backend, workers, out_dir, tracker.tracking_uri)
        try:
            with display:
                backend.run(config.search.n_trials, config.search.timeout)
            wait_all(helpers)
            tracker.flush()
        except KeyboardInterrupt:
            interrupt_all(helpers)
            tracker.flush()
            result.records = collector.records
            result.best = best_record(collector.records, runner.direction)
            result.interrupted = True
            result.wall_time_s = time.monotonic() - started
            _end_parent_run(tracker, backend, "KILLED", worker)
            return result
        except BaseException:
            interrupt_all(helpers)
            _end_parent_run(tracker, backend, "FAILED", worker)
            raise

        close_orphan_runs(tracker, backend)
        records = backend.records()
        result.records = records
        result.best = best_record(records, runner.direction)
        if worker:
            result.wall_time_s = time.monotonic() - started
            return result
        if result.best is not None and backend.export_due():
            estimator = refit_best(runner, result.best, split)
            pipeline = make_pipeline(runner.data.scaler, estimator)
            result.test_metrics = test_metrics(pipeline, split.X_test, split.y_test, runner.metric, split.task)
            best_info = {"trial": result.best.number, "params": result.best.params,
                         f"valid_{runner.metric}": result.best.value, "metric": runner.metric}
            export_model(pipeline, out_dir, best_info, {"valid": {runner.metric: result.best.value}, "test": result.test_metrics})
            result.export_dir = out_dir
            tracker.log_best(result.best, result.test_metrics, out_dir)
            tracker.log_model(pipeline, split.X_test, config.export.registered_model_name)
            backend.mark_exported()
        result.report_path = report_safely(config, tracker.tracking_uri, tracker.parent_run_id)
        result.wall_time_s = time.monotonic() - started
        _end_parent_run(tracker, backend, "FINISHED", worker)
        return result
    finally:
        tracker.close()  # the learning-curve pictures still queued are logged before returning


def _end_parent_run(tracker: MlflowTracker, backend: Any, status: str, worker: bool) -> None:
    """Set the shared parent run's final status, unless trials still run elsewhere (their worker will)
    or this process is a ``--workers`` helper (its launcher will)."""
    if not worker and not backend.running_numbers():
        tracker.end_study(status)
