"""The trial runner: one set of hyperparameters -> one fitted, scored estimator -> one TrialRecord.

It knows the data and the estimator, not the search algorithm: a backend hands it parameters and an
optional ``report(epoch, value)`` hook (which may raise :class:`PruneTrial`), and gets a record back.
The fitted model goes to whoever asks for it (:meth:`TrialRunner.run_trial`) and to the runner's
:class:`~tuning.search.keeper.ModelKeeper`, if it has one; the runner itself keeps no model.
"""

from __future__ import annotations

import copy
import gc
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import check_cv

from estimators import KerasMLPClassifier, KerasMLPRegressor, KerasModelClassifier, KerasModelRegressor
from estimators.hyperparams import for_estimator
from tuning.config.schema import PreprocessingConfig, StudyConfig
from tuning.data.preprocessing import build_preprocessor, make_scaler  # noqa: F401  (make_scaler: re-export)
from tuning.data.shaped import input_columns
from tuning.data.sources import DatasetSplit
from tuning.errors import DataError
from tuning.parallel import interrupt, process
from tuning.records import COMPLETE, FAILED, KILLED, PRUNED, PruneTrial, TrialRecord, failure_reason
from tuning.search import metrics
from tuning.search.epoch_scoring import EpochScorer, valid_key
from tuning.search.keeper import ModelKeeper
from tuning.search.space import estimator_params, to_python

Report = Callable[[int, float], None]


class TrialObserver(Protocol):
    """Told when a trial starts and ends (tracking, the progress display, a study's records).

    ``portable``: whether a copy may go with a :meth:`TrialRunner.detached` runner to another process
    that runs trials (it must pickle) and be told there; the others are told in this process as the
    records come back.
    """

    portable: ClassVar[bool]

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None: ...

    def on_trial_end(self, record: TrialRecord) -> None: ...


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


@dataclass
class PreparedData:
    """The split after preprocessing: fitted on train only, applied to train and valid (float32 arrays).

    ``scaler`` is the fitted preprocessing pipeline (raw rows -> network input; the first step of the
    exported pipeline), also reachable as ``preprocessing``; ``notes`` say which columns it dropped.
    ``standardize_target`` says whether regression trials train on standardised y.
    """

    scaler: Any
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    notes: list[str] = field(default_factory=list)
    standardize_target: bool = False
    #: ``model.inputs`` as the estimator's ``inputs``: input name -> indices of the preprocessed features
    inputs: dict[str, list[int]] | None = None

    @property
    def preprocessing(self) -> Any:
        return self.scaler

    @classmethod
    def from_split(cls, split: DatasetSplit, preprocessing: PreprocessingConfig | str,
                   inputs: dict[str, list[Any]] | None = None) -> PreparedData:
        """``inputs``: the study's ``model.inputs`` (raw columns by Keras input name), resolved against the
        preprocessed features (:func:`tuning.data.shaped.input_columns`)."""
        if isinstance(preprocessing, str):  # the scaling name alone
            preprocessing = PreprocessingConfig(scaling=preprocessing)
        if split.input_step is not None:  # images / token sequences: reshaped or padded, never imputed or scaled
            pipeline, notes = clone(split.input_step), []
        else:
            try:
                pipeline, notes = build_preprocessor(split.frame("train"), preprocessing, keep=split.keep)
            except ValueError as exc:
                raise DataError(f"preprocessing of '{split.name}': {exc}") from exc
        X_train = pipeline.fit_transform(split.X_train)
        standardize = split.task == "regression" and target_needs_scaling(split.y_train, preprocessing.target_scaling)
        mapped = None
        if inputs:
            try:
                mapped = input_columns(inputs, pipeline, split.feature_names)
            except ValueError as exc:
                raise DataError(f"model.{exc}") from exc
        return cls(pipeline, X_train, split.y_train, pipeline.transform(split.X_valid), split.y_valid, notes,
                   standardize, mapped)


def target_needs_scaling(y: np.ndarray, mode: str) -> bool:
    """``target_scaling``: standard -> yes; none -> no; auto -> when y's mean or spread is far from 0 / 1."""
    if mode != "auto":
        return mode == "standard"
    y = np.asarray(y, dtype=np.float64)
    mean, std = float(np.mean(y)), float(np.std(y))
    return abs(mean) > 3 or not 0.3 <= std <= 3


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


