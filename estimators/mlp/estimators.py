"""scikit-learn estimators around the MLP factory, built on scikeras.

Every hyperparameter is an explicit ``__init__`` argument, so ``get_params``/``set_params``, ``clone``
and any scikit-learn search see them directly (``{"n_hidden": [0, 1, 2]}``, no ``model__`` prefix).
On top of scikeras 0.13.0 these classes fix what it gets wrong for scikit-learn >= 1.6: estimator tags,
parameters taken from ``vars(self)``, validation data that skipped the target encoding, leaked seeds.
"""

from __future__ import annotations

import numbers
import textwrap
import warnings

import numpy as np
import scipy.sparse as sp
from scikeras.wrappers import KerasClassifier, KerasRegressor
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.utils import ClassifierTags, RegressorTags, check_random_state

from estimators.common import hyperparams
from estimators.common.callbacks import StopOnInvalidLoss, early_stopping, lr_schedule
from estimators.common.checkpoint import with_checkpoint
from estimators.common.data_pipeline import array_dataset, holdout
from estimators.common.inference import predict_float64
from estimators.common.parameters import InitParameters, init_params
from estimators.common.seeding import seeded
from estimators.common.targets import StandardizedTargetEncoder
from estimators.common.validation import ValidationListener, ValidationPass
from estimators.compat.keras import iterators_per_epoch
from estimators.compat.scikeras import FitSteps, check_after_fit
from estimators.mlp.build import build_model


