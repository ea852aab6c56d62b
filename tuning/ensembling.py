"""The exported model from the study's best trials: the best one alone, or an ensemble of several.

Ensemble members are the trials' own models (trained on the training rows, stopped early on the
validation rows); a member this process did not train (another worker's, or one from before a resume) is
refitted with its parameters and seed. Greedy selection scores candidate averages on the validation rows,
which the trials already used for early stopping and for ranking, so the ensemble's validation score is
optimistic; the test score is the one to read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import log_loss

from estimators.ensemble import AveragingClassifier, AveragingRegressor, greedy_selection
from tuning import metrics
from tuning.config import EnsembleConfig
from tuning.records import COMPLETE, TrialRecord
from tuning.trial import TrialRunner

__all__ = ["build_ensemble", "fitted_estimator", "ranked_trials"]


def fitted_estimator(runner: TrialRunner, record: TrialRecord):
    """The fitted estimator of trial ``record``: kept by this process, else refitted as the trial was."""
    if runner.best_number == record.number and runner.best_estimator is not None:
        return runner.best_estimator
    if record.number in runner.kept:
        return runner.kept[record.number][1]
    d = runner.data
    return runner.make_estimator(record.params).fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid))


def ranked_trials(records: list[TrialRecord], direction: str, n: int) -> list[TrialRecord]:
    """The ``n`` best complete trials with a finite value, best first (ties: the earlier trial)."""
    done = [r for r in records if r.state == COMPLETE and r.value is not None and np.isfinite(r.value)]
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(done, key=lambda r: (sign * r.value, r.number))[:n]


def _validation_loss(runner: TrialRunner):
    """The loss greedy selection minimises: MSE of predictions, or log loss of class probabilities."""
    y_valid = np.asarray(runner.data.y_valid)
    if runner.task == "regression":
        y = y_valid.astype(np.float64).ravel()
        return lambda pred: float(np.mean((pred - y) ** 2))
    return lambda proba, labels=None: float(log_loss(y_valid, np.clip(proba, 1e-15, 1.0), labels=labels))


def build_ensemble(runner: TrialRunner, records: list[TrialRecord], config: EnsembleConfig) -> tuple[Any, dict]:
    """The averaged estimator of the best trials and what was chosen: ``{"method", "members": [{"trial",
    "weight"}], "valid_<metric>"}`` (the ensemble's score on the validation rows)."""
    regression = runner.task == "regression"
    n = config.candidates if config.method == "greedy" else config.size
    chosen = ranked_trials(records, runner.direction, n)
    members = [fitted_estimator(runner, record) for record in chosen]
    X_valid = runner.data.X_valid
    outputs = [m.predict(X_valid) if regression else m.predict_proba(X_valid) for m in members]
    if config.method == "greedy":
        loss = _validation_loss(runner)
        if not regression:
            labels = members[0].classes_
            loss = (lambda base: (lambda proba: base(proba, labels)))(loss)
        weights = greedy_selection(outputs, loss, config.size)
    else:
        weights = np.full(len(members), 1.0 / len(members))
    cls = AveragingRegressor if regression else AveragingClassifier
    ensemble = cls.from_fitted(members, weights)
    info = {
        "method": config.method,
        "members": [{"trial": r.number, "weight": float(w)} for r, w in zip(chosen, weights, strict=True) if w > 0],
        f"valid_{runner.metric}": metrics.score(runner.metric, ensemble, X_valid, runner.data.y_valid),
    }
    return ensemble, info