class TrialRunner:
    """Fits and scores one configuration; offers each complete trial's fitted model to ``keeper``."""

    def __init__(self, config: StudyConfig, split: DatasetSplit, observers: list[TrialObserver] | None = None,
                 keeper: ModelKeeper | None = None):
        self.config = config
        self.task = split.task
        self.metric = config.search.resolved_metric(split.task)
        self.direction = config.search.direction(split.task)
        self.data = PreparedData.from_split(split, config.preprocessing, getattr(config.model, "inputs", None))
        self.vocab_size = split.vocab_size
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
        params: dict[str, Any] = {}
        for param in for_estimator("regressor" if self.task == "regression" else "classifier"):
            if param.study:
                value = self.config.value_of(param.study)
                params[param.name] = param.study_value(value) if param.study_value else value
        if self.task == "regression":  # target_scaling: auto is decided on the training targets
            params["standardize_target"] = self.data.standardize_target
        params.update(self.config.model.fixed_params())
        if self.config.model.factory is not None:
            if self.data.inputs:
                params["inputs"] = self.data.inputs
            if self.vocab_size is not None:  # the fact the rows cannot show: the vocabulary's size
                params["vocab_size"] = self.vocab_size
        return params

    def make_estimator(self, params: dict[str, Any], portable: bool = False):
        """A new unfitted estimator with the study's fixed arguments and ``params``: our MLP, or with
        ``model.build`` the user's factory (the function itself, which pickles by reference to its module)
        in :class:`~estimators.KerasModelRegressor` / ``KerasModelClassifier``. ``portable``: for joblib's
        worker processes, which cannot import a file factory's module by name: ``build`` is then the
        factory's path (``Factory.reference``)."""
        factory = self.config.model.factory
        params = estimator_params(self.config, params)  # per-unit lists, a hypermodel's hp_values
        if factory is not None:
            cls = KerasModelRegressor if self.task == "regression" else KerasModelClassifier
            build = factory.reference() if portable else factory.function
            return cls(build=build, **{**self.base_params(), **params})
        cls = KerasMLPRegressor if self.task == "regression" else KerasMLPClassifier
        return cls(**{**self.base_params(), **params})

    # ---- one trial -------------------------------------------------------------------------------
    def run(self, number: int, params: dict[str, Any], report: Report | None = None) -> TrialRecord:
        """Train and score ``params``; never raises for a bad configuration (the record says why).

        ``report(epoch, value)`` is given the study's metric on the validation rows after every epoch
        (:mod:`tuning.search.epoch_scoring`); when it raises :class:`PruneTrial`, the trial is pruned and keeps
        the value it was last given.
        """
        outcome = self.run_trial(number, params, report)
        record = outcome.record
        # Keras' state is cleared once nothing holds the fitted model any more: cleared while the model
        # lives, its traced functions outlive the clearing and are freed later, inside the next trial
        del outcome
        self.release_memory()
        return record

    def run_trial(self, number: int, params: dict[str, Any], report: Report | None = None) -> TrialOutcome:
        """:meth:`run`, returning the fitted estimator with the record; the keeper (if any) is offered
        the estimator before the observers hear that the trial ended. The caller calls
        :meth:`release_memory` once it has let go of the estimator (:meth:`run` does)."""
        record = self.open_trial(number, params)
        reported: list[float] = []  # the per-epoch values given to report, in order
        start = time.perf_counter()
        estimator, error = None, None
        try:
            estimator = self._run(record, report, reported)
        except (Exception, KeyboardInterrupt) as exc:
            error = exc
        outcome = self.close_trial(record, estimator, error, reported, time.perf_counter() - start)
        if isinstance(error, KeyboardInterrupt):
            raise error
        return outcome

    # ---- the steps of a trial (run_trial; the stacked trials of tuning.search.stacking) -------------
    def open_trial(self, number: int, params: dict[str, Any], check: bool = True) -> TrialRecord:
        """A new record for trial ``number``; the observers hear that it started (``check``: first raise
        KeyboardInterrupt if a stop was requested)."""
        if check:
            interrupt.check()
        params = to_python(params)
        record = TrialRecord(number=number, params=params, metric=self.metric, started_at=time.time())
        for observer in self.observers:
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
        ``valid_<metric>`` (the study's metric on the validation rows, :mod:`tuning.search.epoch_scoring`)
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

    def _run(self, record: TrialRecord, report: Report | None, reported: list[float]) -> Any:
        """Fit and score into ``record``; the fitted estimator worth keeping (validation cv), else None."""
        d = self.data
        on_epoch = self.epoch_hook(record, report, reported)
        estimator = self.make_estimator(record.params)
        if self.config.search.cv == "validation":
            estimator.fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid),
                          callbacks=[self.epoch_scorer(estimator, on_epoch)])
            return self.score_fitted(record, estimator)
        record.fold_scores, estimator = self._cross_validate(estimator, on_epoch)
        self._set_value(record)
        return None  # fold 0's model, trained on part of the training rows: not the trial's model

    def _describe_fit(self, record: TrialRecord, estimator) -> None:
        """What retraining on more rows and ensemble selection need from a complete trial: the epoch it
        kept, its learning rates up to there and (for ensembles) its output on the validation rows."""
        record.best_epoch = int(getattr(estimator, "best_epoch_", 0) or estimator.n_epochs_)
        rates = estimator.history_.get("learning_rate", [])
        record.learning_rates = [float(r) for r in rates[: record.best_epoch]]
        if self.config.export.ensemble.enabled:
            X_valid = self.data.X_valid
            out = estimator.predict(X_valid) if self.task == "regression" else estimator.predict_proba(X_valid)
            record.valid_output = np.asarray(out, dtype=np.float32)

    def _cross_validate(self, estimator, on_epoch) -> tuple[list[float], Any]:
        """K-fold on train as RandomizedSearchCV does; every fold stops early on the validation set."""
        from joblib import Parallel, delayed

        d = self.data
        folds = list(check_cv(self.config.search.cv, d.y_train, classifier=self.task != "regression").split(d.X_train, d.y_train))
        # Fold 0 runs here with the epoch hook (curves, pruning); the others in parallel if asked.
        first = fit_fold(estimator, d, folds[0], self.metric, [self.epoch_scorer(estimator, on_epoch)])
        factory = self.config.model.factory  # the folds' processes import a file factory by its path
        twin = clone(estimator) if factory is None else clone(estimator).set_params(build=factory.reference())
        with process.quiet_workers():
            rest = Parallel(n_jobs=self.config.search.n_jobs)(
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