class _KerasMLPMixin(InitParameters, FitSteps):
    """Parameters (exactly the ``__init__`` arguments), validation, training loop and prediction shared by
    both estimators (scikeras' private steps of ``fit`` that they change: :class:`FitSteps`)."""

    # scikeras reads these as attributes; here they are constants of the class, not parameters.
    model = None
    build_fn = None
    warm_start = False
    loss = None
    metrics = None
    callbacks = None
    validation_split = 0.0
    validation_batch_size = None
    shuffle = True
    run_eagerly = False

    _task: str = "regression"

    def __sklearn_tags__(self):
        # scikeras puts RegressorMixin/ClassifierMixin after BaseWrapper, whose tags never call
        # super(), so scikit-learn >= 1.6 saw no estimator type at all. Set it here.
        tags = super().__sklearn_tags__()
        regressor = self._task == "regression"
        tags.estimator_type = "regressor" if regressor else "classifier"
        tags.regressor_tags = RegressorTags(poor_score=True) if regressor else None
        tags.classifier_tags = None if regressor else ClassifierTags(poor_score=True)
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        tags.input_tags.sparse = False
        return tags

    # ---- validation -------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Each argument against the hyperparameter table: ``ValueError("n_hidden must be an integer >= 0, ...")``."""
        for param in hyperparams.for_estimator(self._estimator_kind()):
            param.check(getattr(self, param.name))
        hyperparams.layer_widths(self.n_hidden, self.n_neurons)  # a list of widths: one per hidden layer

    def _estimator_kind(self) -> str:
        return "regressor" if self._task == "regression" else "classifier"

    @staticmethod
    def _refuse_sparse(X, what: str = "X") -> None:
        if sp.issparse(X):
            raise TypeError(
                f"{what} is a sparse matrix; these Keras MLP estimators need dense input. "
                "Convert it with X.toarray() (or use a dense multi-hot encoding)."
            )

    def _seed(self) -> int | None:
        if self.random_state is None:
            return None
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    # ---- fit ----------------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, *, validation_data=None, callbacks=None):
        """Fit the MLP, with early stopping against a validation set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
        validation_data : tuple (X_valid, y_valid), default=None
            Explicit validation set. When None and ``validation_fraction`` > 0, that fraction of
            ``X`` is held out (stratified for classifiers) instead.
        callbacks : list of keras.callbacks.Callback, default=None
            Extra callbacks for this fit only (e.g. pruning). Pass fresh objects for every fit.

        Returns
        -------
        self
        """
        self._check_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        self._refuse_sparse(X)
        y = self._column_to_1d(y)
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_valid, y_valid)")
            self._refuse_sparse(validation_data[0], "validation_data X")
        seed = self._seed()
        self._fit_extras = (validation_data, list(callbacks or []), seed)
        try:
            with seeded(seed):
                super().fit(X, y, sample_weight=sample_weight)
        except BaseException:
            self._clear_fitted_state()
            raise
        finally:
            del self._fit_extras
        return self

    def adopt(self, X, y, model, history, *, best_epoch: int, best_score: float = float("nan"),
              diverged: bool = False, has_validation: bool = True):
        """Become fitted on ``(X, y)`` with ``model``, a Keras network of this estimator's layers trained
        elsewhere (a member of a stack of trials, :mod:`estimators.stacked.model`), as if ``fit`` had trained it:
        the same encoders (the target scaler of ``standardize_target``), ``n_features_in_``, ``classes_``,
        and ``history_``, ``n_epochs_``, ``best_epoch_``, ``best_score_``, ``diverged_`` from the arguments.
        Nothing is trained. Returns self."""
        self._check_params()
        y = self._column_to_1d(y)
        self._adopted = model
        try:
            self.initialize(X, y)  # scikeras' checks, encoders and metadata; _keras_build_fn hands over ``model``
        except BaseException:
            self._clear_fitted_state()
            raise
        finally:
            del self._adopted
        self.history_ = {key: [float(v) for v in values] for key, values in history.items()}
        self.n_epochs_ = len(self.history_.get("loss", []))
        self.diverged_ = bool(diverged)
        self.best_epoch_, self.best_score_ = int(best_epoch), float(best_score)
        self.has_validation_ = bool(has_validation)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one more epoch on ``(X, y)`` (no hold-out, no early stopping); builds on first call."""
        self._check_params()
        self._refuse_sparse(X)
        y = self._column_to_1d(y)
        seed = self._seed()
        self._fit_extras = (None, [], seed)
        saved_fraction, self.validation_fraction = self.validation_fraction, None
        try:
            with seeded(seed):
                if self._task == "regression":
                    super().partial_fit(X, y, sample_weight=sample_weight)
                else:
                    super().partial_fit(X, y, classes=classes, sample_weight=sample_weight)
        finally:
            self.validation_fraction = saved_fraction
            del self._fit_extras
        return self

    @staticmethod
    def _column_to_1d(y):
        """A column vector y is raveled with scikit-learn's DataConversionWarning."""
        shape = _shape(y)
        if len(shape) == 2 and shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change the shape "
                "of y to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
            return np.ravel(y)
        return y

    def _clear_fitted_state(self) -> None:
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)

    def _keras_build_fn(self):
        if getattr(self, "_adopted", None) is not None:  # adopt(): the network trained elsewhere
            return self._adopted
        knobs = {knob.name: knob.coerce(getattr(self, knob.name)) for knob in hyperparams.build_knobs()}
        return build_model(
            **knobs,
            n_features=int(self.n_features_in_),
            task=self._model_task(),
            n_classes=getattr(self, "n_classes_", None),
            seed=self._fit_extras[2],
        )

    def _model_task(self) -> str:
        return self._task

    def _initial_learning_rate(self) -> float:
        """The rate a schedule starts from."""
        return float(self.learning_rate)

    def _encode_validation(self, validation_data):
        X_valid, y_valid = check_after_fit(self, *validation_data)
        return self.feature_encoder_.transform(X_valid), self.target_encoder_.transform(y_valid)

    def _train(self, X, y, sample_weight, epochs: int, initial_epoch: int) -> None:
        """Train the built model on the encoded rows (scikeras' ``fit`` and ``partial_fit`` end here)."""
        validation_data, extra_callbacks, seed = self._fit_extras
        if validation_data is not None:
            valid = self._encode_validation(validation_data)
        else:
            X, y, sample_weight, valid = holdout(X, y, sample_weight, float(self.validation_fraction or 0.0), seed,
                                                 stratified=self._task != "regression")
        # Stops at the first batch log (one per execution of steps_per_execution batches) whose loss is
        # NaN or infinite; the epoch still ends, so the history ends with that loss (diverged_ below).
        nan_stop = StopOnInvalidLoss()
        monitor = "val_loss" if valid is not None else "loss"
        stopper = None
        if self.early_stopping:
            stopper = early_stopping(monitor, int(self.patience), float(self.min_delta), bool(self.restore_best_weights))
        schedule = lr_schedule(self.lr_schedule, self._initial_learning_rate(), int(epochs), int(self.patience), monitor)
        # Validation: one forward pass per epoch logs val_loss and the compiled metrics (as Keras' own
        # validation would) and keeps the outputs for the callbacks that score them (estimators/common/validation.py)
        validation = None if valid is None else ValidationPass(self._network_input(valid[0]), np.asarray(valid[1]))
        for callback in extra_callbacks:
            if isinstance(callback, ValidationListener):
                callback.validation = validation
        # A checkpoint (last) may resume an earlier fit: Keras' epoch loop starts at the epochs it did
        extra_callbacks, checkpoint = with_checkpoint(extra_callbacks, int(epochs), stopper, schedule)
        done = min(checkpoint.start_epoch, int(epochs)) if checkpoint is not None and not initial_epoch else 0
        callbacks = [cb for cb in (validation, nan_stop, stopper, schedule, *extra_callbacks) if cb is not None]
        history = self._fit_network(
            (self._network_input(X), y, sample_weight), seed, done,
            epochs=int(initial_epoch) + int(epochs),
            initial_epoch=int(initial_epoch) + done,
            verbose=self.verbose,
            callbacks=callbacks,
        )
        new = {key: [float(v) for v in values] for key, values in history.history.items()}
        new_losses = np.asarray(new.get("loss", []), dtype=float)
        if initial_epoch and hasattr(self, "history_"):  # partial_fit: continue the curves
            new = {key: self.history_.get(key, []) + values for key, values in new.items()}
        elif done:  # a resumed fit: the epochs before its checkpoint first
            new = checkpoint.with_prior_history(new)
        self.history_ = new
        self.n_epochs_ = len(self.history_.get("loss", []))
        # The logged loss is the epoch's running mean: once a batch's loss is NaN/inf it stays non-finite,
        # so a non-finite loss in this fit's history is exactly a stop by StopOnInvalidLoss.
        self.diverged_ = not bool(np.isfinite(new_losses).all())
        curve = np.asarray(self.history_.get(monitor, [np.nan]), dtype=float)
        self.best_epoch_ = int(np.nanargmin(curve)) + 1 if np.isfinite(curve).any() else 0
        self.best_score_ = float(np.nanmin(curve)) if np.isfinite(curve).any() else float("nan")
        if stopper is not None and not initial_epoch and stopper.best is not None and np.isfinite(stopper.best):
            # With min_delta > 0 the early-stopping best (whose weights are restored) is not the argmin.
            self.best_epoch_, self.best_score_ = int(stopper.best_epoch) + 1, float(stopper.best)
        self.has_validation_ = valid is not None

    def _fit_network(self, rows, seed, epochs_done=0, **settings):
        """``model_.fit`` on a seeded, shuffled ``tf.data`` pipeline of ``rows`` (X, y, sample_weight) in
        batches of ``batch_size``, reshuffled as after ``epochs_done`` epochs (a resumed fit); its History."""
        rows = array_dataset(rows, int(self.batch_size), True, seed, epochs_done * iterators_per_epoch())
        return self.model_.fit(rows, shuffle=False, **settings)  # the dataset shuffles itself

    # ---- predict ------------------------------------------------------------------------------------
    def _network_outputs(self, X):
        """The network's outputs for the rows ``X``, in float64."""
        if not self.initialized_:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate "
                "arguments before using this estimator."
            )
        self._refuse_sparse(X)
        X, _ = check_after_fit(self, X)
        X = np.asarray(self.feature_encoder_.transform(X), dtype="float64")
        # In float64, so that a row scores the same alone and in any batch (estimators/common/inference.py).
        return predict_float64(self.model_, self._network_input(X))

    def _network_input(self, X):
        """What the Keras model takes for the rows ``X``: ``X`` itself (the user's-model estimators split it
        by input name when given ``inputs``)."""
        return X

    def predict(self, X, **kwargs):
        """Predictions for ``X``: values in the target's units, or class labels."""
        return self.predictions_from_outputs(self._network_outputs(X))

    # ---- network outputs -> what predict returns (the per-epoch scoring of a study decodes the same way) --
    def predictions_from_outputs(self, outputs: np.ndarray) -> np.ndarray:
        """What ``predict`` returns for the network's ``outputs`` (values in the target's units, or labels)."""
        return decoded_predictions(self.target_encoder_, self._as_probabilities(outputs))

    def _as_probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """A classifier network's outputs as probabilities (they are, unless its loss takes logits)."""
        return outputs


