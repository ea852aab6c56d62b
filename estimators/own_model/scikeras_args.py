"""scikeras' two special factory arguments, ``meta`` and ``compile_kwargs``, as scikeras gives them.

A model function written for scikeras (``def get_clf(meta, hidden_layer_sizes, dropout)``) reads what the
data showed from ``meta`` (``meta["n_features_in_"]``, ``meta["n_classes_"]``, ...) and may compile itself from
``compile_kwargs`` (``model.compile(optimizer=compile_kwargs["optimizer"], loss=compile_kwargs["loss"])``).
Both are facts of :mod:`estimators.own_model.factory`: given, never tuned nor required of the user.

- ``meta``: as scikeras' ``BaseWrapper`` builds it, every public attribute of the fitting estimator whose name
  ends in one underscore (``n_features_in_``, ``X_dtype_``, ``X_shape_``, ``target_type_``, ``y_dtype_``,
  ``y_ndim_``, ``n_outputs_``, ``n_outputs_expected_``, ``classes_`` and ``n_classes_`` for a classifier,
  ``feature_encoder_``, ``target_encoder_``);
- ``compile_kwargs``: ``optimizer`` (an optimizer instance, with the estimator's optimizer, learning rate,
  momentum and weight decay), ``loss`` (the estimator's ``loss`` when given, else the task's: ``mse``,
  ``binary_crossentropy`` for two classes, ``sparse_categorical_crossentropy`` for more) and ``metrics``
  (the estimator's ``metrics`` when given, else ``["accuracy"]`` for a classifier, ``[]`` for a regressor).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SCIKERAS_ARGUMENTS", "compile_kwargs", "meta_from_data", "meta_of", "task_loss", "task_metrics"]

#: the factory arguments scikeras fills in itself
SCIKERAS_ARGUMENTS: tuple[str, ...] = ("meta", "compile_kwargs")


def meta_of(estimator: Any) -> dict[str, Any]:
    """scikeras' ``meta``: the estimator's attributes named ``name_`` (public, one trailing underscore)."""
    return {name: value for name, value in vars(estimator).items()
            if len(name) > 1 and name[-1] == "_" and name[-2] != "_" and name[0] != "_"}


def meta_from_data(X: np.ndarray, y: np.ndarray, task: str) -> dict[str, Any]:
    """``meta`` of rows ``X`` and targets ``y`` without an estimator (the check of a study's factory before
    its search): the keys scikeras documents, but the encoders."""
    from sklearn.utils.multiclass import type_of_target

    X, y = np.asarray(X), np.asarray(y)
    meta: dict[str, Any] = {
        "n_features_in_": int(X.shape[1]) if X.ndim > 1 else 1, "X_dtype_": X.dtype, "X_shape_": X.shape,
        "y_dtype_": y.dtype, "y_ndim_": y.ndim, "n_outputs_": 1, "n_outputs_expected_": 1,
        "target_type_": "continuous" if task == "regression" else type_of_target(y),
    }
    if task != "regression":
        meta["classes_"] = np.unique(y)
        meta["n_classes_"] = len(meta["classes_"])
    return meta


def task_loss(task: str, n_classes: int | None) -> str:
    """The loss of a task, for a network with our output layer."""
    if task == "regression":
        return "mse"
    return "binary_crossentropy" if (n_classes or 2) <= 2 else "sparse_categorical_crossentropy"


def task_metrics(task: str) -> list[str]:
    """The metrics a model is compiled with when the estimator is given none: accuracy for a classifier."""
    return [] if task == "regression" else ["accuracy"]


def compile_kwargs(optimizer: Any, loss: Any, metrics: Any) -> dict[str, Any]:
    """scikeras' ``compile_kwargs``: what ``model.compile(**compile_kwargs)`` takes."""
    return {"optimizer": optimizer, "loss": loss, "metrics": metrics}
