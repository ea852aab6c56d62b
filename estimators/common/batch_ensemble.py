"""An ensemble inside one MLP: BatchEnsemble Dense layers (Wen et al. 2020), as TabM uses them (Gorishniy et al.,
"TabM: Advancing Tabular Deep Learning with Parameter-Efficient Ensembling", ICLR 2025).

The network carries ``k`` members on a member axis, ``(batch, k, units)``. Every member shares each layer's
kernel ``W`` and has its own rank-1 adapters and bias: member ``i`` computes ``((x * r_i) @ W) * s_i + b_i``.
The first layer takes the plain rows ``(batch, d)`` and broadcasts them to every member; its ``r`` starts as
random signs (+1 / -1, so the members differ from the first step), every other ``r`` and every ``s`` as ones,
the biases as zeros. A member costs ``d + units`` extra weights per layer, not ``d * units``; a step costs
about ``k`` times the multiply-adds of one MLP on the same batch.

Training sees each member's own outputs: :class:`MemberMean` passes ``(batch, k, units)`` through when
``training`` and :class:`MemberLoss` averages the members' losses on the same rows (each member learns on its
own loss). At inference :class:`MemberMean` averages the members' outputs, after the output activation (a
classifier averages the members' probabilities, not their logits), so every consumer of the model's outputs
(prediction, the validation pass, a study's per-epoch scoring) sees one ``(batch, units)`` output as from
any MLP. Layers, loss and metric are registered Keras objects (saved and loaded with the model).
"""

from __future__ import annotations

import keras

__all__ = ["BatchEnsembleDense", "MemberLoss", "MemberMean", "member_accuracy"]


class _RandomSigns(keras.initializers.Initializer):
    """+1 or -1 with probability 1/2 each (seeded)."""

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        dtype = dtype or "float32"
        draw = keras.random.uniform(shape, seed=self.seed, dtype=dtype)
        return keras.ops.cast(keras.ops.where(draw < 0.5, -1.0, 1.0), dtype)


@keras.saving.register_keras_serializable(package="estimators")
class BatchEnsembleDense(keras.layers.Layer):
    """``(batch, d)`` or ``(batch, k, d)`` -> ``(batch, k, units)``: a Dense layer shared by ``members`` members,
    each with its own input scaling ``r``, output scaling ``s`` and bias (``random_signs``: ``r`` starts as random
    signs, as TabM's first layer; else ones)."""

    def __init__(self, units: int, members: int, activation=None, random_signs: bool = False,
                 kernel_initializer="glorot_uniform", seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.members = int(units), int(members)
        self.activation = keras.activations.get(activation)
        self.random_signs = bool(random_signs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed

    def build(self, input_shape) -> None:
        d, k = int(input_shape[-1]), self.members
        self.kernel = self.add_weight(name="kernel", shape=(d, self.units), initializer=self.kernel_initializer)
        self.r = self.add_weight(name="r", shape=(k, d),
                                 initializer=_RandomSigns(self.seed) if self.random_signs else "ones")
        self.s = self.add_weight(name="s", shape=(k, self.units), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(k, self.units), initializer="zeros")

    def call(self, inputs):
        ops = keras.ops
        if len(inputs.shape) == 2:  # the rows, the same for every member
            inputs = ops.expand_dims(inputs, 1)
        scaled = inputs * ops.cast(self.r, inputs.dtype)  # (batch, k, d)
        out = ops.matmul(scaled, ops.cast(self.kernel, inputs.dtype))
        return self.activation(out * ops.cast(self.s, inputs.dtype) + ops.cast(self.bias, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.members, self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "members": self.members,
                "activation": keras.activations.serialize(self.activation), "random_signs": self.random_signs,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer), "seed": self.seed}


@keras.saving.register_keras_serializable(package="estimators")
class MemberMean(keras.layers.Layer):
    """The members' outputs ``(batch, k, units)`` as they are when training (each member's loss), their mean
    ``(batch, units)`` otherwise."""

    def call(self, inputs, training=None):
        return inputs if training else keras.ops.mean(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="estimators")
class MemberLoss(keras.losses.Loss):
    """The Keras loss ``base`` (``mse``, ``binary_crossentropy``, ``sparse_categorical_crossentropy``) of each
    member on the same rows, averaged over the members, for outputs ``(batch, k, units)``; ``base`` itself for
    one output ``(batch, units)`` (the members' mean, at validation)."""

    def __init__(self, base: str = "mse", name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name or base, reduction=reduction, dtype=dtype)
        self.base = base
        self._function = keras.losses.get(base)

    def call(self, y_true, y_pred):
        ops = keras.ops
        if "sparse" not in self.base and len(y_true.shape) == 1:  # targets (batch,) for outputs (batch, 1)
            y_true = ops.expand_dims(y_true, -1)
        if len(y_pred.shape) != 3:
            return self._function(y_true, y_pred)
        k, units = y_pred.shape[1], y_pred.shape[2]
        flat = ops.reshape(y_pred, (-1, units))  # rows (row 0 member 0, row 0 member 1, ...)
        losses = self._function(ops.repeat(y_true, k, axis=0), flat)
        return ops.mean(ops.reshape(losses, (-1, k)), axis=1)

    def get_config(self) -> dict:
        return {**super().get_config(), "base": self.base}


@keras.saving.register_keras_serializable(package="estimators")
def member_accuracy(y_true, y_pred):
    """Accuracy of the members' mean probabilities (binary for one output unit, else sparse categorical)."""
    if len(y_pred.shape) == 3:
        y_pred = keras.ops.mean(y_pred, axis=1)
    if y_pred.shape[-1] == 1:
        return keras.metrics.binary_accuracy(y_true, y_pred)
    return keras.metrics.sparse_categorical_accuracy(y_true, y_pred)