class _RegressorParts:
    """What a regressor adds to the shared mixin (before scikeras' KerasRegressor in the MRO)."""

    _task = "regression"

    @property
    def target_encoder(self):
        """Standardises y for training when ``standardize_target``; predictions come back in y's units."""
        return StandardizedTargetEncoder() if self.standardize_target else super().target_encoder

    def predict(self, X, **kwargs):
        """Predicted values, shape (n_samples,)."""
        return super().predict(X, **kwargs)


class _ClassifierParts:
    """What a classifier adds to the shared mixin (before scikeras' KerasClassifier in the MRO)."""

    _task = "classification"
    class_weight = None

    def _model_task(self) -> str:
        return "multiclass" if (getattr(self, "n_classes_", 2) or 2) > 2 else "binary"

    def predict_proba(self, X, **kwargs):
        """Class probabilities, shape (n_samples, n_classes); rows sum to 1."""
        return self.probabilities_from_outputs(self._network_outputs(X))

    def probabilities_from_outputs(self, outputs: np.ndarray) -> np.ndarray:
        """What ``predict_proba`` returns for the network's ``outputs``."""
        return decoded_probabilities(self.target_encoder_, self._as_probabilities(outputs), int(self.n_classes_))


def decoded_predictions(target_encoder, outputs: np.ndarray) -> np.ndarray:
    """``predict``'s values for network ``outputs``, by the fitted ``target_encoder_`` of an estimator."""
    return target_encoder.inverse_transform(outputs)


