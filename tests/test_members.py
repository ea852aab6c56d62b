"""`members`: an ensemble inside one MLP (TabM's BatchEnsemble layers), on tiny data: the network it builds, the
loss its members train on, the averaged outputs everything else sees, and the fitted estimator through
pickle, clone, joblib, Keras save / load, a fresh process and the study file."""

from __future__ import annotations

import pickle
import sys

import joblib
import keras
import numpy as np
import pytest
from sklearn.base import clone

from estimators import KerasMLPClassifier, KerasMLPRegressor, build_model
from estimators.common.batch_ensemble import BatchEnsembleDense, MemberLoss, MemberMean
from estimators.common.validation import ValidationListener
from tests import warm_python
from tuning.config.schema import CategoricalParam, load_study_dict

FAST = {"epochs": 4, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.01, "random_state": 0}


def regression_data(n=240, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.normal(size=n)


def test_one_member_is_todays_network():
    model = build_model(2, 8, n_features=5, dropout=0.1, seed=0)
    assert [type(layer) for layer in model.layers] == [keras.layers.Dense, keras.layers.Dropout] * 2 + [
        keras.layers.Dense]
    assert model.loss == "mse"


def test_members_share_kernels_and_start_apart_by_random_signs():
    model = build_model(2, 8, n_features=5, members=4, seed=0, dropout=0.1)
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [BatchEnsembleDense, keras.layers.Dropout] * 2 + [BatchEnsembleDense, MemberMean]
    first, second, output = (layer for layer in model.layers if isinstance(layer, BatchEnsembleDense))
    assert [tuple(w.shape) for w in first.get_weights()] == [(5, 8), (4, 5), (4, 8), (4, 8)]  # kernel, r, s, bias
    r = first.get_weights()[1]
    assert set(np.unique(r)) == {-1.0, 1.0}
    assert not all(np.array_equal(r[0], r[i]) for i in range(1, 4))
    np.testing.assert_array_equal(second.get_weights()[1], 1.0)
    np.testing.assert_array_equal(output.get_weights()[2], 1.0)
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_members_train_on_the_mean_of_their_losses_and_predict_their_mean(task):
    n_classes = 3 if task == "multiclass" else None
    model = build_model(1, 8, n_features=4, task=task, n_classes=n_classes, members=3, seed=0, optimizer="adam")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, n_classes or 2, size=16).astype("float32") if task != "regression" else rng.normal(size=16)
    per_member = np.asarray(model(x, training=True))
    assert per_member.shape[:2] == (16, 3)
    mean = np.asarray(model(x, training=False))
    np.testing.assert_allclose(mean, per_member.mean(axis=1), rtol=1e-6)  # probabilities averaged, not logits
    base = keras.losses.get(model.loss.base)
    y = y if task == "multiclass" else y[:, None]
    expected = np.mean([np.mean(np.asarray(base(y, per_member[:, i]))) for i in range(3)])
    loss = float(model.compute_loss(x=x, y=y, y_pred=keras.ops.convert_to_tensor(per_member)))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert float(model.compute_loss(x=x, y=y, y_pred=keras.ops.convert_to_tensor(mean))) == pytest.approx(
        float(np.mean(np.asarray(base(y, mean)))), rel=1e-5)  # validation: the loss of the mean


class _Outputs(ValidationListener):
    def on_epoch_end(self, epoch, logs=None):
        self.last = self.validation.outputs


