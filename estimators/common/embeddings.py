"""Periodic embeddings of numeric features (Gorishniy et al. 2022, "On Embeddings for Numerical Features in
Tabular Deep Learning"), the PLR variant: each feature ``x_j`` becomes ``ReLU(W_j [sin(2 pi c_j x_j),
cos(2 pi c_j x_j)] + b_j)``, with ``k`` trainable frequencies ``c_j`` per feature drawn from N(0, sigma) and a
linear map per feature to ``d`` units; the embeddings of all features are concatenated for the MLP.

A smooth MLP on raw coordinates needs many units to draw sharp, local patterns (prices by latitude and
longitude); the sines give it those shapes at the first layer. ``sigma`` (``frequency_scale``) sets how
fine they are and is the knob worth tuning (log scale, about 0.01 to 1 for standardised inputs).

:class:`FeatureScale` is RealMLP's first layer (Holzmüller et al. 2024, its "scale" layer): each feature times
its own trainable weight, initialised to 1 (the identity), so training can turn a feature up or down before
anything else sees it.
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["FeatureScale", "PeriodicEmbedding", "feature_scale_numpy", "periodic_embedding_numpy"]


@keras.saving.register_keras_serializable(package="estimators")
class FeatureScale(keras.layers.Layer):
    """``(batch, n_features)`` -> the same shape: feature ``j`` times a trainable ``scale[j]``, initially 1."""

    def build(self, input_shape) -> None:
        self.scale = self.add_weight(name="scale", shape=(int(input_shape[-1]),), initializer="ones")

    def call(self, inputs):
        return inputs * keras.ops.cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def feature_scale_numpy(layer: FeatureScale):
    """The layer as a float64 NumPy function of ``X`` (for the NumPy forward pass of estimators.common.inference)."""
    scale = np.asarray(layer.get_weights()[0], dtype=np.float64)
    return lambda X: X * scale


@keras.saving.register_keras_serializable(package="estimators")
class PeriodicEmbedding(keras.layers.Layer):
    """``(batch, n_features)`` -> ``(batch, n_features * embedding_dim)``: periodic, linear, ReLU per feature."""

    def __init__(self, n_frequencies: int = 16, frequency_scale: float = 0.1, embedding_dim: int = 16,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_frequencies = int(n_frequencies)
        self.frequency_scale = float(frequency_scale)
        self.embedding_dim = int(embedding_dim)
        self.seed = seed

    def build(self, input_shape) -> None:
        n_features = int(input_shape[-1])
        k, d = self.n_frequencies, self.embedding_dim
        seed = None if self.seed is None else int(self.seed)
        self.frequencies = self.add_weight(
            name="frequencies", shape=(n_features, k),
            initializer=keras.initializers.RandomNormal(0.0, self.frequency_scale, seed=seed))
        # PyTorch-style uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the per-feature linear map, as the paper.
        bound = 1.0 / math.sqrt(2 * k)
        self.kernel = self.add_weight(
            name="kernel", shape=(n_features, 2 * k, d),
            initializer=keras.initializers.RandomUniform(-bound, bound, seed=None if seed is None else seed + 1))
        self.bias = self.add_weight(
            name="bias", shape=(n_features, d),
            initializer=keras.initializers.RandomUniform(-bound, bound, seed=None if seed is None else seed + 2))

    def call(self, inputs):
        ops = keras.ops
        angles = 2.0 * math.pi * ops.expand_dims(inputs, -1) * ops.cast(self.frequencies, inputs.dtype)
        periodic = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)  # (batch, f, 2k)
        embedded = ops.relu(ops.einsum("bfk,fkd->bfd", periodic, ops.cast(self.kernel, inputs.dtype))
                            + ops.cast(self.bias, inputs.dtype))
        return ops.reshape(embedded, (-1, embedded.shape[1] * self.embedding_dim))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(input_shape[-1]) * self.embedding_dim)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_frequencies": self.n_frequencies,
                "frequency_scale": self.frequency_scale, "embedding_dim": self.embedding_dim, "seed": self.seed}


def periodic_embedding_numpy(layer: PeriodicEmbedding):
    """The layer as a float64 NumPy function of ``X`` (for the NumPy forward pass of estimators.common.inference)."""
    frequencies, kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())

    def forward(X: np.ndarray) -> np.ndarray:
        angles = 2.0 * np.pi * X[:, :, None] * frequencies[None]
        periodic = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
        embedded = np.maximum(np.einsum("bfk,fkd->bfd", periodic, kernel) + bias, 0.0)
        return embedded.reshape(len(X), -1)

    return forward
