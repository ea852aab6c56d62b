"""Weighted averages of fitted models, and greedy ensemble selection (Caruana et al. 2004, as auto-sklearn).

:class:`AveragingRegressor` averages predictions, :class:`AveragingClassifier` class probabilities. Built
with :meth:`from_fitted` from models already trained (a study's best trials), they predict at once;
``fit`` trains clones of the given estimators, so they also work as ordinary estimators in a Pipeline,
``clone`` and a search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

__all__ = ["AveragingClassifier", "AveragingRegressor", "greedy_selection"]


def greedy_selection(predictions: Sequence[np.ndarray], loss: Callable[[np.ndarray], float], size: int) -> np.ndarray:
    """Weights of greedy ensemble selection with replacement over ``predictions`` (one array per model).

    ``size`` rounds: each adds the model whose inclusion makes ``loss(average)`` smallest (ties: the first
    model, i.e. the better-ranked one when they come sorted). A model picked ``c`` times weighs ``c / size``;
    a model that never helps weighs 0.
    """
    if not predictions:
        raise ValueError("greedy selection needs at least one model's predictions")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in predictions])
    counts = np.zeros(len(stacked), dtype=np.int64)
    total = np.zeros_like(stacked[0])
    for rounds in range(1, size + 1):
        losses = [loss((total + candidate) / rounds) for candidate in stacked]
        pick = int(np.argmin(losses))
        counts[pick] += 1
        total += stacked[pick]
    return counts / counts.sum()


class _Averaging(BaseEstimator):
    """Shared parts: members, weights, fitting clones, building from fitted members."""

    def __init__(self, estimators: Sequence[Any] = (), weights: Sequence[float] | None = None):
        self.estimators = estimators
        self.weights = weights

    @classmethod
    def from_fitted(cls, estimators: Sequence[Any], weights: Sequence[float] | None = None):
        """An ensemble of already-fitted ``estimators`` (members with weight 0 are dropped)."""
        ensemble = cls(list(estimators), None if weights is None else list(weights))
        ensemble._set_members(list(estimators))
        return ensemble

    def _set_members(self, fitted: list[Any]) -> None:
        weights = np.ones(len(fitted)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        if len(weights) != len(fitted) or len(fitted) == 0:
            raise ValueError(f"{type(self).__name__} needs one weight per estimator and at least one estimator, "
                             f"got {len(fitted)} estimators and {len(weights)} weights")
        if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {list(weights)}")
        keep = weights > 0
        self.estimators_ = [est for est, k in zip(fitted, keep, strict=True) if k]
        self.weights_ = weights[keep] / weights[keep].sum()
        first = self.estimators_[0]
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(first, name):
                setattr(self, name, getattr(first, name))

    def fit(self, X, y, **fit_params):
        """Fit a clone of each estimator on ``(X, y)`` (``fit_params`` go to every member)."""
        self._set_members([clone(est).fit(X, y, **fit_params) for est in self.estimators])
        return self

    def _average(self, outputs: list[np.ndarray]) -> np.ndarray:
        return np.tensordot(self.weights_, np.stack([np.asarray(o, dtype=np.float64) for o in outputs]), axes=1)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "estimators_")


class AveragingRegressor(RegressorMixin, _Averaging):
    """The weighted mean of its members' predictions.

    Parameters
    ----------
    estimators : list of regressors
    weights : list of float or None, default=None
        Non-negative, normalised to sum to 1; None weighs every member equally.
    """

    def predict(self, X) -> np.ndarray:
        """The weighted mean prediction, shape (n_samples,)."""
        check_is_fitted(self)
        return self._average([est.predict(X) for est in self.estimators_])


class AveragingClassifier(ClassifierMixin, _Averaging):
    """The weighted mean of its members' class probabilities; ``predict`` takes the most probable class.

    Parameters are those of :class:`AveragingRegressor`; every member must have the same ``classes_``.
    """

    def _set_members(self, fitted: list[Any]) -> None:
        super()._set_members(fitted)
        self.classes_ = self.estimators_[0].classes_
        for est in self.estimators_[1:]:
            if not np.array_equal(est.classes_, self.classes_):
                raise ValueError("every member of an AveragingClassifier must have the same classes_")

    def predict_proba(self, X) -> np.ndarray:
        """Weighted mean class probabilities, shape (n_samples, n_classes)."""
        check_is_fitted(self)
        return self._average([est.predict_proba(X) for est in self.estimators_])

    def predict(self, X) -> np.ndarray:
        """The class with the highest mean probability."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
