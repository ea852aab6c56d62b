"""Two of RealMLP's levers (Holzmüller et al. 2024), off by default: ``preprocessing.scaling: robust`` (median /
IQR scaling with smooth clipping) and ``model.feature_scaling`` (a trainable scale per feature, first layer):
against a computation by hand, as scikit-learn / Keras pieces (clone, pickle, set_output, save / load), and
in a tiny study whose export predicts raw rows."""

from __future__ import annotations

import json
import pickle
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from estimators import KerasMLPRegressor, build_model
from estimators.common.batch_ensemble import BatchEnsembleDense
from estimators.common.embeddings import FeatureScale, PeriodicEmbedding
from tests import warm_python
from tests.helpers import run_study_without_model_logging, write_study
from tuning.config.schema import PreprocessingConfig, StudyConfigError, load_study_dict
from tuning.data.preprocessing import RobustSmoothClip, build_preprocessor, make_scaler
from tuning.export.files import load_model

FAST = {"epochs": 4, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.01, "random_state": 0}


def columns_with_outliers(n: int = 40, seed: int = 0) -> np.ndarray:
    """An ordinary column with outliers, a constant column, a column whose IQR is 0 but not its range."""
    rng = np.random.default_rng(seed)
    ordinary = rng.normal(10.0, 2.0, size=n)
    ordinary[:3] = [500.0, -300.0, 1e6]
    zero_iqr = np.zeros(n)
    zero_iqr[:2] = [4.0, -2.0]  # quartiles both 0; half the min-max range is 3
    return np.column_stack([ordinary, np.full(n, 7.0), zero_iqr])


def by_hand(train: np.ndarray, X: np.ndarray) -> np.ndarray:
    median = np.median(train, axis=0)
    iqr = np.percentile(train, 75, axis=0) - np.percentile(train, 25, axis=0)
    half_range = (train.max(axis=0) - train.min(axis=0)) / 2
    scale = np.where(iqr != 0, iqr, np.where(half_range != 0, half_range, 1.0))
    z = (X - median) / scale
    return z / np.sqrt(1 + (z / 3) ** 2)


def study_data() -> dict:
    return {"preprocessing": {"scaling": "robust"}, "model": {"optimizer": "adam", "feature_scaling": True}}


# ---- preprocessing.scaling: robust ----------------------------------------------------------------------


def test_robust_scaling_is_median_iqr_with_smooth_clipping_by_hand():
    train = columns_with_outliers()
    scaler = make_scaler("robust").fit(train)
    assert isinstance(scaler, RobustSmoothClip)
    np.testing.assert_allclose(scaler.scale_, [np.subtract(*np.percentile(train[:, 0], [75, 25])), 1.0, 3.0])
    np.testing.assert_allclose(scaler.transform(train), by_hand(train, train), rtol=1e-12, atol=1e-15)
    new = np.array([[10.0, 7.0, 0.0], [-1e9, 8.0, 1.0], [1e9, 0.0, -5.0]])
    np.testing.assert_allclose(scaler.transform(new), by_hand(train, new), rtol=1e-12, atol=1e-15)
    assert (scaler.transform(train)[:, 1] == 0).all()  # the constant column: 0 on the training rows


def test_robust_scaling_is_bounded_monotone_and_near_the_identity_in_the_middle():
    train = columns_with_outliers()
    scaler = RobustSmoothClip().fit(train)
    X = np.column_stack([np.concatenate([[-1e300], np.linspace(-1e6, 1e6, 201), [1e300]])] * 3)
    Z = scaler.transform(X)
    assert np.abs(Z).max() <= 3 and (np.diff(Z, axis=0) >= 0).all()
    np.testing.assert_allclose(Z[[0, -1]], [[-3] * 3, [3] * 3])  # no overflow of (x / 3) ** 2 to 0
    assert np.abs(scaler.transform(train)).max() < 3
    middle = scaler.transform(np.array([[np.median(train[:, 0]) + 0.01 * scaler.scale_[0], 7.0, 0.0]]))
    assert middle[0, 0] == pytest.approx(0.01, rel=1e-4)


def test_robust_scaler_is_a_scikit_learn_transformer():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(RobustSmoothClip())  # scikit-learn's own checks of an estimator
    train = pd.DataFrame(columns_with_outliers(), columns=["a", "b", "c"])
    scaler = RobustSmoothClip(clip=2.0)
    assert clone(scaler).get_params() == {"clip": 2.0, "quantile_range": (25.0, 75.0)}
    out = scaler.set_output(transform="pandas").fit_transform(train)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "b", "c"]
    assert list(scaler.get_feature_names_out()) == ["a", "b", "c"] and np.abs(out.to_numpy()).max() < 2
    again = pickle.loads(pickle.dumps(scaler))
    pd.testing.assert_frame_equal(again.transform(train), out)
    with_nan = train.to_numpy().copy()
    with_nan[0, 0] = np.nan
    assert np.isnan(RobustSmoothClip().fit(with_nan).transform(with_nan)[0, 0])  # missing stays missing


def test_robust_scaling_in_the_preprocessing_pipeline():
    train = pd.DataFrame(columns_with_outliers(), columns=["a", "b", "c"])
    numeric, _ = build_preprocessor(train, PreprocessingConfig(scaling="robust"))
    X = numeric.fit(train).transform(train)
    assert X.dtype == np.float32
    np.testing.assert_allclose(X, by_hand(train.to_numpy(), train.to_numpy()), rtol=1e-6, atol=1e-6)
    mixed = train.assign(city=["paris", "lyon"] * 20)
    pipeline, _ = build_preprocessor(mixed, PreprocessingConfig(scaling="robust"))
    Xm = pickle.loads(pickle.dumps(pipeline.fit(mixed))).transform(mixed)
    np.testing.assert_allclose(Xm[:, :3], X, rtol=1e-6, atol=1e-6)  # the numbers first, then the one-hot columns


