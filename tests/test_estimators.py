"""Behaviour of KerasMLPRegressor / KerasMLPClassifier as scikit-learn estimators.

Small data (diabetes, iris, breast cancer subsets) and few epochs keep every fit to about a second.
"""

import inspect
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import joblib
import keras
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
from scipy.stats import loguniform
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    StratifiedKFold,
    check_cv,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from estimators import KerasMLPClassifier, KerasMLPRegressor

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = [KerasMLPRegressor, KerasMLPClassifier]
# Small, quick and seeded; no validation set unless a test asks for one (it costs a traced function).
FAST = dict(n_hidden=1, n_neurons=16, optimizer="adam", learning_rate=0.02, epochs=10, validation_fraction=None,
            random_state=0)


def regressor(**params):
    return KerasMLPRegressor(**{**FAST, **params})


def classifier(**params):
    return KerasMLPClassifier(**{**FAST, **params})


# ---- data ------------------------------------------------------------------------------------------
def regression_data(n=200):
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    return X[:n], y[:n]


def iris_data():
    """Iris, scaled, in its original class order (50 setosa, 50 versicolor, 50 virginica)."""
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def binary_data(n=200):
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:n], y[:n]


def labels(y, kind):
    """Integer class indices as strings or as non-contiguous integers."""
    if kind == "str":
        return np.array(["alpha", "beta", "gamma"])[y]
    return np.array([-3, 10, 42])[y]


class StepsSpy(keras.callbacks.Callback):
    """Records how many batches an epoch has, and TensorFlow's global seed while training."""

    def on_train_begin(self, logs=None):
        self.steps = self.params["steps"]
        self.tf_seed = _tf_global_seed()


class Boom(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("boom in the middle of fit")


@pytest.fixture(scope="module")
def fitted_regressor():
    X, y = regression_data()
    return regressor().fit(X, y), X


@pytest.fixture(scope="module")
def fitted_classifier():
    X, y = iris_data()
    return classifier().fit(X, labels(y, "str")), X


# ---- parameters ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_hyperparameter_is_an_explicit_init_argument(cls):
    init_args = set(inspect.signature(cls.__init__).parameters) - {"self"}
    params = cls().get_params()
    assert set(params) == init_args
    assert {"n_hidden", "n_neurons", "learning_rate", "optimizer", "epochs", "batch_size", "patience",
            "validation_fraction", "random_state"} <= set(params)
    assert not any("__" in name for name in params)
    assert params["n_hidden"] == 1 and params["optimizer"] == "sgd"


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_set_params_and_clone(cls):
    est = cls(n_hidden=2, random_state=5)
    assert est.set_params(n_hidden=0, learning_rate=0.1) is est
    assert (est.n_hidden, est.learning_rate) == (0, 0.1)
    twin = clone(est)
    assert twin is not est and type(twin) is cls
    assert twin.get_params() == est.get_params()
    with pytest.raises(ValueError):
        est.set_params(n_layers=3)
    assert "n_hidden=0" in repr(est)


def test_grid_search_over_n_hidden_directly_and_with_two_jobs():
    X, y = regression_data(120)
    est = regressor(epochs=5)
    grid = {"n_hidden": [0, 1]}
    search = GridSearchCV(est, grid, cv=2).fit(X, y)
    assert [p["n_hidden"] for p in search.cv_results_["params"]] == [0, 1]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    hidden = [layer for layer in best.model_.layers if layer.name.startswith("hidden")]
    assert len(hidden) == best.n_hidden == search.best_params_["n_hidden"]
    # The same search in two loky worker processes gives the same scores (seeded, reproducible). Workers
    # may run float32 training with other thread counts, so up to float32 rounding, not bit for bit.
    parallel = GridSearchCV(est, grid, cv=2, n_jobs=2, refit=False).fit(X, y)
    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"], rtol=1e-4, atol=1e-5
    )


# ---- tags and cross-validation ------------------------------------------------------------------------
def test_estimator_type_tags():
    assert is_regressor(KerasMLPRegressor()) and not is_classifier(KerasMLPRegressor())
    assert is_classifier(KerasMLPClassifier()) and not is_regressor(KerasMLPClassifier())


