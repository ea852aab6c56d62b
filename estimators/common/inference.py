"""Prediction in float64: a row's output does not depend on the other rows of the batch.

Training runs in float32, but float32 matrix products on CPU are not batch-invariant: the GEMM kernels
(Eigen's, in TensorFlow) compute a row with a different accumulation order depending on where it falls
in a register tile (the last rows of a batch that do not fill a tile take a narrower kernel; one row
alone takes the matrix-vector path). The same row then scores ~1e-7 relative apart in different
batches, and which rows differ depends on the kernels the processor gets (its vector width). In float64
the same effect is ~1e-16 relative, so predictions are computed in float64 from the fitted weights: for the
networks ``build_model`` makes (Dense layers with the usual activations, Dropout, feature scales, periodic
embeddings, BatchEnsemble members) by a NumPy forward pass, which costs nothing to set up; for any other
network (a user's functional model) by a float64 copy of the Keras model, built from the current weights at
each predict (never stored, so never stale and never pickled). A subclassed model, which cannot be copied
layer by layer, predicts in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special
from sklearn.utils.validation import check_array

PREDICT_CHUNK = 8192


def numeric_input(X, estimator_name: str) -> np.ndarray:
    """``X`` (array, list or DataFrame of numeric columns) as a numeric numpy array, dtype kept."""
    try:
        return check_array(X, dtype="numeric", allow_nd=True, accept_sparse=False)
    except ValueError as exc:
        if "could not convert" in str(exc) or "dtype" in str(exc).lower():
            raise ValueError(
                f"{estimator_name} needs numeric features (numbers, not strings or dates): {exc}"
            ) from exc
        raise


def float64_twin(model):
    """A float64 Keras model with ``model``'s layers and weights (inference only), or None when one cannot
    be made (a subclassed model, a layer whose config does not take a dtype). Its inputs keep the names of
    ``model``'s, so a multi-input twin takes the same dict of arrays keyed by input name; any input dtype
    (an ``Input(dtype="int32")`` of token ids included) becomes float64, which layers such as ``Embedding``
    cast back to indices."""
    import keras

    def float64_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float64"
        return type(layer).from_config(config)

    try:
        inputs = [keras.Input(shape=tuple(t.shape[1:]), dtype="float64", name=t.name) for t in model.inputs]
    except Exception:  # a subclassed model: no inputs to copy
        return None
    if not inputs:
        return None
    # the model's own input structure: one tensor, a list, or a dict keyed by input name
    structures = [inputs if len(inputs) > 1 else inputs[0], {t.name: i for t, i in zip(model.inputs, inputs, strict=True)}]
    for structure in structures:
        try:
            twin = keras.models.clone_model(model, input_tensors=structure, clone_function=float64_layer)
            twin.set_weights([np.asarray(w, dtype="float64") for w in model.get_weights()])
            return twin
        except Exception:  # not this structure, or a layer that cannot be rebuilt in float64
            continue
    return None


def _softmax(x: np.ndarray) -> np.ndarray:
    return special.softmax(x, axis=-1)


#: Activations the NumPy forward pass knows, by their Keras names (others use the Keras twin).
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": special.expit,
    "tanh": np.tanh,
    "softmax": _softmax,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x: 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0))),
    "silu": lambda x: x * special.expit(x),
    "swish": lambda x: x * special.expit(x),
    "softplus": lambda x: np.logaddexp(0.0, x),
}


def _identity_step(layer):
    """Input layers, and Dropout (the identity at inference)."""
    return lambda X: X


def _dense_step(layer):
    """A Dense layer's ``activation(X @ kernel + bias)``; None for an activation outside ACTIVATIONS or extra
    weights (LoRA, quantisation)."""
    name = layer.get_config().get("activation")
    activation = ACTIVATIONS.get(name) if isinstance(name, str) else None
    weights = [np.asarray(w, dtype=np.float64) for w in layer.get_weights()]
    if activation is None or len(weights) != 1 + bool(layer.use_bias):
        return None
    kernel, bias = weights[0], (weights[1] if layer.use_bias else None)

    def forward(X: np.ndarray) -> np.ndarray:
        out = X @ kernel
        if bias is not None:
            out += bias
        return activation(out)

    return forward


def _batch_ensemble_step(layer):
    """A BatchEnsembleDense layer's members ``activation(((X * r) @ kernel) * s + bias)`` on ``(rows, k, units)``
    (plain rows ``(rows, d)`` go to every member); None for an activation outside ACTIVATIONS."""
    name = layer.get_config().get("activation")
    activation = ACTIVATIONS.get(name) if isinstance(name, str) else None
    if activation is None:
        return None
    kernel, r, s, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())

    def forward(X: np.ndarray) -> np.ndarray:
        X = X[:, None, :] if X.ndim == 2 else X
        return activation(((X * r) @ kernel) * s + bias)

    return forward


def _member_mean_step(layer):
    """The members' mean of ``(rows, k, units)``."""
    return lambda X: X.mean(axis=1)


