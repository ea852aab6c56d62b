"""The model factory ``build_model``: architecture, output per task, optimizer, seeding, validation."""

import keras
import numpy as np
import pytest

from estimators.mlp.build import OPTIMIZERS, build_model


def dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_hidden_layers_have_the_requested_size_activation_and_input():
    model = build_model(n_hidden=3, n_neurons=17, n_features=5, activation="tanh")
    *hidden, output = dense_layers(model)
    assert len(hidden) == 3
    assert [layer.units for layer in hidden] == [17, 17, 17]
    assert all(layer.activation is keras.activations.tanh for layer in hidden)
    assert model.input_shape == (None, 5)
    assert hidden[0].kernel.shape == (5, 17)
    assert hidden[1].kernel.shape == (17, 17)
    assert output.kernel.shape == (17, 1)


@pytest.mark.parametrize(
    ("task", "n_classes", "units", "activation", "loss"),
    [
        ("regression", None, 1, keras.activations.linear, "mse"),
        ("binary", None, 1, keras.activations.sigmoid, "binary_crossentropy"),
        ("binary", 2, 1, keras.activations.sigmoid, "binary_crossentropy"),
        ("multiclass", 4, 4, keras.activations.softmax, "sparse_categorical_crossentropy"),
    ],
)
def test_output_layer_and_loss_follow_the_task(task, n_classes, units, activation, loss):
    model = build_model(n_features=3, task=task, n_classes=n_classes)
    output = dense_layers(model)[-1]
    assert output.units == units
    assert output.activation is activation
    assert model.loss == loss
    assert model.output_shape == (None, units)
    out = np.asarray(model(np.ones((2, 3), dtype="float32")))
    if task == "multiclass":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    if task == "binary":
        assert ((out > 0) & (out < 1)).all()


def test_sgd_with_the_learning_rate_by_default():
    model = build_model(learning_rate=0.0123, n_features=2)
    assert type(model.optimizer) is keras.optimizers.SGD
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0123, rel=1e-6)
    assert float(model.optimizer.momentum) == 0.0
    assert float(build_model(n_features=2, momentum=0.9).optimizer.momentum) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", "SGD"), ("adam", "Adam"), ("RMSprop", "RMSprop"), ("nadam", "Nadam"), ("adamw", "AdamW")],
)
def test_optimizer_by_name(name, cls):
    assert set(OPTIMIZERS) == {"sgd", "adam", "rmsprop", "nadam", "adamw"}
    model = build_model(n_features=2, optimizer=name, learning_rate=0.02)
    assert type(model.optimizer) is getattr(keras.optimizers, cls)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02, rel=1e-6)


@pytest.mark.parametrize("task", ["regression", "binary"])
def test_no_hidden_layer_is_a_linear_or_logistic_model(task):
    model = build_model(n_hidden=0, n_neurons=50, n_features=4, task=task)
    (output,) = dense_layers(model)
    assert output.kernel.shape == (4, 1)
    assert model.count_params() == 5
    expected = keras.activations.linear if task == "regression" else keras.activations.sigmoid
    assert output.activation is expected


def test_dropout_layer_after_each_hidden_layer():
    model = build_model(n_hidden=2, n_neurons=8, n_features=3, dropout=0.25)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.25, 0.25]
    no_dropout = build_model(n_hidden=2, n_neurons=8, n_features=3)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in no_dropout.layers)


def test_steps_per_execution_is_compiled_in():
    assert build_model(n_features=2, steps_per_execution=16).steps_per_execution == 16


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_seeded_weights_are_identical_for_the_same_seed():
    kwargs = dict(n_hidden=2, n_neurons=4, n_features=4, dropout=0.1, task="multiclass", n_classes=3)
    a, b = _weights(build_model(seed=11, **kwargs)), _weights(build_model(seed=11, **kwargs))
    c = _weights(build_model(seed=12, **kwargs))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    # Each layer has its own seed: the two 4x4 hidden kernels are not initialised identically.
    assert a[0].shape == a[2].shape == (4, 4)
    assert not np.array_equal(a[0], a[2])


def test_unseeded_weights_differ():
    a = _weights(build_model(n_features=4))
    b = _weights(build_model(n_features=4))
    assert not np.array_equal(a[0], b[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_neurons=0), "n_neurons"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-1e-3), "learning_rate"),
        (dict(n_hidden=-1), "n_hidden"),
        (dict(dropout=1.0), "dropout"),
        (dict(optimizer="lbfgs"), "optimizer"),
        (dict(task="ranking"), "task"),
        (dict(task="multiclass", n_classes=None), "n_classes"),
        (dict(task="multiclass", n_classes=1), "n_classes"),
    ],
)
def test_bad_values_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(n_features=3, **kwargs)


def test_fits_leave_no_gradient_function_behind():
    # Keras' one-replica gradient all-reduce registered a tf.custom_gradient per traced training step in
    # TensorFlow's global registry, keeping every fit's graph alive (memory grew with each fit).
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = X.sum(axis=1)
    before = len(registry)
    for optimizer in ("sgd", "adam"):
        history = build_model(n_features=3, optimizer=optimizer, learning_rate=1e-2).fit(X, y, epochs=3, verbose=0)
        assert history.history["loss"][-1] < history.history["loss"][0]
    assert len(registry) == before
