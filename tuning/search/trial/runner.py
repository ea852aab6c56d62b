"""The trial runner: one set of hyperparameters -> one fitted, scored estimator -> one TrialRecord.

It knows the data and the estimator, not the search algorithm: a backend hands it parameters and an
optional ``report(epoch, value)`` hook (which may raise :class:`PruneTrial`), and gets a record back.
The fitted model goes to whoever asks for it (:meth:`TrialRunner.run_trial`) and to the runner's
:class:`~tuning.search.trial.keeper.ModelKeeper`, if it has one; the runner itself keeps no model.
"""

from __future__ import annotations

import copy
import gc
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import check_cv

from estimators.common.checkpoint import CheckpointMismatch
from tuning.config.schema import StudyConfig
from tuning.data.prepared import PreparedData, target_needs_scaling  # noqa: F401  (re-exported)
from tuning.data.preprocessing import make_scaler  # noqa: F401  (re-export)
from tuning.data.sources import DatasetSplit
from tuning.parallel import interrupt, process
from tuning.records import COMPLETE, FAILED, KILLED, PRUNED, PruneTrial, TrialRecord, failure_reason
from tuning.search.space import to_python
from tuning.search.trial import metrics
from tuning.search.trial.epoch_scoring import EpochScorer, valid_key
from tuning.search.trial.keeper import ModelKeeper
from tuning.search.trial.maker import EstimatorMaker
from tuning.search.trial.objectives import ObjectiveMeter
from tuning.search.trial.resume import Attempt, CheckpointPolicy

Report = Callable[[int, float], None]
logger = logging.getLogger(__name__)


class TrialObserver(Protocol):
    """Told when a trial starts and ends (tracking, the progress display, a study's records).

    ``portable``: whether a copy may go with a :meth:`TrialRunner.detached` runner to another process
    that runs trials (it must pickle) and be told there; the others are told in this process as the
    records come back.
    """

    portable: ClassVar[bool]

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None: ...

    def on_trial_end(self, record: TrialRecord) -> None: ...

    # Optional: ``on_trial_resume(number, params, earlier, epochs)``, told instead of ``on_trial_start`` when
    # trial ``number`` goes on from the checkpoint of its ``earlier`` attempts after ``epochs`` epochs
    # (tuning.search.trial.resume); an observer without it hears ``on_trial_start``.


class StudyObserver(TrialObserver, Protocol):
    """An extra observer of ``run_study(observers=...)``: told of every trial like the others, and first
    handed the runner (its ``data``, ``make_estimator`` and ``keeper``: the best fitted models so far)."""

    def attach(self, runner: TrialRunner) -> None: ...


@dataclass
class TrialOutcome:
    """What one trial made: its record and, for a complete trial validated on the validation rows
    (``search.cv: validation``), the fitted estimator (the model the export may reuse); else None."""

    record: TrialRecord
    estimator: Any = None


def check_diverged(estimator) -> None:
    """A fit whose loss went NaN/inf is a failed trial, with the reason."""
    if estimator.diverged_:
        raise FloatingPointError(
            f"training loss became NaN or infinite at epoch {estimator.n_epochs_} (learning rate too high? "
            "targets far from unit scale? try preprocessing.target_scaling: standard)"
        )


def fit_fold(estimator, data: PreparedData, fold, metric: str, callbacks=()) -> tuple[float, Any]:
    """Fit on the fold's training rows (early stopping on the validation set), score its held-out rows.

    A module-level function, so joblib can run folds in other processes without pickling the runner.
    """
    train, test = fold
    estimator.fit(data.X_train[train], data.y_train[train], validation_data=(data.X_valid, data.y_valid),
                  callbacks=list(callbacks))
    check_diverged(estimator)
    return metrics.score(metric, estimator, data.X_train[test], data.y_train[test]), estimator


@dataclass(frozen=True)
class TrialSettings:
    """What a runner knows of its study besides the data and the estimators: the task, the metric and its
    direction, how a trial is validated (``cv``: the validation rows, or K folds of the training rows with
    ``n_jobs`` processes), whether a complete trial keeps its outputs on the validation rows (an ensemble
    selects its members from them) and where and how often a trial writes checkpoints (None: never)."""

    task: str
    metric: str
    direction: str
    cv: int | str = "validation"
    n_jobs: int | None = 1
    keep_outputs: bool = False
    checkpoint: CheckpointPolicy | None = None

    @classmethod
    def of(cls, config: StudyConfig, task: str) -> TrialSettings:
        """The settings of ``config``'s trials on data of ``task``."""
        search = config.search
        return cls(task, search.resolved_metric(task), search.direction(task), search.cv, search.n_jobs,
                   config.export.ensemble.enabled, CheckpointPolicy.of(config))


