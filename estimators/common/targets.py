"""Target encoders: optional standardisation of regression targets inside the estimator."""

from __future__ import annotations

import numpy as np
from scikeras.utils.transformers import RegressorTargetEncoder


class StandardizedTargetEncoder(RegressorTargetEncoder):
    """Train on ``(y - mean) / std``; predictions are mapped back to the original scale.

    Targets in the hundreds (diabetes, prices) make SGD diverge at learning rates that suit
    standardised targets; with this the same learning-rate range works for every data set.
    """

    def fit(self, y: np.ndarray) -> StandardizedTargetEncoder:
        super().fit(y)
        y = np.asarray(y, dtype="float64")
        self.target_shape_ = tuple(y.shape[1:])  # a row's shape, for the predictions
        self.mean_ = y.mean(axis=0)
        std = y.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        y = super().transform(y)
        return ((np.asarray(y, dtype="float64") - self.mean_) / self.scale_).astype("float32")

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        shape = getattr(self, "target_shape_", ())  # () in an encoder pickled before it was kept: 1-D targets
        return np.asarray(y, dtype="float64").reshape(-1, *shape) * self.scale_ + self.mean_


def takes_logits(loss) -> bool:
    """Whether a compiled Keras loss reads the network's outputs as logits (``from_logits=True``)."""
    get_config = getattr(loss, "get_config", None)
    if loss is None or isinstance(loss, str) or get_config is None:
        return False
    try:
        return bool(get_config().get("from_logits", False))
    except Exception:  # a loss whose config cannot be read: it takes what the network outputs
        return False


def logits_to_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Logits as class probabilities: a sigmoid for one unit, else a softmax over the last axis."""
    from scipy import special

    outputs = np.asarray(outputs, dtype="float64")
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return special.expit(outputs)
    return special.softmax(outputs, axis=-1)


def is_one_hot_loss(loss) -> bool:
    """Whether a compiled Keras loss wants one-hot targets (categorical, not sparse, cross-entropy)."""
    import keras

    if isinstance(loss, str):
        return loss in ("categorical_crossentropy", "CategoricalCrossentropy")
    return isinstance(loss, keras.losses.CategoricalCrossentropy) or loss is keras.losses.categorical_crossentropy


class OneHotTargets:
    """A fitted class encoder whose codes are turned into one-hot rows (for a model compiled with a
    categorical cross-entropy); predictions go back through the class encoder."""

    def __init__(self, encoder, n_classes: int) -> None:
        self.encoder = encoder
        self.n_classes = n_classes

    def transform(self, y):
        codes = np.asarray(self.encoder.transform(y)).reshape(-1).astype(int)
        return np.eye(self.n_classes, dtype="float32")[codes]

    def inverse_transform(self, y, return_proba: bool = False):
        return self.encoder.inverse_transform(y, return_proba=return_proba)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["encoder"], name)


# pickled (in an export) as the public ``estimators.<Name>``, whichever module defines it: estimators/__init__.py
StandardizedTargetEncoder.__module__ = OneHotTargets.__module__ = "estimators"
