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
    raw = est._predict_raw(X)
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


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "selu", "gelu", "silu", "sigmoid", "softplus"])
def test_numpy_forward_pass_equals_the_keras_float64_model(activation):
    """build_model's networks are scored by a NumPy pass; it computes what Keras computes in float64."""
    from estimators.inference import float64_twin, numpy_layers

    X, y = load_diabetes(return_X_y=True)
    X = _float32(X)
    est = KerasMLPRegressor(**{**FAST, "activation": activation, "epochs": 2}).fit(X, y.astype("float32") / 100)
    assert numpy_layers(est.model_) is not None
    keras_out = np.asarray(float64_twin(est.model_)(X.astype("float64"), training=False)).ravel()
    np.testing.assert_allclose(est.predict(X), keras_out, rtol=0, atol=1e-7 * np.abs(keras_out).max())


def test_a_network_the_numpy_pass_does_not_know_uses_the_keras_float64_copy(regressor):
    """An activation outside the NumPy table (here hard_sigmoid): the float64 Keras copy, still batch-invariant."""
    from estimators.inference import numpy_layers

    est, X = regressor
    odd = KerasMLPRegressor(**{**FAST, "activation": "hard_sigmoid", "epochs": 2}).fit(X, est.predict(X).astype("float32"))
    assert numpy_layers(odd.model_) is None
    batch = odd.predict(X[:33])
    alone = np.array([odd.predict(X[i : i + 1])[0] for i in (0, 16, 32)])
    np.testing.assert_allclose(alone, batch[[0, 16, 32]], rtol=1e-9, atol=1e-12)