class TrialRunner:
    """Fits and scores one configuration; offers each complete trial's fitted model to ``keeper``.

    It is given the parts of a study it uses: the prepared ``data``, the ``maker`` of its estimators and its
    :class:`TrialSettings` (:func:`make_runner` builds them from a study's config and data)."""

    def __init__(self, data: PreparedData, maker: EstimatorMaker, settings: TrialSettings,
                 observers: list[TrialObserver] | None = None, keeper: ModelKeeper | None = None,
                 meter: ObjectiveMeter | None = None):
        self.data, self.maker, self.settings = data, maker, settings
        #: the study's other objectives (``search.objectives``), measured on each complete trial; None: none
        self.meter = meter
        self.task, self.metric, self.direction = settings.task, settings.metric, settings.direction
        self.observers = list(observers or [])
        #: where complete trials' fitted models go (the export reuses them); None: nowhere
        self.keeper = keeper
        self.freeze_heap = process.heap_freezing()  # travels with a detached copy to a joblib worker

    def detached(self, observers: list[TrialObserver]) -> TrialRunner:
        """A copy to ship to another process (joblib): same settings and data, ``observers``, no keeper
        (the models it fits stay in that process)."""
        twin = copy.copy(self)
        twin.observers = list(observers)
        twin.keeper = None
        return twin

    # ---- estimator -----------------------------------------------------------------------------
    def base_params(self) -> dict[str, Any]:
        """Fixed estimator arguments: the study key of each hyperparameter-table row, then the model section."""
        return self.maker.base_params

    def make_estimator(self, params: dict[str, Any], portable: bool = False):
        """A new unfitted estimator with the study's fixed arguments and ``params`` (:class:`EstimatorMaker`)."""
        return self.maker(params, portable)

    # ---- one trial -------------------------------------------------------------------------------
    def run(self, number: int, params: dict[str, Any], report: Report | None = None,
            attempt: Attempt | None = None) -> TrialRecord:
        """Train and score ``params``; never raises for a bad configuration (the record says why).

        ``report(epoch, value)`` is given the study's metric on the validation rows after every epoch
        (:mod:`tuning.search.trial.epoch_scoring`); when it raises :class:`PruneTrial`, the trial is pruned and keeps
        the value it was last given. ``attempt``: the trial's earlier attempts, whose checkpoint it goes on
        from (:mod:`tuning.search.trial.resume`); None: a first attempt.
        """
        outcome = self.run_trial(number, params, report, attempt)
        record = outcome.record
        # Keras' state is cleared once nothing holds the fitted model any more: cleared while the model
        # lives, its traced functions outlive the clearing and are freed later, inside the next trial
        del outcome
        self.release_memory()
        return record

    def run_trial(self, number: int, params: dict[str, Any], report: Report | None = None,
                  attempt: Attempt | None = None) -> TrialOutcome:
        """:meth:`run`, returning the fitted estimator with the record; the keeper (if any) is offered
        the estimator before the observers hear that the trial ended. The caller calls
        :meth:`release_memory` once it has let go of the estimator (:meth:`run` does)."""
        attempt = attempt or Attempt(number)
        policy = self.settings.checkpoint if self.settings.cv == "validation" else None
        resume = policy.resumable(attempt, to_python(params)) if policy is not None else None
        record = self.open_trial(number, params, resumed=None if resume is None else (attempt.earlier, resume.epochs))
        reported: list[float] = []  # the per-epoch values given to report, in order
        start = time.perf_counter()
        earlier_s = float(resume.extra.get("elapsed_s", 0.0)) if resume is not None else 0.0
        estimator, error = None, None
        try:
            checkpoint = None
            if policy is not None:

                def extra() -> dict[str, Any]:  # the trial's state stored with each checkpoint
                    return {"params": record.params, "history": record.history,
                            "elapsed_s": earlier_s + time.perf_counter() - start}

                checkpoint = policy.callback(attempt, extra, resume)
                self._replay(record, resume, report, reported)
            estimator = self._run(record, report, reported, checkpoint)
        except (Exception, KeyboardInterrupt) as exc:
            error = exc
        outcome = self.close_trial(record, estimator, error, reported, earlier_s + time.perf_counter() - start)
        if policy is not None and record.state != KILLED:  # Ctrl-C: its retry goes on from the checkpoint
            policy.remove(attempt)
        if isinstance(error, KeyboardInterrupt):
            raise error
        return outcome

    def _replay(self, record: TrialRecord, resume, report: Report | None, reported: list[float]) -> None:
        """A resumed trial's epochs before its checkpoint: its curves into ``record``, the values reported
        then given to ``report`` again (the pruner sees the whole curve; it may prune the trial here)."""
        if resume is None:
            return
        record.history = {key: [float(v) for v in values] for key, values in resume.extra.get("history", {}).items()}
        record.epochs_run = resume.epochs
        for epoch, value in enumerate(record.history.get(valid_key(self.metric), [])):
            if report is not None and np.isfinite(value):
                reported.append(value)
                report(epoch, value)

    # ---- the steps of a trial (run_trial; the stacked trials of tuning.search.schedulers.stacking) -------------
    def open_trial(self, number: int, params: dict[str, Any], check: bool = True,
                   resumed: tuple[tuple[int, ...], int] | None = None) -> TrialRecord:
        """A new record for trial ``number``; the observers hear that it started (``check``: first raise
        KeyboardInterrupt if a stop was requested), or, ``resumed``: that it goes on from the checkpoint of
        its earlier attempts after that many epochs (``(earlier, epochs)``)."""
        if check:
            interrupt.check()
        params = to_python(params)
        record = TrialRecord(number=number, params=params, metric=self.metric, started_at=time.time())
        for observer in self.observers:
            on_resume = getattr(observer, "on_trial_resume", None)
            if resumed is not None and on_resume is not None:
                on_resume(number, params, *resumed)
            else:
                observer.on_trial_start(number, params)
        return record

    def close_trial(self, record: TrialRecord, estimator: Any = None, error: BaseException | None = None,
                    reported: list[float] | None = None, duration_s: float | None = None) -> TrialOutcome:
        """End the trial of ``record``: ``error`` (what stopped it, None when it finished) decides its state
        (:class:`PruneTrial`: pruned with the value last reported; KeyboardInterrupt: killed; anything else:
        failed, with the reason); the keeper is offered ``estimator``, then the observers hear of the end."""
        reported = reported or []
        if isinstance(error, PruneTrial):
            record.state = PRUNED
            record.value = reported[-1] if reported else None  # what the pruner was last told
            record.reason = f"pruned after epoch {record.epochs_run}"
        elif isinstance(error, KeyboardInterrupt):
            record.state = KILLED
            record.reason = "interrupted by the user"
        elif error is not None:  # a configuration that cannot train is a failed trial, not a crash
            record.state = FAILED
            record.reason = failure_reason(error)
            record.traceback = "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=5))
        if error is not None:
            estimator = None
        record.duration_s = time.time() - record.started_at if duration_s is None else duration_s
        if self.keeper is not None and estimator is not None:
            self.keeper.offer(record, estimator)
        for observer in self.observers:
            observer.on_trial_end(record)
        return TrialOutcome(record, estimator)

    def epoch_hook(self, record: TrialRecord, report: Report | None,
                   reported: list[float]) -> Callable[[int, dict[str, float]], None]:
        """``on_epoch(epoch, logs)``: the epoch's logs into ``record`` (curves, epochs run), and their
        ``valid_<metric>`` (the study's metric on the validation rows, :mod:`tuning.search.trial.epoch_scoring`)
        to ``report`` (which may raise :class:`PruneTrial`) and ``reported``."""
        key = valid_key(self.metric)

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            interrupt.check()
            for name, value in logs.items():
                record.history.setdefault(name, []).append(float(value))
            record.epochs_run = epoch + 1
            value = logs.get(key)
            if report is not None and value is not None and np.isfinite(value):
                reported.append(value)
                report(epoch, value)

        return on_epoch

    def epoch_scorer(self, estimator, on_epoch) -> EpochScorer:
        """The callback scoring ``estimator``'s network on the validation rows after every epoch of its fit."""
        return EpochScorer(estimator, self.data.y_valid, self.metric, on_epoch)

    def score_fitted(self, record: TrialRecord, estimator) -> Any:
        """Score an estimator fitted on the training rows (``search.cv: validation``) on the validation
        rows into ``record`` (complete; FloatingPointError if it diverged); returns it."""
        d = self.data
        check_diverged(estimator)
        record.fold_scores = [metrics.score(self.metric, estimator, d.X_valid, d.y_valid)]
        self._set_value(record)
        self._describe_fit(record, estimator)
        return estimator

    def _set_value(self, record: TrialRecord) -> None:
        record.value = float(np.mean(record.fold_scores))
        if not np.isfinite(record.value):
            raise ValueError(f"the {self.metric} is not finite")
        record.state = COMPLETE

    def _run(self, record: TrialRecord, report: Report | None, reported: list[float], checkpoint=None) -> Any:
        """Fit and score into ``record``; the fitted estimator worth keeping (validation cv), else None.
        ``checkpoint``: the fit's :class:`~estimators.common.checkpoint.FitCheckpoint` (validation cv)."""
        d = self.data
        on_epoch = self.epoch_hook(record, report, reported)
        estimator = self.make_estimator(record.params)
        if self.settings.cv == "validation":
            callbacks = [self.epoch_scorer(estimator, on_epoch)] + ([checkpoint] if checkpoint is not None else [])
            try:
                estimator.fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid), callbacks=callbacks)
            except CheckpointMismatch as exc:  # the checkpoint is of another network: start over
                logger.warning("trial %s starts over: %s", record.number, exc)
                checkpoint.resume = None
                record.history, record.epochs_run = {}, 0
                reported.clear()
                return self._run(record, report, reported, checkpoint)
            return self.measure(record, self.score_fitted(record, estimator))
        record.fold_scores, estimator = self._cross_validate(estimator, on_epoch)
        self._set_value(record)
        self.measure(record, estimator)  # fold 0's model: the trial's network, trained on part of its rows
        return None  # fold 0's model, trained on part of the training rows: not the trial's model

    def measure(self, record: TrialRecord, estimator) -> Any:
        """The study's other objectives of ``estimator`` (fitted) into ``record.measures``; returns it."""
        if self.meter is not None:
            record.measures = self.meter.measure(estimator)
        return estimator

    def _describe_fit(self, record: TrialRecord, estimator) -> None:
        """What retraining on more rows and ensemble selection need from a complete trial: the epoch it
        kept, its learning rates up to there and (for ensembles) its output on the validation rows."""
        record.best_epoch = int(getattr(estimator, "best_epoch_", 0) or estimator.n_epochs_)
        rates = estimator.history_.get("learning_rate", [])
        record.learning_rates = [float(r) for r in rates[: record.best_epoch]]
        if self.settings.keep_outputs:
            X_valid = self.data.X_valid
            out = estimator.predict(X_valid) if self.task == "regression" else estimator.predict_proba(X_valid)
            record.valid_output = np.asarray(out, dtype=np.float32)

    def _cross_validate(self, estimator, on_epoch) -> tuple[list[float], Any]:
        """K-fold on train as RandomizedSearchCV does; every fold stops early on the validation set."""
        from joblib import Parallel, delayed

        d = self.data
        folds = list(check_cv(self.settings.cv, d.y_train, classifier=self.task != "regression").split(d.X_train, d.y_train))
        # Fold 0 runs here with the epoch hook (curves, pruning); the others in parallel if asked.
        first = fit_fold(estimator, d, folds[0], self.metric, [self.epoch_scorer(estimator, on_epoch)])
        twin = self.maker.portable_clone(estimator)  # the folds' processes import a file factory by its path
        with process.quiet_workers():
            rest = Parallel(n_jobs=self.settings.n_jobs)(
                delayed(fit_fold)(clone(twin), d, fold, self.metric) for fold in folds[1:]
            )
        return [first[0]] + [score for score, _ in rest], first[1]

    def release_memory(self) -> None:
        """Drop Keras' global graph state between trials so memory does not grow.

        A full collection walks the whole heap (TensorFlow, MLflow, ... : half a million objects, 1-2 s
        a time here). After the first trial's, what survived is long-lived: in a study process
        (:func:`tuning.parallel.process.configure_study_process`) ``gc.freeze()`` then moves it out of the collector's
        sight, so the later collections only walk what trials created (milliseconds).
        """
        import keras

        keras.backend.clear_session(free_memory=False)
        gc.collect()
        process.freeze_heap_once(self.freeze_heap)


def make_runner(config: StudyConfig, split: DatasetSplit, observers: list[TrialObserver] | None = None,
                keeper: ModelKeeper | None = None) -> TrialRunner:
    """The runner of ``config``'s trials on ``split``: the split prepared (preprocessing fitted on its
    training rows), the estimator maker, the trial settings of the study and the meter of its other
    objectives (``search.objectives``)."""
    data = PreparedData.from_split(split, config.preprocessing, getattr(config.model, "inputs", None))
    maker = EstimatorMaker.for_study(config, split.task, data, split.vocab_size)
    others = [name for name, _ in config.search.objective_list(split.task)[1:]]
    meter = ObjectiveMeter(others, data.scaler, split.X_valid) if others else None
    return TrialRunner(data, maker, TrialSettings.of(config, split.task), observers, keeper, meter)