def test_cross_val_score_on_the_classifier_is_stratified():
    X, y = iris_data()
    clf = classifier(epochs=20)
    assert isinstance(check_cv(3, y, classifier=is_classifier(clf)), StratifiedKFold)
    # y is ordered by class: with plain KFold each test fold would be a class never seen in training
    # (accuracy 0). Stratified folds hold every class.
    scores = cross_val_score(clf, X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.6, scores


def test_randomized_search_on_the_regressor():
    X, y = regression_data(150)
    est = regressor(epochs=5)
    search = RandomizedSearchCV(
        est, {"n_neurons": [4, 8], "learning_rate": loguniform(1e-3, 3e-2)}, n_iter=2, cv=2, random_state=0,
        refit=False,
    ).fit(X, y)
    assert set(search.best_params_) == {"n_neurons", "learning_rate"}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert all(1e-3 <= p["learning_rate"] <= 3e-2 for p in search.cv_results_["params"])


# ---- classifier -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["str", "int"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_labels_and_probabilities(kind, n_classes):
    X, y = iris_data() if n_classes == 3 else binary_data()
    y_labels = labels(y, kind)
    clf = classifier().fit(X, y_labels)
    expected_classes = np.unique(y_labels)
    assert np.array_equal(clf.classes_, expected_classes) and clf.classes_.dtype == y_labels.dtype
    assert clf.n_classes_ == n_classes
    output = clf.model_.layers[-1]
    assert output.units == (1 if n_classes == 2 else n_classes)

    pred = clf.predict(X)
    assert pred.shape == (len(X),) and pred.dtype == y_labels.dtype
    assert set(np.unique(pred)) <= set(expected_classes)
    assert accuracy_score(y_labels, pred) > 0.8

    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(clf.classes_[proba.argmax(axis=1)], pred)

    one = clf.predict_proba(X[:1])
    assert one.shape == (1, n_classes)
    assert one.sum() == pytest.approx(1.0)
    assert clf.predict(X[:1]).shape == (1,)


# ---- early stopping and validation -------------------------------------------------------------------
def test_validation_fraction_holds_out_data_and_stops_on_a_plateau():
    X, _ = regression_data(200)
    y = np.random.default_rng(0).normal(size=200)  # pure noise: validation loss cannot keep improving
    spy = StepsSpy()
    est = regressor(epochs=60, batch_size=10, patience=2, validation_fraction=0.25)
    est.fit(X, y, callbacks=[spy])
    assert spy.steps == 15  # 150 of the 200 rows train, 50 are held out
    assert est.has_validation_
    val = est.history_["val_loss"]
    assert len(val) == len(est.history_["loss"]) == est.n_epochs_
    assert est.n_epochs_ < 60
    assert est.best_epoch_ == int(np.argmin(val)) + 1
    assert est.best_score_ == pytest.approx(min(val))
    assert est.n_epochs_ == est.best_epoch_ + 2  # stopped exactly `patience` epochs after the best


@pytest.mark.parametrize("patience", [1, 3])
def test_patience_sets_how_long_to_wait(patience):
    X, y = regression_data(100)
    # min_delta so large that no epoch after the first counts as an improvement
    est = regressor(epochs=20, patience=patience, min_delta=1e9)
    est.fit(X, y)
    assert est.n_epochs_ == patience + 1
    assert est.best_epoch_ == 1


@pytest.mark.parametrize("restore", [True, False])
def test_explicit_validation_data_and_restore_best_weights(restore):
    X, y = regression_data(300)
    X_train, y_train, X_valid, y_valid = X[:200], y[:200], X[200:], y[200:]
    spy = StepsSpy()
    est = regressor(epochs=20, patience=3, min_delta=1e9, restore_best_weights=restore)
    est.fit(X_train, y_train, validation_data=(X_valid, y_valid), callbacks=[spy])
    assert spy.steps == 7  # all 200 rows train (200 / 32): validation_fraction is not used
    assert est.has_validation_ and est.n_epochs_ == 4 and est.best_epoch_ == 1
    val = est.history_["val_loss"]
    mse = float(np.mean((est.predict(X_valid) - y_valid) ** 2))
    # The validation loss Keras reported is the MSE on (X_valid, y_valid) of the weights kept.
    kept_epoch = est.best_epoch_ if restore else est.n_epochs_
    assert mse == pytest.approx(val[kept_epoch - 1], rel=1e-4)
    assert mse != pytest.approx(val[(est.n_epochs_ if restore else est.best_epoch_) - 1], rel=1e-4)


def test_classifier_validation_data_with_string_labels_is_encoded_like_the_training_labels():
    X, y = iris_data()
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(X))
    train, valid = idx[:100], idx[100:]
    y_str = labels(y, "str")
    clf = classifier(epochs=12)
    clf.fit(X[train], y_str[train], validation_data=(X[valid], y_str[valid]))
    assert clf.has_validation_ and "val_loss" in clf.history_
    # Weights of the best epoch are restored: its val_accuracy is the accuracy of predict on the
    # validation set, which only holds when validation labels are encoded as the training labels.
    val_accuracy = clf.history_["val_accuracy"][clf.best_epoch_ - 1]
    assert accuracy_score(y_str[valid], clf.predict(X[valid])) == pytest.approx(val_accuracy)
    assert val_accuracy > 0.7


