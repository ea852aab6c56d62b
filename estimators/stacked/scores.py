"""What a stack of members is scored and grouped by, apart from the stack itself (:mod:`estimators.stacked.model`):
each member's loss or accuracy from the outputs of one forward pass, and the grouping of member
configurations by the settings a stack shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

__all__ = ["group_members", "member_score"]


def group_members(configs: Sequence[Mapping[str, Any]],
                  keys: Iterable[str] = ("n_hidden", "batch_size")) -> dict[tuple, list[int]]:
    """Indices of ``configs`` grouped by the settings a stack shares (missing keys group as ``None``)."""
    keys = tuple(keys)
    groups: dict[tuple, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(tuple(config.get(key) for key in keys), []).append(index)
    return groups


def member_score(pred: np.ndarray, y: np.ndarray, task: str, metric: str) -> np.ndarray:
    """Each member's ``loss`` (its task's loss, as Keras computes it) or ``accuracy`` of outputs ``pred``
    (``(rows, K, units)``) on targets ``y``: ``(K,)``."""
    if metric == "accuracy":
        if task == "regression":
            raise ValueError("accuracy needs a classification task")
        labels = (pred[..., 0] > 0.5) if task == "binary" else pred.argmax(-1)
        return (labels == y.reshape(-1, 1)).mean(axis=0)
    if metric != "loss":
        raise ValueError(f"metric must be 'loss' or 'accuracy', got {metric!r}")
    eps = keras.config.epsilon()
    if task == "regression":
        return ((pred[..., 0] - y.reshape(-1, 1)) ** 2).mean(axis=0)
    if task == "binary":
        p, t = np.clip(pred[..., 0], eps, 1 - eps), y.reshape(-1, 1)
        return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=0)
    p = pred / pred.sum(-1, keepdims=True)
    picked = np.take_along_axis(p, y.reshape(-1, 1, 1).astype(int), axis=-1)[..., 0]
    return -np.log(np.clip(picked, eps, 1 - eps)).mean(axis=0)