def decoded_probabilities(target_encoder, outputs: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba``'s rows for network ``outputs`` (float64, each summing to 1)."""
    proba = np.asarray(target_encoder.inverse_transform(outputs, return_proba=True), dtype="float64")
    proba = proba.reshape(-1, max(n_classes, 2)) if n_classes > 1 else proba.reshape(-1, 1)
    return proba / proba.sum(axis=1, keepdims=True)


def _shape(a) -> tuple:
    """Shape of an array-like without numpy's array-function dispatch (sklearn's _NotAnArray)."""
    return tuple(a.shape) if hasattr(a, "shape") else np.asarray(a).shape


class KerasMLPRegressor(_RegressorParts, _KerasMLPMixin, KerasRegressor):
    __doc__ = f"""Multi-layer perceptron regressor (Keras), a scikit-learn estimator.

{textwrap.indent(hyperparams.numpydoc("regressor"), "    ")}

    Attributes
    ----------
    model_ : keras.Model
    history_ : dict of str to list of float
        Per-epoch ``loss`` (and ``val_loss`` when a validation set was used).
    n_epochs_ : int
        Epochs actually run (early stopping and divergence stop earlier).
    best_epoch_ : int
        1-based epoch of the best monitored loss.
    diverged_ : bool
        True when the loss became NaN/inf and training stopped.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_hidden=1,
        n_neurons=30,
        learning_rate=3e-3,
        activation="relu",
        optimizer="sgd",
        momentum=0.0,
        dropout=0.0,
        weight_decay=None,
        numeric_embedding="none",
        n_frequencies=16,
        frequency_scale=0.1,
        embedding_dim=16,
        members=1,
        feature_scaling=False,
        epochs=100,
        batch_size=32,
        lr_schedule="constant",
        early_stopping=True,
        patience=10,
        min_delta=0.0,
        restore_best_weights=True,
        validation_fraction=0.1,
        steps_per_execution=64,
        random_state=None,
        verbose=0,
        standardize_target=False,
    ):
        init_params(self, **{k: v for k, v in locals().items() if k not in ("self", "__class__")})


class KerasMLPClassifier(_ClassifierParts, _KerasMLPMixin, KerasClassifier):
    """Multi-layer perceptron classifier (Keras), binary or multi-class, a scikit-learn estimator.

    Labels may be integers or strings. Binary problems use one sigmoid unit and binary
    cross-entropy; more classes use softmax and sparse categorical cross-entropy. Parameters and
    attributes are those of :class:`KerasMLPRegressor`, plus ``classes_`` and ``n_classes_``.
    """

    def __init__(
        self,
        n_hidden=1,
        n_neurons=30,
        learning_rate=3e-3,
        activation="relu",
        optimizer="sgd",
        momentum=0.0,
        dropout=0.0,
        weight_decay=None,
        numeric_embedding="none",
        n_frequencies=16,
        frequency_scale=0.1,
        embedding_dim=16,
        members=1,
        feature_scaling=False,
        epochs=100,
        batch_size=32,
        lr_schedule="constant",
        early_stopping=True,
        patience=10,
        min_delta=0.0,
        restore_best_weights=True,
        validation_fraction=0.1,
        steps_per_execution=64,
        random_state=None,
        verbose=0,
    ):
        init_params(self, **{k: v for k, v in locals().items() if k not in ("self", "__class__")})


# pickled (in an export) as the public ``estimators.<Name>``, whichever module defines it: estimators/__init__.py
KerasMLPRegressor.__module__ = KerasMLPClassifier.__module__ = "estimators"
