"""The model factory: the classic Hands-On ML multi-layer perceptron, built for one task."""

from __future__ import annotations

from typing import Literal

import keras

from estimators.common.batch_ensemble import BatchEnsembleDense, MemberLoss, MemberMean, member_accuracy
from estimators.common.embeddings import FeatureScale, PeriodicEmbedding
from estimators.common.hyperparams import OPTIMIZERS, build_knobs, layer_widths
from estimators.compat.keras import skip_single_replica_all_reduce

Task = Literal["regression", "binary", "multiclass"]

TASKS = ("regression", "binary", "multiclass")


def make_optimizer(
    name: str, learning_rate: float, momentum: float = 0.0, weight_decay: float | None = None
) -> keras.optimizers.Optimizer:
    """Return a fresh Keras optimizer by name (``sgd`` honours ``momentum``)."""
    name = name.lower()
    if name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)
    elif name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate=learning_rate, weight_decay=weight_decay)
    elif name == "nadam":
        optimizer = keras.optimizers.Nadam(learning_rate=learning_rate, weight_decay=weight_decay)
    elif name == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay or 0.004)
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return skip_single_replica_all_reduce(optimizer)


def output_layer_and_loss(task: Task, n_classes: int | None) -> tuple[int, str | None, str]:
    """Units, activation and loss of the output layer for a task."""
    if task == "regression":
        return 1, None, "mse"
    if task == "binary":
        return 1, "sigmoid", "binary_crossentropy"
    if task == "multiclass":
        if not n_classes or n_classes < 2:
            raise ValueError(f"multiclass needs n_classes >= 2, got {n_classes!r}")
        return n_classes, "softmax", "sparse_categorical_crossentropy"
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def build_model(
    n_hidden: int = 1,
    n_neurons: int | list[int] = 30,
    learning_rate: float = 3e-3,
    *,
    n_features: int,
    task: Task = "regression",
    n_classes: int | None = None,
    activation: str = "relu",
    optimizer: str = "sgd",
    momentum: float = 0.0,
    dropout: float = 0.0,
    weight_decay: float | None = None,
    numeric_embedding: str = "none",
    n_frequencies: int = 16,
    frequency_scale: float = 0.1,
    embedding_dim: int = 16,
    members: int = 1,
    feature_scaling: bool = False,
    seed: int | None = None,
    steps_per_execution: int = 1,
) -> keras.Model:
    """Build and compile ``n_hidden`` Dense layers of ``n_neurons`` on ``n_features`` inputs (or one width
    per layer: ``n_neurons=[128, 64, 32]``, a list of ``n_hidden`` widths).

    The output layer and loss follow ``task``: one linear unit and MSE for regression, one sigmoid
    unit and binary cross-entropy for binary, ``n_classes`` softmax units and sparse categorical
    cross-entropy for multi-class. ``n_hidden=0`` gives a linear / logistic model. With
    ``feature_scaling=True`` each feature is first multiplied by a trainable weight that starts at 1
    (:class:`FeatureScale`, RealMLP's scale layer). With ``numeric_embedding="periodic"`` the features then go
    through a :class:`PeriodicEmbedding` (``n_frequencies``, ``frequency_scale``, ``embedding_dim``). With
    ``members=k > 1`` every Dense layer is a :class:`BatchEnsembleDense` of ``k`` members (TabM), trained on
    the mean of the members' losses, whose outputs the model averages at inference
    (estimators.common.batch_ensemble). With ``seed`` every initializer and dropout layer is seeded, so the weights do not depend on global state.
    Each knob is checked against the hyperparameter table (``estimators.common.hyperparams``).
    """
    given = locals()
    for knob in build_knobs():
        knob.check(given[knob.name])
    widths = layer_widths(n_hidden, n_neurons)
    units, out_activation, loss = output_layer_and_loss(task, n_classes)

    def init(offset: int):
        return keras.initializers.GlorotUniform(seed=None if seed is None else seed + offset)

    layers: list[keras.layers.Layer] = [keras.Input(shape=(n_features,))]
    if feature_scaling:
        layers.append(FeatureScale(name="feature_scale"))
    if numeric_embedding == "periodic":
        layers.append(PeriodicEmbedding(n_frequencies, frequency_scale, embedding_dim,
                                        seed=None if seed is None else seed + 2000, name="periodic_embedding"))
    def dense(i: int, width: int, dense_activation: str | None, name: str) -> keras.layers.Layer:
        if members == 1:
            return keras.layers.Dense(width, activation=dense_activation, kernel_initializer=init(i), name=name)
        return BatchEnsembleDense(width, members, activation=dense_activation, random_signs=i == 0,
                                  kernel_initializer=init(i), seed=None if seed is None else seed + 3000, name=name)

    for i in range(n_hidden):
        layers.append(dense(i, widths[i], activation, f"hidden_{i + 1}"))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout, seed=None if seed is None else seed + 1000 + i))
    layers.append(dense(n_hidden, units, out_activation, "output"))
    metrics: list = ["accuracy"] if task != "regression" else []
    if members > 1:  # each member's own loss when training, the members' mean otherwise
        layers.append(MemberMean(name="member_mean"))
        loss = MemberLoss(loss)
        metrics = [keras.metrics.MeanMetricWrapper(member_accuracy, name="accuracy")] if metrics else []
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        loss=loss,
        optimizer=make_optimizer(optimizer, learning_rate, momentum, weight_decay),
        metrics=metrics,
        steps_per_execution=steps_per_execution,
    )
    return model
