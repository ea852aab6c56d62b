"""MLflow tracking: one parent run per study, one child run per trial, created while the search runs.

Only plain records reach this module; it never asks which backend produced them. Metrics of a trial
(its whole per-epoch curve) go out in one ``log_batch`` call, so tracking costs a few calls per trial
rather than one per epoch. Before the next trial can start, a trial's run is created, its params,
metrics and state are logged and it is ended (in that order: a run still RUNNING after its trial ended
is an orphan to close, see :func:`tuning.coordination.close_orphan_runs`); its learning-curve picture is
drawn and logged by a background writer thread while the next trial trains.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag

from tuning.compat.mlflow import sql_engine
from tuning.parallel.sqlite import relax_sync, sqlite_path, use_wal
from tuning.records import COMPLETE, FAILED, KILLED, PRUNED, TrialRecord
from tuning.tracking import runlayout as layout

STATUS = {
    COMPLETE: RunStatus.to_string(RunStatus.FINISHED),
    PRUNED: RunStatus.to_string(RunStatus.FINISHED),
    FAILED: RunStatus.to_string(RunStatus.FAILED),
    KILLED: RunStatus.to_string(RunStatus.KILLED),
}
LIBRARIES = ("tensorflow", "keras", "scikit-learn", "scikeras", "optuna", "mlflow", "numpy", "tuning")
BATCH = 900  # MLflow accepts at most 1,000 metrics per log_batch call


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment of an ``sqlite:`` file store keeps its artifacts: ``mlruns/<experiment>``
    beside the database file (MLflow's own default is ``./mlruns`` in whatever directory the process runs
    in, which scatters a study's pictures and models wherever it was started). None: MLflow's default
    (a server, another database)."""
    path = sqlite_path(tracking_uri)
    if path is None:
        return None
    folder = Path(path).resolve().parent / "mlruns" / re.sub(r"[^A-Za-z0-9._-]", "_", experiment)
    return folder.as_uri()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


logger = logging.getLogger(__name__)
_WRITERS: weakref.WeakSet[BackgroundWriter] = weakref.WeakSet()