def test_the_study_file_takes_robust_and_keeps_standard_by_default():
    base = {"name": "t", "dataset": {"source": "diabetes"}}
    assert load_study_dict(base).preprocessing.scaling == "standard"
    assert load_study_dict({**base, "preprocessing": {"scaling": "robust"}}).preprocessing.scaling == "robust"
    with pytest.raises(StudyConfigError, match="scaling"):
        load_study_dict({**base, "preprocessing": {"scaling": "robustt"}})


# ---- model.feature_scaling ------------------------------------------------------------------------------


def test_feature_scale_comes_first_and_starts_as_the_identity():
    X = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    plain = build_model(2, 8, n_features=5, seed=0)
    scaled = build_model(2, 8, n_features=5, seed=0, feature_scaling=True)
    assert not any(isinstance(layer, FeatureScale) for layer in plain.layers)  # off by default
    assert isinstance(scaled.layers[0], FeatureScale) and len(scaled.layers) == len(plain.layers) + 1
    np.testing.assert_array_equal(scaled.layers[0].get_weights()[0], np.ones(5, dtype="float32"))
    np.testing.assert_array_equal(np.asarray(scaled(X)), np.asarray(plain(X)))  # same seeds: the same network
    both = build_model(1, 8, n_features=5, seed=0, feature_scaling=True, numeric_embedding="periodic",
                       n_frequencies=2, embedding_dim=2, members=3)
    assert [type(layer) for layer in both.layers][:3] == [FeatureScale, PeriodicEmbedding, BatchEnsembleDense]


@pytest.mark.parametrize("extra", [{}, {"members": 3, "numeric_embedding": "periodic", "n_frequencies": 2,
                                        "embedding_dim": 2}], ids=["plain", "members+periodic"])
def test_feature_scales_train_save_load_and_predict_in_float64(tmp_path, extra):
    from estimators.common.inference import float64_twin, numpy_layers

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    est = KerasMLPRegressor(n_hidden=1, n_neurons=8, feature_scaling=True, **FAST, **extra).fit(X, y)
    scale = est.model_.get_layer("feature_scale").get_weights()[0]
    assert scale.shape == (4,) and not np.allclose(scale, 1.0)  # trained
    pred = est.predict(X)
    steps = numpy_layers(est.model_)
    assert steps is not None  # the NumPy float64 pass knows the layer
    out = X
    for step in steps:
        out = step(out)
    np.testing.assert_allclose(out, np.asarray(float64_twin(est.model_)(X, training=False)), rtol=1e-12, atol=1e-12)
    alone = np.array([est.predict(X[i:i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(alone, pred[:5], rtol=1e-12)
    est.model_.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.layers[0], FeatureScale)
    np.testing.assert_array_equal(np.asarray(loaded(X[:8], training=False)),
                                  np.asarray(est.model_(X[:8], training=False)))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), pred)
    assert clone(est).get_params()["feature_scaling"] is True


def test_feature_scaling_in_the_study_file_and_not_stacked():
    base = {"name": "t", "dataset": {"source": "diabetes"}}
    assert load_study_dict(base).model.feature_scaling is None  # the estimator's default: off
    assert load_study_dict({**base, "model": {"feature_scaling": True}}).model.fixed_params() == {
        "feature_scaling": True}
    space = {"feature_scaling": {"type": "categorical", "choices": [False, True]}}
    assert load_study_dict({**base, "space": space}).space["feature_scaling"].choices == [False, True]
    tuned = {**base, "model": {"optimizer": "adam"}, "space": space, "search": {"stack": 2}}
    with pytest.raises(StudyConfigError, match="feature_scaling: false"):  # fixed: tests/test_stacked_study.py
        load_study_dict(tuned)


# ---- both in a study ------------------------------------------------------------------------------------


def test_a_study_with_both_levers_exports_a_model_that_predicts_raw_rows(tmp_path):
    from sklearn.datasets import load_diabetes

    path = write_study(tmp_path, search={"n_trials": 2}, **study_data())
    result = run_study_without_model_logging(path, tmp_path)
    assert any(r.value is not None for r in result.records)
    model = load_model(tmp_path / "out")
    parts = [model, *model.get_params(deep=True).values()]
    assert any(isinstance(p, RobustSmoothClip) for p in parts)
    estimator = next(p for p in parts if isinstance(p, KerasMLPRegressor))
    assert estimator.feature_scaling is True and isinstance(estimator.model_.layers[0], FeatureScale)
    rows = load_diabetes(as_frame=True).data.head(5)
    pred = model.predict(rows)
    assert pred.shape == (5,) and np.isfinite(pred).all()
    far = rows.assign(bmi=rows["bmi"] * 1e6)  # an outlier far outside the training rows: clipped, still finite
    assert np.isfinite(model.predict(far)).all()
    # a new process in another folder reads the rows from their CSV file and predicts the same
    rows.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "elsewhere").mkdir()
    code = ("import sys, json, pandas as pd; from tuning.export.files import load_model; "
            "print(json.dumps(load_model(sys.argv[1]).predict(pd.read_csv(sys.argv[2])).tolist()))")
    done = warm_python.run([sys.executable, "-c", code, str(tmp_path / "out"), str(tmp_path / "rows.csv")],
                           cwd=tmp_path / "elsewhere", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(json.loads(done.stdout.splitlines()[-1]), pred, rtol=1e-12)
