"""Prediction after a float32 fit: any numeric input, and a row's output does not depend on its batch."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.preprocessing import StandardScaler

from estimators import KerasMLPClassifier, KerasMLPRegressor

FAST = dict(n_hidden=2, n_neurons=32, dropout=0.1, optimizer="adam", learning_rate=0.02, epochs=5,
            validation_fraction=None, random_state=0)


def _float32(X):
    return StandardScaler().fit_transform(X).astype("float32")


@pytest.fixture(scope="module")
def regressor():
    X, y = load_diabetes(return_X_y=True)
    X = _float32(X)
    return KerasMLPRegressor(**FAST).fit(X, ((y - y.mean()) / y.std()).astype("float32")), X


@pytest.fixture(scope="module")
def classifier():
    X, y = load_iris(return_X_y=True)
    X = _float32(X)
    return KerasMLPClassifier(**FAST).fit(X, y), X


def _predict(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


@pytest.mark.parametrize("fixture", ["regressor", "classifier"])
def test_float64_int_and_dataframe_input_after_a_float32_fit(fixture, request):
    est, X = request.getfixturevalue(fixture)
    assert est.X_dtype_ == np.float32
    expected = _predict(est, X)
    np.testing.assert_allclose(_predict(est, X.astype("float64")), expected, rtol=1e-5, atol=1e-6)
    frame = pd.DataFrame(X.astype("float64"), columns=[f"f{i}" for i in range(X.shape[1])])
    frame["f0"] = frame["f0"].astype("float32")  # mixed numeric column dtypes
    np.testing.assert_allclose(_predict(est, frame), expected, rtol=1e-5, atol=1e-6)
    X_int = np.rint(X * 3).astype("int64")
    np.testing.assert_allclose(_predict(est, X_int), _predict(est, X_int.astype("float32")), rtol=1e-5, atol=1e-6)
    if hasattr(est, "predict_proba"):
        assert np.array_equal(est.predict(X.astype("float64")), est.predict(X))


@pytest.mark.parametrize("fixture", ["regressor", "classifier"])
def test_predictions_match_the_fitted_keras_model(fixture, request):
    """The float64 scoring is the fitted model itself (dropout off), not an approximation of it."""
    est, X = request.getfixturevalue(fixture)
    keras_out = np.asarray(est.model_.predict_on_batch(X), dtype="float64")
    raw = est._network_outputs(X)
    assert raw.dtype == np.float64
    np.testing.assert_allclose(raw, keras_out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fixture", ["regressor", "classifier"])
def test_a_row_scores_the_same_alone_and_anywhere_in_any_batch(fixture, request):
    est, X = request.getfixturevalue(fixture)
    batch = _predict(est, X)
    rows = range(0, len(X), max(len(X) // 12, 1))
    alone = np.stack([_predict(est, X[i : i + 1])[0] for i in rows])  # several calls: eager, then traced
    np.testing.assert_allclose(alone, batch[list(rows)], rtol=1e-9, atol=1e-12)
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(_predict(est, X[order]), batch[order], rtol=1e-9, atol=1e-12)
    for size in (2, 7, 19, 33):  # row 0 at the end of batches that do not fill a kernel tile
        np.testing.assert_allclose(_predict(est, X[size - 1 :: -1][:size])[-1], batch[0], rtol=1e-9, atol=1e-12)


def test_new_weights_are_used_at_the_next_predict(regressor):
    est, X = regressor
    est = KerasMLPRegressor(**FAST).fit(X, np.zeros(len(X), dtype="float32") + 0.5)
    before = est.predict(X[:50])
    est.model_.set_weights([w * 0.5 for w in est.model_.get_weights()])
    after = est.predict(X[:50])
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, est.model_.predict_on_batch(X[:50]).ravel(), rtol=1e-5, atol=1e-6)


def test_non_numeric_columns_are_refused_with_a_clear_message(regressor):
    est, X = regressor
    frame = pd.DataFrame(X.astype("float64"))
    frame[0] = "abc"
    with pytest.raises(ValueError, match="KerasMLPRegressor needs numeric features"):
        est.predict(frame)


# ---- the NumPy forward pass, against Keras in float64, for every activation and layer type it claims -----


def _activation_layers(name):
    import keras

    return [keras.layers.Dense(6, activation=name), keras.layers.Dense(3, activation=name)]


def _example_layers():
    """For each layer type of the NumPy pass's table, layers of a small network that has one (a type added to
    the table fails its test below until it has an example here)."""
    import keras

    from estimators.common.batch_ensemble import BatchEnsembleDense, MemberMean
    from estimators.common.embeddings import FeatureScale, PeriodicEmbedding

    return {
        keras.layers.InputLayer: [keras.layers.Dense(3, activation="tanh")],  # a functional model lists its input
        keras.layers.Dense: [keras.layers.Dense(5, activation="relu"), keras.layers.Dense(2, use_bias=False)],
        keras.layers.Dropout: [keras.layers.Dense(5, activation="elu"), keras.layers.Dropout(0.5),
                               keras.layers.Dense(1)],
        PeriodicEmbedding: [PeriodicEmbedding(3, 0.5, 2, seed=0), keras.layers.Dense(2, activation="softmax")],
        FeatureScale: [FeatureScale(), PeriodicEmbedding(3, 0.5, 2, seed=0), keras.layers.Dense(1)],
        BatchEnsembleDense: [BatchEnsembleDense(5, 3, activation="relu", random_signs=True, seed=0),
                             BatchEnsembleDense(2, 3)],
        MemberMean: [BatchEnsembleDense(5, 3, activation="tanh"), keras.layers.Dropout(0.5),
                     BatchEnsembleDense(3, 3, activation="softmax"), MemberMean()],
    }


def _float64_network(layers, seed=0):
    """A functional float64 Keras model of ``layers`` on 4 inputs, with random weights (biases too)."""
    import keras

    inputs = keras.Input(shape=(4,), dtype="float64")
    outputs = inputs
    for layer in layers:
        outputs = type(layer).from_config({**layer.get_config(), "dtype": "float64"})(outputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.8, size=w.shape) for w in model.get_weights()])
    return model


# Where Keras itself is off in float64, with the reason; everything else must agree to float64 rounding.
KERAS_FLOAT64_ERROR = {
    # tf.nn.gelu computes erfc(-x * c) with c = 1/sqrt(2) cast from a float32 constant (relative error
    # ~1e-8); the NumPy pass computes the exact 0.5 x (1 + erf(x / sqrt(2))).
    "gelu": 1e-7,
}


def _tolerance(name=None):
    error = KERAS_FLOAT64_ERROR.get(name)
    return {"rtol": error, "atol": error} if error else {"rtol": 1e-12, "atol": 1e-13}


def _assert_numpy_pass_is_keras(model, activation=None):
    from estimators.common.inference import numpy_layers

    steps = numpy_layers(model)
    assert steps is not None
    X = np.random.default_rng(1).normal(scale=2.0, size=(64, 4))
    ours = X
    for step in steps:
        ours = step(ours)
    keras_out = np.asarray(model(X, training=False))
    assert ours.dtype == keras_out.dtype == np.float64
    np.testing.assert_allclose(ours, keras_out, **_tolerance(activation))


def _layer_types():
    from estimators.common.inference import numpy_layer_table

    return list(numpy_layer_table())


def _activations():
    from estimators.common.inference import ACTIVATIONS

    return sorted(ACTIVATIONS)


@pytest.mark.parametrize("name", _activations())
def test_each_numpy_activation_is_the_keras_activation_in_float64(name):
    import keras

    from estimators.common.inference import ACTIVATIONS

    x = np.linspace(-30.0, 30.0, 603).reshape(-1, 3)  # both signs, small values and saturation
    keras_out = np.asarray(keras.activations.get(name)(keras.ops.convert_to_tensor(x, dtype="float64")))
    np.testing.assert_allclose(ACTIVATIONS[name](x), keras_out, **_tolerance(name))


@pytest.mark.parametrize("name", _activations())
def test_the_numpy_pass_of_dense_layers_is_keras_in_float64_for_each_activation(name):
    _assert_numpy_pass_is_keras(_float64_network(_activation_layers(name)), name)


@pytest.mark.parametrize("layer_type", _layer_types(), ids=lambda t: t.__name__)
def test_the_numpy_pass_is_keras_in_float64_for_each_layer_type(layer_type):
    examples = _example_layers()
    assert layer_type in examples, f"{layer_type.__name__} is in the NumPy pass's table: give it an example network"
    model = _float64_network(examples[layer_type])
    assert any(type(layer) is layer_type for layer in model.layers)
    _assert_numpy_pass_is_keras(model)


def test_layers_and_activations_outside_the_tables_have_no_numpy_pass():
    import keras

    from estimators.common.inference import numpy_layers

    assert numpy_layers(_float64_network([keras.layers.Dense(3, activation="hard_sigmoid")])) is None
    assert numpy_layers(_float64_network([keras.layers.Dense(3), keras.layers.LayerNormalization()])) is None


def test_a_network_the_numpy_pass_does_not_know_uses_the_keras_float64_copy(regressor):
    """An activation outside the NumPy table (here hard_sigmoid): the float64 Keras copy, still batch-invariant."""
    from estimators.common.inference import numpy_layers

    est, X = regressor
    odd = KerasMLPRegressor(**{**FAST, "activation": "hard_sigmoid", "epochs": 2}).fit(X, est.predict(X).astype("float32"))
    assert numpy_layers(odd.model_) is None
    batch = odd.predict(X[:33])
    alone = np.array([odd.predict(X[i : i + 1])[0] for i in (0, 16, 32)])
    np.testing.assert_allclose(alone, batch[[0, 16, 32]], rtol=1e-9, atol=1e-12)