def test_no_validation_fraction_means_no_validation_loss():
    X, y = regression_data(100)
    spy = StepsSpy()
    est = regressor(epochs=3)
    est.fit(X, y, callbacks=[spy])
    assert spy.steps == 4  # all 100 rows (100 / 32)
    assert "val_loss" not in est.history_ and not est.has_validation_
    assert est.best_epoch_ == int(np.argmin(est.history_["loss"])) + 1


def test_pipeline_with_scaler_and_validation_fraction():
    X, y = load_diabetes(return_X_y=True)
    X = X[:200] * 100 + 50  # far from standardised: the scaler matters
    y = (y[:200] - 150) / 75
    pipe = make_pipeline(
        StandardScaler(), regressor(validation_fraction=0.2)
    ).fit(X, y)
    est = pipe[-1]
    assert est.has_validation_ and len(est.history_["val_loss"]) == est.n_epochs_
    assert np.isfinite(est.history_["val_loss"]).all()
    pred = pipe.predict(X)
    assert pred.shape == (200,) and np.isfinite(pred).all()
    assert pipe.score(X, y) > 0.2


def test_sample_weight_is_used():
    X, y = regression_data(200)
    corrupt = np.arange(len(y)) % 2 == 0
    y_bad = np.where(corrupt, y + 5.0, y)
    weighted = regressor(epochs=15).fit(X, y_bad, sample_weight=np.where(corrupt, 0.0, 1.0))
    unweighted = regressor(epochs=15).fit(X, y_bad)

    def clean_mse(est):
        return float(np.mean((est.predict(X[~corrupt]) - y[~corrupt]) ** 2))

    assert clean_mse(weighted) < 1.5 < 4.0 < clean_mse(unweighted)


def test_partial_fit_trains_one_more_epoch_each_call():
    X, y = regression_data(100)
    est = KerasMLPRegressor(n_neurons=8, learning_rate=0.05, random_state=0)
    for _ in range(3):
        est.partial_fit(X, y)
    assert est.n_epochs_ == 3 and len(est.history_["loss"]) == 3
    assert est.history_["loss"][-1] < est.history_["loss"][0]


# ---- reproducibility --------------------------------------------------------------------------------
REPRO_SCRIPT = """
import numpy as np
from estimators import KerasMLPRegressor
rng = np.random.default_rng(0)
X = rng.normal(size=(120, 5))
y = X @ rng.normal(size=5) + 0.1 * rng.normal(size=120)
est = KerasMLPRegressor(n_hidden=2, n_neurons=8, dropout=0.2, learning_rate=0.02, epochs=4,
                        validation_fraction=0.2, random_state=3)
pred = est.fit(X, y).predict(X)
"""


def _run_repro_script():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = REPRO_SCRIPT + "print(pred.astype('float64').tobytes().hex())\n"
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def _predictions_from(proc):
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    return np.frombuffer(bytes.fromhex(out.strip().splitlines()[-1]), dtype="float64")