def numpy_layer_table() -> dict[type, Callable[[Any], Callable[[np.ndarray], np.ndarray] | None]]:
    """The Keras layer types the NumPy forward pass knows (exact types, not subclasses), each with the
    function turning such a layer into its float64 NumPy step, or None when its configuration is not covered."""
    import keras

    from estimators.common.batch_ensemble import BatchEnsembleDense, MemberMean
    from estimators.common.embeddings import (
        FeatureScale,
        PeriodicEmbedding,
        feature_scale_numpy,
        periodic_embedding_numpy,
    )

    return {
        keras.layers.InputLayer: _identity_step,
        keras.layers.Dropout: _identity_step,
        keras.layers.Dense: _dense_step,
        PeriodicEmbedding: periodic_embedding_numpy,
        FeatureScale: feature_scale_numpy,
        BatchEnsembleDense: _batch_ensemble_step,
        MemberMean: _member_mean_step,
    }


def numpy_layers(model) -> list | None:
    """``model``'s layers as float64 NumPy functions of the previous layer's output, or None when the model
    is not a chain of layers (a Sequential model) or a layer is not in :func:`numpy_layer_table` or its
    configuration is not covered (the Keras twin scores it then)."""

    if not _is_chain(model):  # a functional graph that branches: no chain to follow
        return None
    table = numpy_layer_table()
    steps = []
    for layer in model.layers:
        make_step = table.get(type(layer))
        step = None if make_step is None else make_step(layer)
        if step is None:
            return None
        steps.append(step)
    return steps


def _is_chain(model) -> bool:
    """Whether each layer of ``model`` takes the previous layer's output (a Sequential model, or a
    functional one without branches)."""
    import keras

    if isinstance(model, keras.Sequential):
        return True
    try:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            return False
        previous = model.inputs[0]
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if layer.input is not previous:
                return False
            previous = layer.output
        return previous is model.outputs[0]
    except (AttributeError, ValueError):  # a subclassed model, a layer called more than once
        return False


def _numpy_forward(steps: list, X: np.ndarray) -> np.ndarray:
    out = X
    for step in steps:
        out = step(out)
    return out


def predict_float64(model, X: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
    """Outputs of Keras ``model`` on ``X``, computed in float64, in chunks of ``PREDICT_CHUNK`` rows.

    ``X`` is one array (any number of dimensions: rows, images, token sequences), or for a model with
    several inputs a dict of arrays keyed by input name."""
    if isinstance(X, dict):
        X = {name: np.asarray(a, dtype="float64") for name, a in X.items()}
        if len(X) == 1:  # a one-input model given by name
            X = next(iter(X.values()))
    else:
        X = np.asarray(X, dtype="float64")
    steps = None if isinstance(X, dict) else numpy_layers(model)
    if steps is not None:
        return _numpy_forward(steps, X)
    twin = float64_twin(model)  # any other network: a float64 copy, built from the current weights
    if twin is None:  # a subclassed model: its own float32 outputs (batch-invariant to ~1e-7 only)
        twin = model
        X = {k: a.astype("float32") for k, a in X.items()} if isinstance(X, dict) else X.astype("float32")
    n = len(next(iter(X.values()))) if isinstance(X, dict) else len(X)

    def rows(i: int):
        if isinstance(X, dict):
            return {name: a[i : i + PREDICT_CHUNK] for name, a in X.items()}
        return X[i : i + PREDICT_CHUNK]

    chunks = [np.asarray(twin(rows(i), training=False), dtype="float64") for i in range(0, max(n, 1), PREDICT_CHUNK)]
    return np.concatenate(chunks, axis=0) if len(chunks) > 1 else chunks[0]
