"""scikeras 0.13 internals: the private steps of its ``fit`` that our estimators take over.

The estimators subclass scikeras on purpose, through its documented points where they suffice: the model
from ``_keras_build_fn``, ``target_encoder``, ``initialize`` (``adopt``), ``fit`` / ``partial_fit`` /
``predict`` overridden, and its fitted attributes (``model_``, ``X_shape_``, ``target_encoder_``, ...).
scikeras' ``fit`` validates X and y, fits the encoders, builds and compiles the model, encodes the rows and
checks the model's outputs, then trains, in private methods; the three our estimators change are overridden
here (:class:`FitSteps`), and nothing outside this module names them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class FitSteps:
    """A mixin before scikeras' ``KerasRegressor`` / ``KerasClassifier`` in the MRO: scikeras' private fit
    steps that our estimators change. The training itself is the subclass's ``_train``."""

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs) -> None:
        # Why: scikeras' fit and partial_fit end here with the validated, encoded rows and the built model;
        # no documented hook takes over the training loop (``fit__`` keywords only reach Model.fit), and ours
        # trains on a seeded tf.data pipeline with its own validation pass, early stopping and history.
        self._train(X, y, sample_weight, int(epochs), int(initial_epoch))

    def _check_model_compatibility(self, y) -> None:
        # Why: scikeras compares len(model.outputs) with the targets before training; a subclassed Keras
        # model has no outputs until it runs, so the check is left out for it (as Keras would fail anyway).
        if getattr(self.model_, "outputs", None) is None:
            return
        super()._check_model_compatibility(y)

    def _validate_data(self, X=None, y=None, reset: bool = False, y_numeric: bool = False):
        # Why: scikeras validates X against the fit's dtype and refuses one that does not cast safely to it
        # (a float64 X after a float32 fit). After a fit our estimators take any numeric X (a DataFrame of
        # numeric columns, ints, float64): casting is their job. scikeras calls this from fit, partial_fit
        # and score, check_after_fit for predict and validation data.
        from estimators.common.inference import numeric_input

        if X is None or reset or not hasattr(self, "n_features_in_"):
            return super()._validate_data(X=X, y=y, reset=reset, y_numeric=y_numeric)
        shape = tuple(X.shape) if hasattr(X, "shape") else np.asarray(X).shape  # no array-function dispatch
        n_features = shape[1] if len(shape) == 2 else None
        if n_features is not None and n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        # scikeras' checks run on a cast copy when the dtype does not cast safely; the original values go on
        X = numeric_input(X, type(self).__name__)
        fit_dtype = getattr(self, "X_dtype_", X.dtype)
        if np.can_cast(X.dtype, fit_dtype):
            return super()._validate_data(X=X, y=y, reset=False, y_numeric=y_numeric)
        _, y = super()._validate_data(X=X.astype(fit_dtype), y=y, reset=False, y_numeric=y_numeric)
        return X, y


def check_after_fit(estimator: Any, X, y=None) -> tuple[Any, Any]:
    """``(X, y)`` checked against a fitted estimator's as scikeras checks them (with :class:`FitSteps`' rule
    for X's dtype): the number of features, the row shape, y's dtype and dimensions; arrays out."""
    # Why: these checks are scikeras' private _validate_data; no public function of it runs them.
    return estimator._validate_data(X=X, y=y, reset=False)
