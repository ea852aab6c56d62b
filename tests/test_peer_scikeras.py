"""Model functions written for scikeras run unchanged: ``meta`` and ``compile_kwargs`` given as scikeras gives them.

The two functions of ``studies/models/scikeras_mlp.py`` (copied from scikeras' documentation) go through
``KerasModelClassifier`` directly, through ``RandomizedSearchCV`` with their own argument names, and the shipped
study ``studies/scikeras.yaml`` (made tiny) runs with exit 0 and exports a model that predicts raw rows in a
fresh process started in another directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import RandomizedSearchCV

from estimators import KerasModelClassifier, KerasModelRegressor
from estimators.own_model.factory import resolve
from tests.helpers import no_pictures, study_dict
from tests.test_own_model_export import _fresh
from tuning.report import html as report_html

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = resolve(f"{ROOT / 'studies' / 'models' / 'scikeras_mlp.py'}:get_clf").function.__module__
TRAINING = dict(epochs=2, batch_size=32, early_stopping=False, validation_fraction=0.0, random_state=0)
#: the meta keys scikeras documents for its classifier (BaseWrapper / KerasClassifier attributes)
META_KEYS = {"n_features_in_", "X_dtype_", "X_shape_", "y_dtype_", "y_ndim_", "target_type_", "classes_",
             "n_classes_", "n_outputs_", "n_outputs_expected_", "feature_encoder_", "target_encoder_"}
SEEN: dict[str, dict] = {}


def functions():
    import sys

    return sys.modules[FUNCTIONS]


def recording(meta, compile_kwargs, width=4):
    """A factory that keeps what it was given, then builds and compiles as scikeras' docs say."""
    SEEN["meta"], SEEN["compile_kwargs"] = dict(meta), dict(compile_kwargs)
    model = keras.Sequential([keras.Input(shape=(meta["n_features_in_"],)), keras.layers.Dense(width, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(**compile_kwargs)
    return model


def cancer(n: int = 160) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X[:n].astype("float32"), y[:n]


def digits(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16).astype("float32"), y[:n]


def test_meta_and_compile_kwargs_are_given_not_parameters():
    factory = resolve(functions().get_clf)
    assert factory.required() == ["hidden_layer_sizes", "dropout"]
    assert set(factory.facts) == {"meta"} and set(resolve(functions().get_model).facts) == {"meta", "compile_kwargs"}
    params = KerasModelClassifier(build=functions().get_model, hidden_layer_dim=8).get_params()
    assert "meta" not in params and "compile_kwargs" not in params and params["hidden_layer_dim"] == 8
    with pytest.raises(ValueError, match="meta"):  # given from the data: not set by the user
        KerasModelClassifier(build=functions().get_clf, meta={}, hidden_layer_sizes=(4,), dropout=0.0).fit(*cancer())


def test_get_clf_as_scikeras_docs_use_it():
    X, y = cancer()
    clf = KerasModelClassifier(build=functions().get_clf, loss="binary_crossentropy", hidden_layer_sizes=(16, 8),
                               dropout=0.5, **TRAINING).fit(X, y)
    dense = [layer.units for layer in clf.model_.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [16, 8, 1] and clf.model_.loss == "binary_crossentropy"
    assert clf.predict(X[:5]).shape == (5,) and set(clf.predict(X)) <= {0, 1}
    assert clf.predict_proba(X[:5]).shape == (5, 2)


def test_get_model_compiles_itself_from_compile_kwargs():
    X, y = digits()
    clf = KerasModelClassifier(build=functions().get_model, hidden_layer_dim=12, optimizer="sgd",
                               learning_rate=0.0375, **TRAINING).fit(X, y)
    assert isinstance(clf.model_.optimizer, keras.optimizers.SGD)  # the estimator's optimizer and rate
    assert float(keras.ops.convert_to_numpy(clf.model_.optimizer.learning_rate)) == pytest.approx(0.0375)
    assert clf.model_.loss == "sparse_categorical_crossentropy"
    assert clf.model_.layers[-2].units == 10 and clf.model_.layers[2].units == 12  # n_classes_, hidden_layer_dim
    assert clf.predict_proba(X[:3]).shape == (3, 10)


def test_meta_holds_scikeras_keys_and_compile_kwargs_the_estimators_settings():
    X, y = cancer()
    KerasModelRegressor(build=recording, width=3, learning_rate=0.0123, loss="mae", **TRAINING).fit(X, y * 2.5)
    meta, kwargs = SEEN["meta"], SEEN["compile_kwargs"]
    assert {"n_features_in_", "X_dtype_", "X_shape_", "y_dtype_", "target_type_", "n_outputs_expected_"} <= set(meta)
    assert meta["n_features_in_"] == 30 and tuple(meta["X_shape_"]) == X.shape
    assert kwargs["loss"] == "mae" and isinstance(kwargs["optimizer"], keras.optimizers.Optimizer)
    assert float(keras.ops.convert_to_numpy(kwargs["optimizer"].learning_rate)) == pytest.approx(0.0123)
    clf = KerasModelClassifier(build=functions().get_clf, hidden_layer_sizes=(4,), dropout=0.0, **TRAINING)
    clf.fit(X, y)
    assert META_KEYS <= set(clf.__dict__)  # what meta was built from, as scikeras builds it


def test_randomized_search_tunes_their_arguments_by_their_own_names():
    X, y = cancer(120)
    search = RandomizedSearchCV(
        KerasModelClassifier(build=functions().get_clf, hidden_layer_sizes=(8,), dropout=0.1, **TRAINING),
        {"hidden_layer_sizes": [(3,), (5, 4)], "dropout": [0.0, 0.25]}, n_iter=2, cv=2, random_state=0,
    ).fit(X, y)
    assert [set(p) for p in search.cv_results_["params"]] == [{"hidden_layer_sizes", "dropout"}] * 2
    best = search.best_estimator_
    dense = [layer.units for layer in best.model_.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [*search.best_params_["hidden_layer_sizes"], 1]
    Xd, yd = digits(200)
    search = RandomizedSearchCV(KerasModelClassifier(build=functions().get_model, hidden_layer_dim=4, **TRAINING),
                                {"hidden_layer_dim": [6, 9]}, n_iter=2, cv=2, random_state=0).fit(Xd, yd)
    assert search.best_estimator_.model_.layers[2].units == search.best_params_["hidden_layer_dim"]


def test_the_shipped_study_runs_and_its_export_predicts_raw_rows_elsewhere(tmp_path, monkeypatch, capsys):
    from tuning.cli.run import main
    from tuning.export import load_model

    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # tests/test_serving.py
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)
    data = yaml.safe_load((ROOT / "studies" / "scikeras.yaml").read_text())
    tiny = study_dict(tmp_path)
    data.update(mlflow=tiny["mlflow"], export=tiny["export"])
    data["model"]["build"] = str(ROOT / "studies" / "models" / "scikeras_mlp.py") + ":get_clf"
    data["search"].update(n_trials=2)
    data["training"].update(epochs=2)
    path = tmp_path / "scikeras.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main([str(path), "--quiet"]) == 0, capsys.readouterr().err[-3000:]

    out = tmp_path / "out"
    assert json.loads((out / "code.json").read_text())["modules"][0]["function"] == "get_clf"
    rows = load_breast_cancer(as_frame=True).data.head(6)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    expected = load_model(out).predict_proba(rows)[:, 1]
    script = ("import sys, json, pandas as pd; from tuning.export import load_model; "
              "m = load_model(sys.argv[1]); print(json.dumps(m.predict_proba(pd.read_csv(sys.argv[2]))[:, 1].tolist()))")
    done = _fresh({"tmp": tmp_path, "tracking_uri": tiny["mlflow"]["tracking_uri"]}, "-c", script, str(out),
                  str(tmp_path / "rows.csv"))
    np.testing.assert_allclose(json.loads(done.stdout.strip().splitlines()[-1]), expected, rtol=1e-6)