def test_regressor_with_members_fits_predicts_in_float64_and_pickles(tmp_path):
    X, y = regression_data()
    listener = _Outputs()
    est = KerasMLPRegressor(n_hidden=2, n_neurons=16, members=4, standardize_target=True, early_stopping=False,
                            **FAST).fit(X, y, callbacks=[listener])
    pred = est.predict(X)
    assert pred.shape == (len(X),) and pred.dtype == np.float64
    assert listener.last.shape == (24, 1)  # the validation pass (and a study's epoch scoring) sees the mean
    np.testing.assert_allclose(est.predict(X[-24:]), pred[-24:])
    alone = np.array([est.predict(X[i:i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(alone, pred[:5], rtol=1e-12)  # the float64 NumPy pass: batch-invariant
    keras_out = np.asarray(est.model_(X.astype("float32"), training=False)).ravel()
    np.testing.assert_allclose(est.target_encoder_.inverse_transform(keras_out[:, None]).ravel(), pred,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), pred)
    joblib.dump(est, tmp_path / "est.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "est.joblib").predict(X), pred)
    est.model_.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.loss, MemberLoss) and loaded.loss.base == "mse"
    np.testing.assert_array_equal(np.asarray(loaded(X[:8], training=False)),
                                  np.asarray(est.model_(X[:8], training=False)))
    again = clone(est).fit(X, y)
    np.testing.assert_array_equal(again.predict(X), pred)  # seeded: the same members
    assert clone(est).get_params()["members"] == 4
    one = KerasMLPRegressor(n_hidden=2, n_neurons=16, standardize_target=True, early_stopping=False, **FAST)
    assert not np.allclose(one.fit(X, y).predict(X), pred)


def test_early_stopping_restores_the_best_epoch_of_the_members_mean():
    X, y = regression_data()
    est = KerasMLPRegressor(n_hidden=1, n_neurons=8, members=3, patience=1, **{**FAST, "epochs": 30,
                                                                                "learning_rate": 0.3}).fit(X, y)
    assert est.best_epoch_ == int(np.argmin(est.history_["val_loss"])) + 1
    assert est.n_epochs_ <= 30


def test_classifier_with_members_averages_probabilities_and_exports_to_a_fresh_process(tmp_path):
    X, y = regression_data(300)
    labels = np.where(y > 1.5, "high", np.where(y > 0.5, "mid", "low"))
    est = KerasMLPClassifier(n_hidden=1, n_neurons=16, members=3, **FAST).fit(X, labels)
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert "accuracy" in est.history_ and "val_accuracy" in est.history_
    joblib.dump(est, tmp_path / "est.joblib")
    np.save(tmp_path / "X.npy", X)
    code = ("import joblib, numpy as np, sys; est = joblib.load(sys.argv[1]); "
            "np.save(sys.argv[3], est.predict_proba(np.load(sys.argv[2])))")
    warm_python.run([sys.executable, "-c", code, str(tmp_path / "est.joblib"), str(tmp_path / "X.npy"),
                     str(tmp_path / "out.npy")], check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), proba)


def test_a_binary_classifier_with_members_and_sample_weights():
    X, y = regression_data()
    est = KerasMLPClassifier(n_hidden=1, n_neurons=8, members=2, **FAST).fit(X, y > 1, sample_weight=np.ones(len(X)))
    assert est.predict(X).dtype == bool and est.predict_proba(X).shape == (len(X), 2)


def test_members_is_refused_below_one_and_a_study_may_tune_or_fix_it():
    X, y = regression_data(40)
    with pytest.raises(ValueError, match="members"):
        KerasMLPRegressor(members=0, **FAST).fit(X, y)
    tuned = load_study_dict({"name": "x", "dataset": {"source": "diabetes"},
                             "space": {"members": {"type": "categorical", "choices": [1, 8]}}})
    assert isinstance(tuned.space["members"], CategoricalParam)
    fixed = load_study_dict({"name": "x", "dataset": {"source": "diabetes"}, "model": {"members": 8},
                             "space": {"n_hidden": {"type": "int", "low": 1, "high": 2}}})
    assert fixed.model.fixed_params()["members"] == 8


def test_the_float64_keras_twin_of_a_members_network_is_its_mean():
    from estimators.common.inference import float64_twin

    model = build_model(1, 8, n_features=4, members=3, seed=0, task="multiclass", n_classes=3)
    twin = float64_twin(model)
    assert twin is not None and twin.layers[0].dtype == "float64"
    X = np.random.default_rng(0).normal(size=(10, 4))
    np.testing.assert_allclose(np.asarray(twin(X, training=False)), np.asarray(model(X, training=False)), rtol=1e-5)