def test_same_random_state_same_predictions_in_one_process_and_across_processes():
    proc = _run_repro_script()  # a fresh Python process, running meanwhile
    namespace = {}
    exec(REPRO_SCRIPT, namespace)
    first = namespace["pred"]
    exec(REPRO_SCRIPT, namespace)
    assert np.array_equal(first, namespace["pred"])  # twice in one process: bit for bit
    # This test process has already fitted other models; the fresh one gets the same predictions, up to
    # float32 rounding (bit-identity across processes depends on thread counts and CPU kernels).
    np.testing.assert_allclose(_predictions_from(proc), first.astype("float64"), rtol=1e-5, atol=1e-6)


def _tf_global_seed():
    return tf.compat.v1.random.get_seed(None)[0]


def _global_state():
    np_state = np.random.get_state()
    return random.getstate(), np_state[0], np_state[1].copy(), np_state[2:], _tf_global_seed()


def _assert_same_state(before, after):
    assert after[0] == before[0]
    assert after[1] == before[1] and np.array_equal(after[2], before[2]) and after[3] == before[3]
    assert after[4] == before[4]


def test_seeded_fit_leaves_no_global_state_behind():
    env_before = os.environ.get("TF_DETERMINISTIC_OPS")
    before = _global_state()
    X, y = regression_data(100)
    spy = StepsSpy()
    regressor(epochs=2).fit(X, y, callbacks=[spy])
    assert spy.tf_seed == FAST["random_state"]  # seeded while fitting ...
    assert os.environ.get("TF_DETERMINISTIC_OPS") == env_before
    _assert_same_state(before, _global_state())  # ... and as before afterwards


def test_seeded_fit_that_raises_leaves_no_global_state_and_no_model():
    before = _global_state()
    X, y = regression_data(100)
    est = regressor(epochs=5)
    with pytest.raises(RuntimeError, match="boom"):
        est.fit(X, y, callbacks=[Boom()])
    _assert_same_state(before, _global_state())
    assert not hasattr(est, "model_") and not hasattr(est, "history_")
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_a_seeded_fit_ignores_and_keeps_the_callers_global_seeds():
    """Seeds set by the caller (tf.data's shuffle would combine TensorFlow's with its own) change nothing
    in a seeded fit, and are the same afterwards; nothing is drawn from Keras's global SeedGenerator."""
    X, y = regression_data(100)
    plain = regressor(epochs=2, dropout=0.2).fit(X, y).predict(X)
    keras.utils.set_random_seed(7)
    expected_draw = np.asarray(keras.random.uniform((4,)))
    keras.utils.set_random_seed(7)
    try:
        before = _global_state()
        again = regressor(epochs=2, dropout=0.2).fit(X, y).predict(X)
        _assert_same_state(before, _global_state())
        np.testing.assert_array_equal(np.asarray(keras.random.uniform((4,))), expected_draw)
    finally:
        tf.random.set_seed(None)
    np.testing.assert_array_equal(again, plain)


def test_different_seeds_differ_and_unseeded_fits_after_a_seeded_fit_differ():
    X, y = regression_data(100)
    seeded = regressor(epochs=2).fit(X, y)
    other_seed = regressor(epochs=2, random_state=1).fit(X, y)
    assert not np.allclose(seeded.predict(X), other_seed.predict(X))
    a = regressor(epochs=2, random_state=None).fit(X, y)
    b = regressor(epochs=2, random_state=None).fit(X, y)
    assert not np.allclose(a.model_.get_weights()[0], b.model_.get_weights()[0])
    assert not np.allclose(a.predict(X), b.predict(X))


def test_steps_per_execution_does_not_change_the_result():
    X, y = regression_data(150)
    a = regressor(epochs=3, steps_per_execution=1).fit(X, y)
    b = regressor(epochs=3, steps_per_execution=64).fit(X, y)
    np.testing.assert_allclose(a.history_["loss"], b.history_["loss"], rtol=1e-5)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-5, atol=1e-6)


# ---- persistence ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["fitted_regressor", "fitted_classifier"])
def test_pickle_and_joblib_round_trips_keep_predictions(fixture, request, tmp_path):
    est, X = request.getfixturevalue(fixture)
    expected = est.predict(X)
    restored = pickle.loads(pickle.dumps(est))
    joblib.dump(est, tmp_path / "est.joblib")
    loaded = joblib.load(tmp_path / "est.joblib")
    for other in (restored, loaded):
        assert type(other) is type(est) and other.get_params() == est.get_params()
        assert np.array_equal(other.predict(X), expected)
        assert other.n_epochs_ == est.n_epochs_ and other.history_ == est.history_
    if is_classifier(est):
        assert np.array_equal(restored.classes_, est.classes_)
        assert np.array_equal(restored.predict_proba(X), est.predict_proba(X))


