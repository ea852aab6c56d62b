"""A stack of K independent MLP members held as one Keras model, trained side by side (stacked trials).

A small MLP does not fill a CPU core; K of them as one model whose weights carry a leading member axis
(``einsum("bku,kuv->bkv")``), compiled with XLA, train several times more members per second. The members
stay independent, which is the contract of this module:

* the loss is the SUM of the members' losses, so member ``k``'s gradient is its own loss' gradient;
* the optimizer is Adam written out per member (the same formulas and order as ``keras.optimizers.Adam``):
  each member has its own moments, learning rate and step count, and a frozen member neither moves nor
  advances its step count; nothing (clipping, normalisation) mixes members;
* dropout masks are drawn independently per member, at each member's own rate;
* each member's weights are drawn like a lone model's: Glorot uniform with the member's own fan-in and
  fan-out (the member axis is not part of the fan), zero biases.

Members share the depth (``n_hidden``), the activation, the task, the periodic embedding's shape
(``embedding``: ``n_frequencies`` and ``embedding_dim``, or none) and, when fitted, the batch size (group
configurations by them with :func:`group_members`); each has its own width (``n_neurons``, an int or one per
layer), ``learning_rate``, ``dropout`` and, with the embedding, ``frequency_scale`` (its own initial
frequencies, kernel and bias: the layers of :class:`estimators.common.embeddings.PeriodicEmbedding` with a member
axis). Narrower members are padded to the widest and their padded units
masked: the padded weights start at zero, their gradient is exactly zero, so they stay zero and the member
computes what its lone model computes. Member ``i`` comes out as an ordinary Keras MLP
(:meth:`StackedMLP.member_model`, the layers of ``estimators.mlp.build.build_model``) and goes in from one
(:meth:`StackedMLP.set_member_weights`).

Limits of this step: TensorFlow backend only (custom ``train_step``), Adam only, no sample weights; the stack is not serialisable as a whole (export its members).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from estimators.common.hyperparams import layer_widths
from estimators.mlp.build import Task, build_model, output_layer_and_loss
from estimators.stacked.scores import group_members, member_score

__all__ = ["EMBEDDING_KEYS", "MEMBER_KEYS", "StackedMLP", "build_stacked_model", "group_members"]
#: The keys of a member configuration; every other setting is shared by the whole stack.
MEMBER_KEYS = ("n_neurons", "learning_rate", "dropout", "frequency_scale")
#: the periodic embedding's settings a stack shares (``embedding=``), with build_model's defaults
EMBEDDING_KEYS = {"n_frequencies": 16, "embedding_dim": 16}

_BETA_1, _BETA_2, _EPSILON = 0.9, 0.999, 1e-7  # keras.optimizers.Adam's defaults


class StackedMLP(keras.Model):
    """K MLP members in one model: input ``(batch, n_features)``, output ``(batch, K, units)``.

    Build it with :func:`build_stacked_model` (which also compiles it with XLA) and train it with ``fit``
    (``loss`` in the logs is the sum of the members' losses). Per-member control: :meth:`freeze`,
    :meth:`unfreeze`, :meth:`set_learning_rate`, :meth:`reinitialize_member`, :meth:`evaluate_members`.
    """

    def __init__(self, members: Sequence[Mapping[str, Any]], n_features: int, *, n_hidden: int = 1,
                 task: Task = "regression", n_classes: int | None = None, activation: str = "relu",
                 max_widths: int | Sequence[int] | None = None, with_dropout: bool | None = None,
                 embedding: Mapping[str, int] | None = None, seed: int | None = None, **kwargs):
        """``max_widths`` pads the hidden layers wider than the widest member (room for refills);
        ``with_dropout`` (default: whether a member has dropout) decides whether dropout is in the graph;
        ``embedding`` (``EMBEDDING_KEYS``, ``{}`` for the defaults) puts a periodic embedding first."""
        super().__init__(**kwargs)
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError("StackedMLP trains with a TensorFlow train_step; "
                                      f"the Keras backend is {keras.backend.backend()!r}")
        if not members:
            raise ValueError("a stack needs at least one member")
        self.n_features = int(n_features)
        self.n_hidden = int(n_hidden)
        self.task = task
        self.n_classes = n_classes
        self.activation_name = activation
        if embedding is not None:
            unknown = set(embedding) - set(EMBEDDING_KEYS)
            if unknown:
                raise ValueError(f"embedding sets {sorted(unknown)}; it takes {sorted(EMBEDDING_KEYS)}")
            embedding = {key: int(embedding.get(key, default)) for key, default in EMBEDDING_KEYS.items()}
        self.embedding = embedding
        self.units, self.out_activation_name, _ = output_layer_and_loss(task, n_classes)
        self._activation = keras.activations.get(activation)
        self._out_activation = keras.activations.get(self.out_activation_name)
        self._configs = [self._check_config(member) for member in members]
        widest = [max(widths[layer] for widths in (self._widths(c) for c in self._configs))
                  for layer in range(self.n_hidden)]
        if max_widths is not None:
            room = layer_widths(self.n_hidden, max_widths)
            if any(r < w for r, w in zip(room, widest, strict=True)):
                raise ValueError(f"max_widths {room} is narrower than the widest member {widest}")
            widest = room
        self.padded_widths = widest
        self.with_dropout = (any(c["dropout"] > 0 for c in self._configs) if with_dropout is None
                             else bool(with_dropout))
        self._rng = np.random.default_rng(seed)
        self._dropout_seed = keras.random.SeedGenerator(None if seed is None else seed + 1000)
        self._loss_mean = keras.metrics.Mean(name="loss")
        self._forward = None  # predict_members' compiled forward pass, made on first use
        self.build((None, self.n_features))
        for index in range(self.n_members):
            self.reinitialize_member(index)

    # ---- structure --------------------------------------------------------------------------------
    @property
    def n_members(self) -> int:
        """K, the number of member slots."""
        return len(self._configs)

    @property
    def members(self) -> list[dict[str, Any]]:
        """The current configuration of each slot (``learning_rate`` as last set)."""
        rates = self.learning_rates
        return [{**config, "learning_rate": float(rates[i])} for i, config in enumerate(self._configs)]

    def _check_config(self, member: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(member) - set(MEMBER_KEYS)
        if unknown:
            raise ValueError(f"a member sets {sorted(unknown)}; a member may set only {MEMBER_KEYS} "
                             "(the rest is shared by the stack)")
        config = {"n_neurons": member.get("n_neurons", 30), "learning_rate": float(member.get("learning_rate", 1e-3)),
                  "dropout": float(member.get("dropout", 0.0)),
                  "frequency_scale": float(member.get("frequency_scale", 0.1))}
        layer_widths(self.n_hidden, config["n_neurons"])  # checks a per-layer list's length
        if not 0.0 <= config["dropout"] < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {config['dropout']}")
        if config["learning_rate"] <= 0:
            raise ValueError(f"learning_rate must be > 0, got {config['learning_rate']}")
        if config["frequency_scale"] <= 0:
            raise ValueError(f"frequency_scale must be > 0, got {config['frequency_scale']}")
        return config

    def _widths(self, config: Mapping[str, Any]) -> list[int]:
        return layer_widths(self.n_hidden, config["n_neurons"])

    @property
    def n_inputs(self) -> int:
        """What the first Dense layer takes: the features, or their embeddings side by side."""
        return self.n_features * (self.embedding["embedding_dim"] if self.embedding else 1)

    def _embedding_shapes(self) -> list[tuple[int, ...]]:
        """The periodic embedding's weights of one member: frequencies, kernel, bias (PeriodicEmbedding's)."""
        if not self.embedding:
            return []
        f, k, d = self.n_features, self.embedding["n_frequencies"], self.embedding["embedding_dim"]
        return [(f, k), (f, 2 * k, d), (f, d)]

    def _layer_shapes(self) -> list[tuple[int, int]]:
        sizes = [self.n_inputs, *self.padded_widths, self.units]
        return list(zip(sizes[:-1], sizes[1:], strict=True))

    def build(self, input_shape) -> None:
        """Create the member-axis weights, masks and the per-member Adam state."""
        k = self.n_members
        zeros = keras.initializers.Zeros()
        names = ("frequencies", "kernel", "bias")
        self.embedding_weights = [self.add_weight(shape=(k, *shape), initializer=zeros, name=f"periodic_{name}")
                                  for name, shape in zip(names, self._embedding_shapes(), strict=False)]
        self.kernels, self.biases = [], []
        for layer, (fan_in, fan_out) in enumerate(self._layer_shapes()):
            name = "output" if layer == self.n_hidden else f"hidden_{layer + 1}"
            self.kernels.append(self.add_weight(shape=(k, fan_in, fan_out), initializer=zeros, name=f"{name}_kernel"))
            self.biases.append(self.add_weight(shape=(k, fan_out), initializer=zeros, name=f"{name}_bias"))
        self.params = [*self.embedding_weights, *(w for pair in zip(self.kernels, self.biases, strict=True) for w in pair)]

        def state(shape, name):
            return self.add_weight(shape=shape, initializer=zeros, trainable=False, name=name)

        self.unit_masks = [state((k, width), f"hidden_{i + 1}_mask") for i, width in enumerate(self.padded_widths)]
        self.first_moments = [state(p.shape, f"{p.name}_m") for p in self.params]
        self.second_moments = [state(p.shape, f"{p.name}_v") for p in self.params]
        self.steps = state((k,), "steps")  # Adam's step count per member (float: XLA- and mask-friendly)
        self.lr = state((k,), "learning_rates")
        self.active = state((k,), "active")  # 1 trains, 0 frozen
        self.dropout_rates = state((k,), "dropout_rates")
        # each member's training loss this epoch, as Keras' loss tracker averages it (weighted by batch size)
        self.member_loss_total = state((k,), "member_loss_total")
        self.member_loss_count = state((), "member_loss_count")
        self.built = True

    # ---- forward and training ---------------------------------------------------------------------
    def call(self, inputs, training: bool = False):
        ops = keras.ops
        h = ops.cast(inputs, self.compute_dtype)
        embedded = bool(self.embedding)
        if embedded:  # PeriodicEmbedding.call with a member axis: (batch, f) -> (batch, K, f * d)
            frequencies, kernel, bias = (ops.cast(w, h.dtype) for w in self.embedding_weights)
            angles = 2.0 * np.pi * h[:, None, :, None] * frequencies[None]  # (batch, K, f, k)
            periodic = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
            h = ops.relu(ops.einsum("bkfj,kfjd->bkfd", periodic, kernel) + bias[None])
            h = ops.reshape(h, (-1, self.n_members, self.n_inputs))
        for layer in range(self.n_hidden + 1):
            # the shared input (batch, d) is broadcast over the member axis by the first einsum itself
            equation = "bd,kdu->bku" if layer == 0 and not embedded else "bkd,kdu->bku"
            z = ops.einsum(equation, h, ops.cast(self.kernels[layer], h.dtype)) + ops.cast(self.biases[layer], h.dtype)
            if layer < self.n_hidden:
                h = self._activation(z) * ops.cast(self.unit_masks[layer], h.dtype)  # padded units: exactly 0
                if training and self.with_dropout:
                    rate = ops.cast(self.dropout_rates, h.dtype)[None, :, None]
                    keep = self.dropout_keep(ops.shape(h), rate, layer)
                    h = ops.where(keep, h / (1.0 - rate), ops.zeros_like(h))
        return z if self._out_activation is None else self._out_activation(z)

    def dropout_keep(self, shape, rate, layer: int):
        """Which units of hidden layer ``layer`` (``shape``: batch, K, width) dropout keeps: one uniform draw
        per unit, member and row, against each member's own ``rate`` (``(1, K, 1)``)."""
        return keras.random.uniform(shape, dtype=rate.dtype, seed=self._dropout_seed) >= rate

    def member_losses(self, y, y_pred):
        """Each member's mean loss over the batch, shape ``(K,)`` (Keras' loss functions, per member)."""
        ops = keras.ops
        k = self.n_members
        if self.task == "multiclass":
            y = ops.broadcast_to(ops.reshape(y, (-1, 1)), (ops.shape(y_pred)[0], k))
            per_sample = keras.losses.sparse_categorical_crossentropy(y, y_pred)
        else:
            y = ops.broadcast_to(ops.cast(ops.reshape(y, (-1, 1, 1)), y_pred.dtype), ops.shape(y_pred))
            loss = keras.losses.mean_squared_error if self.task == "regression" else keras.losses.binary_crossentropy
            per_sample = loss(y, y_pred)
        return ops.mean(per_sample, axis=0)

    def stack_loss(self, y, y_pred):
        """The training loss: the SUM of the members' losses (a mean would scale each member's gradient by 1/K)."""
        return keras.ops.sum(self.member_losses(y, y_pred))

    def train_step(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise NotImplementedError("StackedMLP does not take sample weights")
        with tf.GradientTape() as tape:
            losses = self.member_losses(y, self(x, training=True))
            loss = keras.ops.sum(losses)
        self._adam_step(tape.gradient(loss, self.params))
        batch = keras.ops.cast(keras.ops.shape(x)[0], self.member_loss_total.dtype)
        self.member_loss_total.assign_add(keras.ops.cast(losses, batch.dtype) * batch)
        self.member_loss_count.assign_add(batch)
        self._loss_mean.update_state(loss)
        return {"loss": self._loss_mean.result()}

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._loss_mean.update_state(self.stack_loss(y, self(x, training=False)))
        return {"loss": self._loss_mean.result()}

    def _adam_step(self, grads) -> None:
        """``keras.optimizers.Adam.update_step``, with a learning rate, a step count and an on/off per member."""
        ops = keras.ops
        for param, grad, m, v in zip(self.params, grads, self.first_moments, self.second_moments, strict=True):
            dtype = param.dtype
            shape = (-1,) + (1,) * (len(param.shape) - 1)  # a per-member vector against this weight
            active = ops.reshape(self.active, shape) > 0
            local_step = ops.reshape(ops.cast(self.steps + 1, dtype), shape)
            beta_1_power = ops.power(ops.cast(_BETA_1, dtype), local_step)
            beta_2_power = ops.power(ops.cast(_BETA_2, dtype), local_step)
            alpha = ops.reshape(ops.cast(self.lr, dtype), shape) * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            grad = ops.cast(grad, dtype)
            new_m = m + ops.multiply(ops.subtract(grad, m), 1 - _BETA_1)
            new_v = v + ops.multiply(ops.subtract(ops.square(grad), v), 1 - _BETA_2)
            new_param = param - ops.divide(ops.multiply(new_m, alpha), ops.add(ops.sqrt(new_v), _EPSILON))
            m.assign(ops.where(active, new_m, m))
            v.assign(ops.where(active, new_v, v))
            param.assign(ops.where(active, new_param, param))
        self.steps.assign(self.steps + ops.cast(self.active > 0, self.steps.dtype))

    @property
    def epoch_losses(self) -> np.ndarray:
        """Each member's mean training loss since :meth:`reset_epoch_losses`, ``(K,)`` (Keras' ``loss`` log
        of a lone model: the batches' losses weighted by batch size)."""
        count = float(self.member_loss_count.numpy())
        return np.asarray(self.member_loss_total.numpy(), dtype=np.float64) / max(count, 1.0)

    def reset_epoch_losses(self) -> None:
        """Start a new epoch's :attr:`epoch_losses`."""
        self.member_loss_total.assign(np.zeros(self.n_members))
        self.member_loss_count.assign(0.0)

    # ---- per-member control -------------------------------------------------------------------------
    def _set_slot(self, variable, index: int, value) -> None:
        array = np.array(variable.numpy())
        array[index] = value
        variable.assign(array)

    def _reset_optimizer(self, index: int) -> None:
        for moment in (*self.first_moments, *self.second_moments):
            self._set_slot(moment, index, 0.0)
        self._set_slot(self.steps, index, 0.0)

    def freeze(self, index: int) -> None:
        """Stop member ``index`` (early-stopped, pruned): its weights, moments and step count stay as they are."""
        self._set_slot(self.active, index, 0.0)

    def unfreeze(self, index: int) -> None:
        """Let member ``index`` train again from where it stopped."""
        self._set_slot(self.active, index, 1.0)

    @property
    def frozen(self) -> np.ndarray:
        """Boolean ``(K,)``: which members are frozen."""
        return np.asarray(self.active.numpy()) == 0

    @property
    def learning_rates(self) -> np.ndarray:
        """The members' current learning rates, ``(K,)``."""
        return np.asarray(self.lr.numpy(), dtype=np.float64)

    def set_learning_rate(self, index: int, value: float) -> None:
        """Set member ``index``'s learning rate (a plateau schedule halving it, say); no retracing."""
        if value <= 0:
            raise ValueError(f"learning_rate must be > 0, got {value}")
        self._set_slot(self.lr, index, value)
        self._configs[index]["learning_rate"] = float(value)

    def reinitialize_member(self, index: int, config: Mapping[str, Any] | None = None) -> None:
        """Refill slot ``index``: fresh Glorot weights (the member's own fans), zero biases, fresh Adam state,
        active; with ``config`` (``MEMBER_KEYS``) the slot takes that configuration."""
        if config is not None:
            config = self._check_config(config)
            if config["dropout"] > 0 and not self.with_dropout:
                raise ValueError("this stack was built without dropout (with_dropout=False)")
            self._check_fits(self._widths(config))
            self._configs[index] = config
        widths = self._widths(self._configs[index])
        sizes = [self.n_inputs, *widths, self.units]
        weights = []
        if self.embedding:  # PeriodicEmbedding's initializers: N(0, frequency_scale), U(+-1/sqrt(2k))
            frequencies, kernel, bias = self._embedding_shapes()
            bound = 1.0 / np.sqrt(kernel[1])
            weights += [self._rng.normal(0.0, self._configs[index]["frequency_scale"], size=frequencies),
                        self._rng.uniform(-bound, bound, size=kernel), self._rng.uniform(-bound, bound, size=bias)]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            limit = np.sqrt(6.0 / (fan_in + fan_out))  # keras.initializers.GlorotUniform, per member
            weights += [self._rng.uniform(-limit, limit, size=(fan_in, fan_out)), np.zeros(fan_out)]
        self.set_member_weights(index, weights)
        self._set_slot(self.lr, index, self._configs[index]["learning_rate"])
        self._set_slot(self.dropout_rates, index, self._configs[index]["dropout"])
        self._set_slot(self.active, index, 1.0)

    def _check_fits(self, widths: Sequence[int]) -> None:
        if len(widths) != self.n_hidden or any(w > p for w, p in zip(widths, self.padded_widths, strict=True)):
            raise ValueError(f"hidden widths {list(widths)} do not fit this stack's {self.padded_widths} "
                             "(same depth, no wider; build it with max_widths for room)")

    def set_member_weights(self, index: int, weights: keras.Model | Sequence[np.ndarray],
                           reset_optimizer: bool = True) -> None:
        """Put a lone MLP's weights (a model of ``build_model``'s layers, or its ``get_weights()`` list: the
        periodic embedding's frequencies, kernel and bias when the stack has one, then kernel, bias per Dense
        layer) into slot ``index``; its widths become the slot's (``n_neurons``)."""
        if isinstance(weights, keras.Model):
            weights = weights.get_weights()
        weights = [np.asarray(w) for w in weights]
        n_embedding = len(self.embedding_weights)
        if len(weights) != n_embedding + 2 * (self.n_hidden + 1):
            what = "with" if n_embedding else "without"
            raise ValueError(f"expected {n_embedding + 2 * (self.n_hidden + 1)} arrays (kernel, bias per Dense "
                             f"layer), got {len(weights)}: an MLP of depth {self.n_hidden} {what} the periodic "
                             "embedding")
        for variable, given in zip(self.embedding_weights, weights[:n_embedding], strict=True):
            if tuple(given.shape) != tuple(variable.shape[1:]):
                raise ValueError(f"the embedding's {variable.name} is {given.shape}; this stack's {variable.shape[1:]}")
            self._set_slot(variable, index, given)
        weights = weights[n_embedding:]
        widths = [w.shape[1] for w in weights[0:-2:2]]
        self._check_fits(widths)
        if weights[0].shape[0] != self.n_inputs or weights[-1].shape != (self.units,):
            raise ValueError(f"the model takes {weights[0].shape[0]} inputs to {weights[-1].shape} outputs; "
                             f"this stack {self.n_inputs} to ({self.units},)")
        for layer, (fan_in, fan_out) in enumerate(self._layer_shapes()):
            kernel, bias = np.zeros((fan_in, fan_out)), np.zeros(fan_out)
            given_kernel, given_bias = weights[2 * layer], weights[2 * layer + 1]
            kernel[: given_kernel.shape[0], : given_kernel.shape[1]] = given_kernel
            bias[: given_bias.shape[0]] = given_bias
            self._set_slot(self.kernels[layer], index, kernel)
            self._set_slot(self.biases[layer], index, bias)
        for layer, width in enumerate(widths):
            mask = np.zeros(self.padded_widths[layer])
            mask[:width] = 1.0
            self._set_slot(self.unit_masks[layer], index, mask)
        neurons = self._configs[index]["n_neurons"]
        if layer_widths(self.n_hidden, neurons) != widths:
            self._configs[index]["n_neurons"] = widths[0] if len(set(widths)) == 1 else widths
        if reset_optimizer:
            self._reset_optimizer(index)

    # ---- members out ------------------------------------------------------------------------------
    def member_weights(self, index: int) -> list[np.ndarray]:
        """Member ``index``'s weights without padding, as a lone model's ``get_weights()`` list."""
        sizes = [self.n_inputs, *self._widths(self._configs[index]), self.units]
        weights = [np.asarray(variable.numpy()[index]) for variable in self.embedding_weights]
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            weights.append(np.asarray(self.kernels[layer].numpy()[index, :fan_in, :fan_out]))
            weights.append(np.asarray(self.biases[layer].numpy()[index, :fan_out]))
        return weights

    def member_model(self, index: int) -> keras.Model:
        """Member ``index`` as an ordinary compiled Keras MLP (``build_model``'s layers, Adam at the member's
        current learning rate; fresh optimizer state), ready to export or to train on alone."""
        config = self.members[index]
        embedding = {"numeric_embedding": "periodic", "frequency_scale": config["frequency_scale"],
                     **self.embedding} if self.embedding else {}
        model = build_model(self.n_hidden, config["n_neurons"], config["learning_rate"],
                            n_features=self.n_features, task=self.task, n_classes=self.n_classes,
                            activation=self.activation_name, optimizer="adam", dropout=config["dropout"], seed=0,
                            **embedding)
        model.set_weights(self.member_weights(index))
        # built like a trained model's optimizer, so a saved member reloads without Keras' warning that the
        # optimizer's variables do not match
        model.optimizer.build(model.trainable_variables)
        return model

    # ---- evaluation -------------------------------------------------------------------------------
    def evaluate_members(self, x, y, metric: str = "loss", batch_size: int = 4096) -> np.ndarray:
        """Each member's ``loss`` or ``accuracy`` on ``(x, y)``: ``(K,)`` (:func:`member_score`)."""
        return self.member_scores(x, y, (metric,), batch_size)[metric]

    def member_scores(self, x, y, metrics: Sequence[str] = ("loss",), batch_size: int = 4096) -> dict[str, np.ndarray]:
        """:meth:`evaluate_members` for several metrics from one prediction: metric -> ``(K,)``."""
        return self.scores_of(self.predict_members(x, batch_size), y, metrics)

    def scores_of(self, pred: np.ndarray, y, metrics: Sequence[str] = ("loss",)) -> dict[str, np.ndarray]:
        """:meth:`member_scores` of outputs already predicted (:meth:`predict_members`)."""
        return {metric: member_score(pred, np.asarray(y), self.task, metric) for metric in metrics}

    def predict_members(self, x, batch_size: int = 4096) -> np.ndarray:
        """Every member's outputs on ``x``, ``(rows, K, units)`` in float64, through one compiled (XLA)
        forward pass per chunk of ``batch_size`` rows. Unlike ``predict``, it builds no ``tf.data`` pipeline
        per call: scoring the validation rows after every epoch would spend most of a small stack's time
        there."""
        import tensorflow as tf

        if self._forward is None:
            self._forward = tf.function(lambda rows: self(rows, training=False), jit_compile=self.jit_compile is True)
        x = np.asarray(x, dtype=self.compute_dtype)
        chunks = [self._forward(tf.constant(x[start:start + batch_size])).numpy()
                  for start in range(0, len(x), batch_size)]
        return np.concatenate(chunks).astype(np.float64)

def build_stacked_model(members: Sequence[Mapping[str, Any]], n_features: int, task: Task = "regression",
                        n_classes: int | None = None, *, n_hidden: int = 1, activation: str = "relu",
                        max_widths: int | Sequence[int] | None = None, with_dropout: bool | None = None,
                        embedding: Mapping[str, int] | None = None, seed: int | None = None,
                        jit_compile: bool = True, steps_per_execution: int = 1) -> StackedMLP:
    """Build and compile (XLA by default: without it stacking gains nothing) a :class:`StackedMLP` of
    ``members`` (dicts of ``MEMBER_KEYS``) sharing ``n_hidden``, ``activation``, ``task`` and ``embedding``."""
    model = StackedMLP(members, n_features, n_hidden=n_hidden, task=task, n_classes=n_classes,
                       activation=activation, max_widths=max_widths, with_dropout=with_dropout,
                       embedding=embedding, seed=seed, name="stacked_mlp")
    model.compile(optimizer=None, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model