class BackgroundWriter:
    """Queued calls run in order on one worker thread (a one-worker ``ThreadPoolExecutor``), off the trial
    loop's critical path.

    A call that raises only logs a warning (tracking extras must never cost a trial). ``flush`` waits
    until everything queued has run; ``close`` flushes and stops the thread (a later ``submit`` starts a
    new one). :func:`flush_writers` flushes them all (a study process runs it at exit).
    """

    def __init__(self, name: str = "tuning-tracking-writer"):
        self.name = name
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._last: Future | None = None  # one worker runs calls in order: when this one is done, all are

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
                _WRITERS.add(self)
            self._last = self._executor.submit(self._run, call, *args)

    @staticmethod
    def _run(call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:
            logger.warning("background tracking call %s failed: %s", getattr(call, "__name__", call), exc)

    def flush(self) -> None:
        """Wait until every call queued so far has run."""
        last = self._last
        if last is not None:
            wait([last])

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
            _WRITERS.discard(self)


def flush_writers() -> None:
    """Wait for every writer's queued calls (run at exit by :func:`tuning.parallel.process.configure_study_process`)."""
    for writer in list(_WRITERS):
        writer.flush()


class MlflowTracker:
    """Writes a study to MLflow through ``MlflowClient`` (no global active run).

    It pickles (the client is rebuilt from the tracking URI), so a copy can track trials that run in
    another process: ``portable`` tells a backend it may ship it there.
    """

    portable = True

    def __init__(self, tracking_uri: str | None, experiment: str, background: bool = True):
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = self.client.tracking_uri
        self.experiment_name = experiment
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._children: dict[int, str] = {}
        self._logged: dict[int, int] = {}  # a resumed trial -> the epochs its run already has curves of
        self.trial_runs: dict[int, str] = {}  # trial number -> its run, for every trial started here
        # Learning-curve pictures drawn and logged by a writer thread (flush()/close() wait for them);
        # False: in line, as the trial ends.
        self.background = background
        self._writer = BackgroundWriter()
        self._painters = threading.local()  # matplotlib figures are reused, one painter per thread

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("client", "_writer", "_painters"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        # A copy tracks trials in another process (a joblib worker) that nobody flushes: it logs in line.
        self.background = False
        self._writer = BackgroundWriter()
        self._painters = threading.local()
        self._relax_sync()

    def _relax_sync(self) -> None:
        """``synchronous=NORMAL`` on this process's connections to a WAL-mode sqlite: store."""
        engine = sql_engine(self.client)
        if engine is not None:  # another kind of store (a server, files): nothing to tune
            relax_sync(engine)

    def flush(self) -> None:
        """Wait until the queued learning-curve pictures are logged."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and stop the writer thread (the tracker stays usable)."""
        self._writer.close()

    # ---- study ---------------------------------------------------------------------------------
    def start_study(self, name: str, settings: dict[str, Any], study_file: Path | None, study_text: str,
                    run_id: str | None = None) -> str:
        """Create (or re-open, given ``run_id``) the parent run and log what defines the study."""
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        self.experiment_id = (
            experiment.experiment_id if experiment
            else self.client.create_experiment(self.experiment_name,
                                               artifact_location=artifact_location(self.tracking_uri, self.experiment_name))
        )
        use_wal(self.tracking_uri)  # an sqlite: store commits without journal fsyncs (see tuning.parallel.sqlite)
        self._relax_sync()
        if run_id:
            self.parent_run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            if layout.STUDY_REASON in self.client.get_run(run_id).data.tags:  # why an earlier run ended
                self.client.delete_tag(run_id, layout.STUDY_REASON)
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=layout.study_tags(name))
        self.parent_run_id = run.info.run_id
        params = [Param(k, layout.param_text(v)[:6000]) for k, v in settings.items()]
        params += [Param(f"{layout.VERSION_PARAM}{k}", v) for k, v in library_versions().items()]
        self.client.log_batch(self.parent_run_id, params=params)
        self.client.log_text(self.parent_run_id, study_text, study_file.name if study_file else layout.STUDY_FILE)
        return self.parent_run_id

    def log_dataset(self, split) -> None:
        """Name, shapes and digest of the dataset, through MLflow's dataset inputs (tables with their columns)."""
        import warnings

        import mlflow.data
        import pandas as pd
        from mlflow.entities import Dataset, DatasetInput, InputTag

        for context, X, y in (("train", split.X_train, split.y_train), ("validation", split.X_valid, split.y_valid),
                              ("test", split.X_test, split.y_test)):
            with warnings.catch_warnings():  # MLflow's hint about integer columns is meant for model schemas
                warnings.simplefilter("ignore", UserWarning)
                if isinstance(X, pd.DataFrame):
                    target = "target" if "target" not in X.columns else "__target__"
                    dataset = mlflow.data.from_pandas(X.assign(**{target: y}), targets=target,
                                                      name=f"{split.name}-{context}")
                else:
                    dataset = mlflow.data.from_numpy(X, targets=y, name=f"{split.name}-{context}")
                fields = dataset.to_dict()  # name, digest, source, source_type (schema, profile: tables)
                entity = Dataset(fields["name"], fields["digest"], fields["source_type"], fields["source"],
                                 fields.get("schema"), fields.get("profile"))
            self.client.log_inputs(
                self.parent_run_id, [DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])]
            )
        self.client.log_batch(self.parent_run_id, tags=[
            RunTag("dataset.name", split.name),
            RunTag("dataset.digest", split.digest()),
            RunTag("dataset.shapes", json.dumps({k: list(v) for k, v in split.shapes.items()})),
            RunTag("dataset.task", split.task),
        ])

    def end_study(self, status: str = "FINISHED", reason: str | None = None) -> None:
        """End the parent run with ``status``; ``reason`` (why it FAILED or was KILLED) as its tag ``study.reason``."""
        if self.parent_run_id:
            if reason:
                self.client.set_tag(self.parent_run_id, layout.STUDY_REASON, reason[:layout.MAX_REASON])
            self.client.set_terminated(self.parent_run_id, status=status)

    # ---- runs left behind by dead processes --------------------------------------------------------
    def trial_runs_of_study(self, running_only: bool = False) -> dict[str, int]:
        """The study's trial runs (only those still marked RUNNING, if asked): run id -> trial number."""
        found: dict[str, int] = {}
        for run in layout.search_all(self.client, [self.experiment_id],
                                     layout.children_filter(self.parent_run_id, running_only)):
            number = layout.trial_number(run)
            if number is not None:
                found[run.info.run_id] = number
        return found

    def still_running(self, run_id: str) -> bool:
        return self.client.get_run(run_id).info.status == "RUNNING"

    def mark_killed(self, run_id: str, reason: str) -> None:
        """End a trial run whose process died (it would otherwise stay RUNNING forever)."""
        self.client.log_batch(run_id, tags=[RunTag(layout.TRIAL_STATE, KILLED), RunTag(layout.TRIAL_REASON, reason)])
        self.client.set_terminated(run_id, status=STATUS[KILLED])

    def record_killed(self, number: int, params: dict[str, Any], reason: str) -> None:
        """A KILLED run for a trial whose process died before creating its run: every trial has one."""
        self.on_trial_start(number, params)
        self.trial_runs.pop(number, None)
        self.mark_killed(self._children.pop(number), reason)

    # ---- trials (observer interface) ------------------------------------------------------------
    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number:03d}",
            tags=layout.trial_tags(self.parent_run_id, number),
        )
        self._children[number] = self.trial_runs[number] = run.info.run_id
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in layout.trial_params(params).items()])

    def on_trial_resume(self, number: int, params: dict[str, Any], earlier: tuple[int, ...], epochs: int) -> None:
        """Trial ``number`` goes on from the checkpoint of its ``earlier`` attempts after ``epochs`` epochs: it
        gets their run back (the first one made, reopened and renumbered), so that the trial has one run
        and one continuous curve; a new run when there is none."""
        run = self._earlier_run(earlier)
        if run is None:
            self.on_trial_start(number, params)
            run = self.client.get_run(self._children[number])
        run_id = run.info.run_id
        self.client.log_batch(run_id, tags=[RunTag(layout.TRIAL_NUMBER, str(number)),
                                            RunTag(layout.TRIAL_RESUMED_FROM, " ".join(map(str, earlier))),
                                            RunTag(layout.TRIAL_RESUMED_AT, str(epochs))])
        for key in (layout.TRIAL_STATE, layout.TRIAL_REASON):  # what its earlier attempt's end said
            if key in run.data.tags:
                self.client.delete_tag(run_id, key)
        self.client.update_run(run_id, status="RUNNING", name=f"trial-{number:03d}")
        steps = [m.step for key in run.data.metrics if layout.is_curve(key)
                 for m in self.client.get_metric_history(run_id, key)]
        self._logged[number] = max(steps, default=0)  # a Ctrl-C'd attempt logged its curves: not again
        self._children[number] = self.trial_runs[number] = run_id

    def _earlier_run(self, earlier: tuple[int, ...]):
        """The first run made for a trial numbered in ``earlier`` (None if none)."""
        wanted = set(earlier)
        runs = [self.client.get_run(run_id) for run_id, n in self.trial_runs_of_study().items() if n in wanted]
        return min(runs, key=lambda run: run.info.start_time) if runs else None

    def on_trial_end(self, record: TrialRecord) -> None:
        run_id = self._children.pop(record.number, None)
        if run_id is None:
            return
        now = layout.now_ms()
        values, tag_values = layout.trial_outcome(record, self._logged.pop(record.number, 0))
        metrics = [Metric(key, value, now, step) for key, value, step in values]
        tags = [RunTag(k, v) for k, v in tag_values.items()]
        for i in range(0, max(len(metrics), 1), BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + BATCH], tags=tags if i == 0 else [])
        self.client.set_terminated(run_id, status=STATUS.get(record.state, "FAILED"))
        if record.state == COMPLETE and record.history.get("loss"):
            if self.background:
                self._writer.submit(self.log_learning_curve, run_id, record)
            else:
                self.log_learning_curve(run_id, record)

    def log_learning_curve(self, run_id: str, record: TrialRecord) -> None:
        """A small training vs validation loss PNG on the trial's run; a drawing problem only warns."""
        from tuning.figures.chart import fmt
        from tuning.figures.curves import LearningCurvePainter

        title = f"trial {record.number}: validation {record.metric or 'objective'} = {fmt(record.value)}"
        try:
            painter = getattr(self._painters, "painter", None)
            if painter is None:
                painter = self._painters.painter = LearningCurvePainter(size=(5.0, 3.2), dpi=80)
            self.client.log_figure(run_id, painter.figure(record.history, title), layout.LEARNING_CURVE)
        except Exception as exc:  # a picture must never cost a trial
            logger.warning("no learning curve for trial %s: %s", record.number, exc)

    # ---- results ---------------------------------------------------------------------------------
    def log_best(self, best: TrialRecord | None, test_metrics: dict[str, float], export_dir: Path | None,
                 ensemble: dict | None = None, baseline: Any = None) -> None:
        """The best trial's parameters (tags ``best.params.<name>``: tags, since a study extended with
        ``--n-trials`` may find another best, and MLflow params never change) and validation score, the
        exported model's test scores and, for an ensemble, its members (tag ``ensemble_members``:
        ``trial:weight`` pairs) and validation score; the baseline's test scores (``baseline_test_<metric>``),
        fit time (``baseline_fit_s``) and name (tag)."""
        if best is None:
            return
        now = layout.now_ms()
        tags = [RunTag(f"{layout.BEST_PARAM}{k}", layout.param_text(v)) for k, v in best.params.items()]
        stale = [key for key in self.client.get_run(self.parent_run_id).data.tags
                 if key.startswith(layout.BEST_PARAM) and key not in {t.key for t in tags}]
        for key in stale:  # an earlier best's parameters that this one has not (a conditional space)
            self.client.delete_tag(self.parent_run_id, key)
        metrics = [Metric(layout.best_valid_key(best.metric), float(best.value), now, 0)]
        metrics += [Metric(f"best_{k}", float(v), now, 0) for k, v in best.measures.items()]  # several objectives
        if ensemble:
            metrics.append(Metric(f"ensemble_valid_{best.metric}", float(ensemble[f"valid_{best.metric}"]), now, 0))
            tags.append(RunTag("ensemble_members", " ".join(f"{m['trial']}:{m['weight']:.3g}"
                                                            for m in ensemble["members"])))
        metrics += [Metric(f"{layout.TEST_PREFIX}{k}", float(v), now, 0) for k, v in test_metrics.items()]
        tags.append(RunTag(layout.BEST_TRIAL, str(best.number)))
        if baseline is not None:
            metrics += [Metric(f"{layout.BASELINE_PREFIX}{k}", float(v), now, 0) for k, v in baseline.test.items()]
            metrics.append(Metric(layout.BASELINE_FIT_S, float(baseline.fit_s), now, 0))
            tags.append(RunTag(layout.BASELINE_MODEL, baseline.model))
        if export_dir is not None:
            tags.append(RunTag(layout.EXPORT_DIR, str(Path(export_dir).resolve())))
        self.client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)

    def log_front(self, front: list[int], choice: str = "") -> None:
        """Several objectives: the Pareto front's trials ``front`` as the tag ``pareto`` (``true`` / ``false``)
        on every complete trial's run, and ``pareto.size`` / ``pareto.trials`` / ``pareto.choice`` (how the
        exported point was chosen) on the parent run."""
        members = set(front)
        for run in layout.search_all(self.client, [self.experiment_id], layout.children_filter(self.parent_run_id)):
            number = layout.trial_number(run)
            if number is not None and run.data.tags.get(layout.TRIAL_STATE) == COMPLETE:
                self.client.set_tag(run.info.run_id, layout.PARETO, str(number in members).lower())
        self.client.log_batch(self.parent_run_id, tags=[RunTag(layout.PARETO_SIZE, str(len(front))),
                                                        RunTag(layout.PARETO_TRIALS, " ".join(map(str, front))),
                                                        RunTag(layout.PARETO_CHOICE, choice)])

    def log_notes(self, notes: list[str]) -> None:
        """What the export decided for the user (a diverged member dropped ...): tag ``export.notes`` on the
        parent run, one note a line."""
        if self.parent_run_id and notes:
            self.client.set_tag(self.parent_run_id, layout.EXPORT_NOTES, "\n".join(notes)[:layout.MAX_REASON])

    def log_files(self, paths: list[Path], artifact_path: str | None = None) -> None:
        """Files on the parent run (under ``artifact_path``)."""
        for path in paths:
            self.client.log_artifact(self.parent_run_id, str(path), artifact_path)

