"""The exported model from the study's best trials: the best one alone, or an ensemble of several.

With ``export.train_on: train`` the exported models are the trials' own (trained on the training rows,
stopped early on the validation rows), as the study's :class:`~tuning.search.trial.keeper.ModelKeeper` holds
them; a model it does not hold (another worker's, one from before a resume, or one it dropped) is
refitted with its parameters and seed. With ``train+valid`` each is trained again on
the training and validation rows together, for the epochs its trial kept and with the learning rates its
trial used, epoch by epoch (the validation rows no longer stop it: they are training rows now).

Greedy selection scores averages of the trials' stored outputs on the validation rows (a complete trial
keeps them, whichever process ran it), which the trials already used for early stopping and for ranking,
so the ensemble's validation score is optimistic; the test score is the one to read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import log_loss

from estimators.common.ensemble import AveragingClassifier, AveragingRegressor, greedy_selection
from tuning.config.schema import EnsembleConfig
from tuning.errors import ExportFailed
from tuning.records import COMPLETE, TrialRecord
from tuning.search.trial import metrics
from tuning.search.trial.keeper import ModelKeeper
from tuning.search.trial.runner import TrialRunner

__all__ = ["build_ensemble", "divergence", "exported_estimator", "exported_estimators", "exported_model",
           "fitted_estimator", "ranked_trials", "retrained_estimator", "retrained_estimators", "stored_output"]


def fitted_estimator(runner: TrialRunner, record: TrialRecord, keeper: ModelKeeper | None = None):
    """The fitted estimator of trial ``record``: the one ``keeper`` holds, else refitted as the trial was."""
    kept = None if keeper is None else keeper.get(record.number)
    if kept is not None:
        return kept
    d = runner.data
    return runner.make_estimator(record.params).fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid))


def _fit_again(estimator, epochs: int, rates: list[float], X: np.ndarray, y: np.ndarray):
    """Fit ``estimator`` for ``epochs`` epochs at ``rates`` (one a epoch; module level, so it pickles)."""
    from estimators.common.callbacks import replay_learning_rates

    estimator.set_params(epochs=epochs, early_stopping=False, validation_fraction=0.0, lr_schedule="constant")
    return estimator.fit(X, y, callbacks=[replay_learning_rates(rates)] if rates else [])


def retrained_estimators(runner: TrialRunner, records: list[TrialRecord], n_jobs: int = 1) -> list[Any]:
    """The models of trials ``records`` trained again on the training + validation rows: each with its
    parameters and seed, ``record.best_epoch`` epochs at ``record.learning_rates`` (no early stopping,
    nothing held out); ``n_jobs`` > 1 trains them in that many processes at once."""
    d = runner.data
    X = np.concatenate([np.asarray(d.X_train), np.asarray(d.X_valid)])
    y = np.concatenate([np.asarray(d.y_train), np.asarray(d.y_valid)])
    portable = n_jobs > 1 and len(records) > 1  # trained in joblib's processes: a file factory by its path
    jobs = [(runner.make_estimator(r.params, portable=portable), r.best_epoch, list(r.learning_rates)) for r in records]
    if n_jobs <= 1 or len(jobs) <= 1:
        return [_fit_again(est, epochs, rates, X, y) for est, epochs, rates in jobs]
    from joblib import Parallel, delayed

    from tuning.parallel.process import quiet_workers

    with quiet_workers(), Parallel(n_jobs=min(n_jobs, len(jobs))) as parallel:
        return parallel(delayed(_fit_again)(est, epochs, rates, X, y) for est, epochs, rates in jobs)


def retrained_estimator(runner: TrialRunner, record: TrialRecord):
    """Trial ``record``'s model trained again on the training + validation rows (see retrained_estimators)."""
    return retrained_estimators(runner, [record])[0]


def exported_estimators(runner: TrialRunner, records: list[TrialRecord], n_jobs: int = 1,
                        keeper: ModelKeeper | None = None, train_on: str = "train") -> list[Any]:
    """The models of trials ``records`` as the study exports them (``export.train_on``; with ``train``,
    the ones ``keeper`` holds are reused)."""
    if train_on == "train+valid" and all(r.best_epoch > 0 for r in records):
        return retrained_estimators(runner, records, n_jobs)
    return [fitted_estimator(runner, record, keeper) for record in records]


def exported_estimator(runner: TrialRunner, record: TrialRecord, keeper: ModelKeeper | None = None,
                       train_on: str = "train"):
    """The model of trial ``record`` as the study exports it (``export.train_on``)."""
    return exported_estimators(runner, [record], keeper=keeper, train_on=train_on)[0]


def divergence(runner: TrialRunner, estimator) -> str | None:
    """Why ``estimator`` cannot be exported (its fit diverged, or it predicts NaN / infinite values on the
    validation rows), or None."""
    if getattr(estimator, "diverged_", False):
        return f"its training loss became NaN or infinite at epoch {estimator.n_epochs_}"
    X = runner.data.X_valid
    out = estimator.predict(X) if runner.task == "regression" else estimator.predict_proba(X)
    if not np.all(np.isfinite(np.asarray(out, dtype=np.float64))):
        return "it predicts NaN or infinite values on the validation rows"
    return None


