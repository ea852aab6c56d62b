"""Weighted averages of fitted models, and greedy ensemble selection (Caruana et al. 2004, as auto-sklearn).

:class:`AveragingRegressor` and :class:`AveragingClassifier` are scikit-learn's ``VotingRegressor`` and
soft ``VotingClassifier`` (so they average predictions, resp. class probabilities, and ``fit`` trains clones
of unfitted members: they work in a Pipeline, ``clone`` and a search). What they add is
:meth:`~AveragingRegressor.from_fitted`, which builds one from models already trained (a study's best
trials) by wrapping each in ``sklearn.frozen.FrozenEstimator``, so fitting the ensemble trains nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.frozen import FrozenEstimator

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


def _frozen_members(models: Sequence[Any], weights: Sequence[float] | None, owner: str):
    """``(name, FrozenEstimator)`` pairs and normalised weights of the models with a weight > 0."""
    models = list(models)
    w = np.ones(len(models)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(models) == 0 or len(w) != len(models):
        raise ValueError(f"{owner} needs one weight per estimator and at least one estimator, "
                         f"got {len(models)} estimators and {len(w)} weights")
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {list(w)}")
    kept = [(model, weight) for model, weight in zip(models, w, strict=True) if weight > 0]
    members = [(f"member_{i}", FrozenEstimator(model)) for i, (model, _) in enumerate(kept, start=1)]
    total = sum(weight for _, weight in kept)
    return members, [float(weight / total) for _, weight in kept]


def _placeholder_rows(model: Any, n_rows: int) -> np.ndarray:
    """Rows of zeros with ``model``'s number of features: the ``X`` for fitting frozen members (ignored)."""
    return np.zeros((n_rows, int(getattr(model, "n_features_in_", 1))))


class AveragingRegressor(VotingRegressor):
    """``VotingRegressor``: the weighted mean of its members' predictions (float64 when theirs are).

    Parameters are ``VotingRegressor``'s: ``estimators`` is a list of ``(name, regressor)`` pairs, ``weights``
    one non-negative weight per member (None: equal weights).
    """

    @classmethod
    def from_fitted(cls, estimators: Sequence[Any], weights: Sequence[float] | None = None) -> AveragingRegressor:
        """A fitted ensemble of already-fitted regressors (frozen; members of weight 0 are dropped)."""
        members, kept_weights = _frozen_members(estimators, weights, cls.__name__)
        first = members[0][1]
        # Fitting frozen members trains nothing (FrozenEstimator.fit only checks they are fitted).
        return cls(members, weights=kept_weights).fit(_placeholder_rows(first, 1), np.zeros(1))


class AveragingClassifier(VotingClassifier):
    """Soft ``VotingClassifier``: the weighted mean of its members' class probabilities; ``predict`` takes
    the most probable class.

    Parameters are ``VotingClassifier``'s, with ``voting="soft"`` by default.
    """

    def __init__(self, estimators, *, voting="soft", weights=None, n_jobs=None, flatten_transform=True,
                 verbose=False):
        super().__init__(estimators, voting=voting, weights=weights, n_jobs=n_jobs,
                         flatten_transform=flatten_transform, verbose=verbose)

    @classmethod
    def from_fitted(cls, estimators: Sequence[Any], weights: Sequence[float] | None = None) -> AveragingClassifier:
        """A fitted ensemble of already-fitted classifiers with the same ``classes_`` (frozen; members of
        weight 0 are dropped)."""
        members, kept_weights = _frozen_members(estimators, weights, cls.__name__)
        classes = np.asarray(members[0][1].classes_)
        for _, member in members[1:]:
            if not np.array_equal(member.classes_, classes):
                raise ValueError("every member of an AveragingClassifier must have the same classes_")
        # VotingClassifier.fit learns its label encoder (sorted labels) from y; fitted on one row per class
        # it names the averaged probability columns as the members do, provided their classes_ are sorted.
        ensemble = cls(members, weights=kept_weights).fit(_placeholder_rows(members[0][1], len(classes)), classes)
        if not np.array_equal(ensemble.classes_, classes):
            raise ValueError(f"an AveragingClassifier needs members whose classes_ are sorted, got {list(classes)}")
        return ensemble


# pickled (in an export) as the public ``estimators.<Name>``, whichever module defines it: estimators/__init__.py
AveragingRegressor.__module__ = AveragingClassifier.__module__ = "estimators"