def test_clone_of_a_fitted_estimator_refits_to_the_same_predictions(fitted_regressor):
    est, X = fitted_regressor
    twin = clone(est)
    assert not hasattr(twin, "model_")
    with pytest.raises(NotFittedError):
        twin.predict(X)
    _, y = regression_data()
    assert np.array_equal(twin.fit(X, y).predict(X), est.predict(X))


# ---- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises_and_leaves_no_model(cls, where, bad):
    X, y = iris_data()
    X, y = X.copy(), y.astype(float)
    (X if where == "X" else y)[3] = bad
    est = cls(epochs=2)
    with pytest.raises(ValueError, match="NaN|infinity"):
        est.fit(X, y)
    assert not hasattr(est, "model_")


def test_failed_refit_does_not_leave_the_old_model_behind(fitted_regressor):
    est, X = fitted_regressor
    est = pickle.loads(pickle.dumps(est))
    X_bad = X.copy()
    X_bad[0, 0] = np.nan
    _, y = regression_data()
    with pytest.raises(ValueError):
        est.fit(X, y, validation_data=(X_bad[:20], y[:20]))  # fails after the model was built
    assert not hasattr(est, "model_") and not hasattr(est, "history_")


@pytest.mark.parametrize("fixture", ["fitted_regressor", "fitted_classifier"])
def test_wrong_number_of_features_at_predict(fixture, request):
    est, X = request.getfixturevalue(fixture)
    name = type(est).__name__
    with pytest.raises(ValueError, match=f"X has 3 features, but {name} is expecting {X.shape[1]} features"):
        est.predict(X[:, :3])
    if is_classifier(est):
        with pytest.raises(ValueError, match="3 features"):
            est.predict_proba(X[:, :3])


def test_sparse_input_is_refused_with_a_type_error(fitted_regressor):
    est, X = fitted_regressor
    _, y = regression_data()
    with pytest.raises(TypeError, match="sparse"):
        KerasMLPRegressor(epochs=1).fit(sp.csr_matrix(X), y)
    with pytest.raises(TypeError, match="sparse"):
        KerasMLPRegressor(epochs=1).fit(X, y, validation_data=(sp.csr_matrix(X), y))
    with pytest.raises(TypeError, match="sparse"):
        est.predict(sp.csr_matrix(X))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_predict_before_fit_raises_not_fitted(cls):
    X, _ = iris_data()
    with pytest.raises(NotFittedError):
        cls().predict(X)
    if cls is KerasMLPClassifier:
        with pytest.raises(NotFittedError):
            cls().predict_proba(X)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize(
    ("param", "value"),
    [("n_neurons", 0), ("learning_rate", 0.0), ("learning_rate", -0.01), ("n_hidden", -1),
     ("dropout", 1.0), ("validation_fraction", 1.5), ("optimizer", "lbfgs"), ("epochs", 0)],
)
def test_bad_hyperparameters_raise_at_fit_naming_the_parameter(cls, param, value):
    X, y = iris_data()
    est = cls(**{param: value})  # accepted at construction, as scikit-learn requires
    with pytest.raises(ValueError, match=param):
        est.fit(X, y)
    assert not hasattr(est, "model_")


# ---- divergence --------------------------------------------------------------------------------------
def test_nan_loss_stops_the_fit_promptly():
    X, y = load_diabetes(return_X_y=True)  # unscaled targets (25 to 346)
    est = KerasMLPRegressor(learning_rate=1e6, epochs=100, random_state=0).fit(X, y)
    assert est.diverged_
    assert est.n_epochs_ <= 2
    assert not np.isfinite(est.history_["loss"][-1])


def test_a_normal_fit_has_not_diverged(fitted_regressor):
    est, _ = fitted_regressor
    assert est.diverged_ is False
    assert np.isfinite(est.history_["loss"]).all() and np.isfinite(est.best_score_)
