"""Objective metrics: one name -> how to score a fitted estimator, and how Keras logs relate to it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics as skm


def _proba_metric(fn: Callable[..., float]) -> Callable[[Any, np.ndarray, np.ndarray], float]:
    def score(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
        proba = estimator.predict_proba(X)
        if fn is skm.roc_auc_score and proba.shape[1] == 2:
            return float(fn(y, proba[:, 1]))
        if fn is skm.roc_auc_score:
            return float(fn(y, proba, multi_class="ovr", labels=estimator.classes_))
        return float(fn(y, proba, labels=estimator.classes_))

    return score


def _pred_metric(fn: Callable[..., float]) -> Callable[[Any, np.ndarray, np.ndarray], float]:
    def score(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
        pred = estimator.predict(X)
        if np.issubdtype(np.asarray(pred).dtype, np.floating) and not np.all(np.isfinite(pred)):
            raise ValueError("the model predicts NaN or infinite values")
        return float(fn(y, pred))

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


def epoch_value(metric: str, direction: str, logs: dict[str, float], target_scale: float = 1.0,
                valid_variance: float | None = None) -> float | None:
    """A per-epoch stand-in for ``metric`` from Keras validation logs, oriented like the metric.

    The one per-epoch value: the trial runner reports it to the pruner after each epoch, and a pruned
    trial keeps the last one reported as its value (in the study store, MLflow and the report alike).
    Pruners compare these across trials, so they must rank trials the way the final metric does:
    ``val_loss`` is the MSE for regression (``target_scale`` is the target's standard deviation when the
    network trains on a standardised target, so the value is in the target's units), so ``mse``, ``rmse``
    and, given ``valid_variance`` (the validation targets' variance), ``r2 = 1 - MSE / variance`` are the
    metric itself on the validation rows; ``val_accuracy`` is the accuracy and the cross-entropy loss is the
    ``log_loss``. For ``mae`` and ``roc_auc`` the validation loss stands in (negated when the metric is
    maximised): it ranks trials alike but is not the metric's value.
    """
    if metric == "accuracy" and "val_accuracy" in logs:
        return float(logs["val_accuracy"])
    loss = logs.get("val_loss")
    if loss is None:
        return None
    loss = float(loss) * target_scale**2
    if metric == "rmse":
        return math.sqrt(loss) if loss >= 0 else loss
    if metric == "r2" and valid_variance:
        return 1.0 - loss / valid_variance
    return loss if direction == "minimize" else -loss