def exported_model(runner: TrialRunner, record: TrialRecord, keeper: ModelKeeper | None = None,
                   train_on: str = "train") -> tuple[Any, list[str]]:
    """:func:`exported_estimator`, never one that diverged: a retrain on the training + validation rows that
    diverges gives way to the trial's own model (trained on the training rows); notes say so. Raises
    :class:`~tuning.errors.ExportFailed` when that one too predicts non-finite values."""
    model = exported_estimator(runner, record, keeper, train_on)
    problem = divergence(runner, model)
    if problem is None:
        return model, []
    notes = []
    if train_on == "train+valid":
        notes.append(f"trial {record.number} retrained on the training + validation rows diverged ({problem}): "
                     "its own model, trained on the training rows, is exported instead")
        model = fitted_estimator(runner, record, keeper)
        problem = divergence(runner, model)
    if problem is not None:
        raise ExportFailed(f"the best trial's model (trial {record.number}) cannot be exported: {problem}")
    return model, notes


def ranked_trials(records: list[TrialRecord], direction: str, n: int) -> list[TrialRecord]:
    """The ``n`` best complete trials with a finite value, best first (ties: the earlier trial)."""
    done = [r for r in records if r.state == COMPLETE and r.value is not None and np.isfinite(r.value)]
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(done, key=lambda r: (sign * r.value, r.number))[:n]


def stored_output(record: TrialRecord, regression: bool) -> np.ndarray:
    """A trial's kept validation output in float64; class probabilities kept in float32 have rows off one by
    up to ~1e-7, which scikit-learn's ``log_loss`` warns about in float64: each row divided by its sum."""
    output = np.asarray(record.valid_output, dtype=np.float64)
    return output if regression or output.ndim != 2 else output / output.sum(axis=1, keepdims=True)


def _validation_loss(runner: TrialRunner):
    """The loss greedy selection minimises: MSE of predictions, or log loss of class probabilities."""
    y_valid = np.asarray(runner.data.y_valid)
    if runner.task == "regression":
        y = y_valid.astype(np.float64).ravel()
        return lambda pred: float(np.mean((pred - y) ** 2))

    def loss(proba, labels=None) -> float:
        # float64 rows that sum to one (weighted sums and clipping leave them off by a little, which log_loss
        # would warn about once per greedy step)
        proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-15, 1.0)
        if proba.ndim == 2:
            proba = proba / proba.sum(axis=1, keepdims=True)
        return float(log_loss(y_valid, proba, labels=labels))

    return loss


def build_ensemble(runner: TrialRunner, records: list[TrialRecord], config: EnsembleConfig,
                   n_jobs: int = 1, keeper: ModelKeeper | None = None, train_on: str = "train") -> tuple[Any, dict]:
    """The averaged estimator of the best trials and what was chosen: ``{"method", "members": [{"trial",
    "weight"}], "valid_<metric>"}`` (the ensemble's score on the validation rows, from the trials' own
    models); ``n_jobs`` processes retrain the members (``train_on``: ``train+valid``); ``keeper``'s models
    are reused (``train``)."""
    regression = runner.task == "regression"
    n = config.candidates if config.method == "greedy" else config.size
    chosen = ranked_trials(records, runner.direction, n)
    X_valid = runner.data.X_valid
    if all(r.valid_output is not None for r in chosen):
        outputs = [stored_output(r, regression) for r in chosen]
    else:  # trials stored before outputs were kept: predict with their models
        models = [fitted_estimator(runner, record, keeper) for record in chosen]
        outputs = [m.predict(X_valid) if regression else m.predict_proba(X_valid) for m in models]
    classes = None if regression else np.unique(np.asarray(runner.data.y_train))
    if config.method == "greedy":
        loss = _validation_loss(runner)
        if not regression:
            loss = (lambda base: (lambda proba: base(proba, classes)))(loss)
        weights = greedy_selection(outputs, loss, config.size)
    else:
        weights = np.full(len(chosen), 1.0 / len(chosen))
    picked = [(record, w) for record, w in zip(chosen, weights, strict=True) if w > 0]
    members = exported_estimators(runner, [record for record, _ in picked], n_jobs, keeper, train_on)
    kept, dropped = [], []
    for (record, weight), member in zip(picked, members, strict=True):
        problem = divergence(runner, member)
        if problem is None:
            kept.append((record, weight, member))
        else:  # a retrained member that diverged: dropped, the others' weights renormalised
            dropped.append({"trial": record.number, "reason": problem})
    if not kept:
        raise ExportFailed(f"every member of the ensemble (trials {', '.join(str(d['trial']) for d in dropped)}) "
                           f"diverged when trained again: {dropped[0]['reason']}")
    total = sum(weight for _, weight, _ in kept)
    kept = [(record, weight / total, member) for record, weight, member in kept]
    cls = AveragingRegressor if regression else AveragingClassifier
    ensemble = cls.from_fitted([member for _, _, member in kept], [weight for _, weight, _ in kept])
    by_trial = {record.number: output for record, output in zip(chosen, outputs, strict=True)}
    averaged = sum(weight * by_trial[record.number] for record, weight, _ in kept)
    averaged_outputs = (metrics.Predicted(predictions=averaged) if regression
                        else metrics.Predicted(probabilities=averaged, classes=classes))
    info = {
        "method": config.method,
        "members": [{"trial": r.number, "weight": float(w)} for r, w, _ in kept],
        f"valid_{runner.metric}": metrics.score(runner.metric, averaged_outputs, X_valid, runner.data.y_valid),
    }
    if dropped:
        info["dropped"] = dropped
    return ensemble, info
