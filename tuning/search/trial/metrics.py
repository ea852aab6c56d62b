"""Objective metrics: one name -> scikit-learn's scorer, for a fitted estimator or for predictions already made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics as skm


def _finite(values: Any) -> np.ndarray:
    """``values``, when every float among them is finite (FloatingPointError otherwise: never a score)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        raise FloatingPointError("the model predicts NaN or infinite values")
    return values


def _proba_metric(fn: Callable[..., float]) -> Callable[[Any, np.ndarray, np.ndarray], float]:
    def score(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
        proba = _finite(estimator.predict_proba(X))
        if fn is skm.roc_auc_score and proba.shape[1] == 2:
            return float(fn(y, proba[:, 1]))
        if fn is skm.roc_auc_score:
            return float(fn(y, proba, multi_class="ovr", labels=estimator.classes_))
        return float(fn(y, proba, labels=estimator.classes_))

    return score


def _pred_metric(fn: Callable[..., float]) -> Callable[[Any, np.ndarray, np.ndarray], float]:
    def score(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
        return float(fn(y, _finite(estimator.predict(X))))

    return score


SCORERS: dict[str, Callable[[Any, np.ndarray, np.ndarray], float]] = {
    "mse": _pred_metric(skm.mean_squared_error),
    "rmse": _pred_metric(skm.root_mean_squared_error),
    "mae": _pred_metric(skm.mean_absolute_error),
    "r2": _pred_metric(skm.r2_score),
    "accuracy": _pred_metric(skm.accuracy_score),
    "log_loss": _proba_metric(skm.log_loss),
    "roc_auc": _proba_metric(skm.roc_auc_score),
}


def score(metric: str, estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
    """``metric`` of ``estimator`` on ``(X, y)``."""
    return SCORERS[metric](estimator, X, y)


#: the metrics scored on class probabilities (the others on ``predict``'s values)
PROBABILITY_METRICS = frozenset({"log_loss", "roc_auc"})


class Predicted:
    """Predictions already made, read by the scorers as an estimator is: ``predict`` / ``predict_proba``
    return them whatever rows they are given (a network's decoded outputs, an ensemble's averages)."""

    def __init__(self, predictions: Any = None, probabilities: Any = None, classes: Any = None) -> None:
        self.predictions, self.probabilities, self.classes_ = predictions, probabilities, classes

    def predict(self, X: Any) -> Any:
        if self.predictions is None:  # labels from the probabilities, as a classifier predicts
            return np.asarray(self.classes_)[np.argmax(self.probabilities, axis=1)]
        return self.predictions

    def predict_proba(self, X: Any) -> Any:
        return self.probabilities


def score_predicted(metric: str, y: np.ndarray, predictions: Any = None, probabilities: Any = None,
                    classes: Any = None) -> float:
    """``metric`` of predictions already made on the rows whose targets are ``y``, by :func:`score`'s scorer."""
    return SCORERS[metric](Predicted(predictions, probabilities, classes), None, y)
