"""The quality knobs on tiny data: periodic embeddings, learning-rate schedules, ensembles of the best
trials (greedy selection and top-k), down to the exported ensemble predicting on raw rows read from a file,
in a fresh process and through the MLflow model."""

from __future__ import annotations

import json
import math
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import VotingClassifier, VotingRegressor

from estimators import KerasMLPClassifier, KerasMLPRegressor, build_model
from estimators.common.embeddings import PeriodicEmbedding
from estimators.common.ensemble import AveragingClassifier, AveragingRegressor, greedy_selection
from tests import warm_python
from tests.helpers import run_study_without_model_logging, tracking_uri, write_study
from tests.resume_helpers import without_charts
from tuning.export.files import load_model

FAST = {"epochs": 3, "batch_size": 32, "optimizer": "adam", "random_state": 0}
EMBED = {"numeric_embedding": "periodic", "n_frequencies": 4, "frequency_scale": 0.3, "embedding_dim": 3}


def regression_data(n=240, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.normal(size=n)


# ---- periodic embeddings ---------------------------------------------------------------------------


def test_build_model_puts_a_periodic_embedding_first_with_the_asked_shapes():
    model = build_model(2, 8, n_features=5, optimizer="adam", seed=0, **EMBED)
    embedding = model.layers[0]
    assert isinstance(embedding, PeriodicEmbedding)
    assert [tuple(w.shape) for w in embedding.get_weights()] == [(5, 4), (5, 8, 3), (5, 3)]
    assert model.layers[1].get_weights()[0].shape == (5 * 3, 8)  # the first hidden layer sees 5 x 3 units
    assert model.output_shape == (None, 1)
    plain = build_model(2, 8, n_features=5, seed=0)
    assert not any(isinstance(layer, PeriodicEmbedding) for layer in plain.layers)


def test_initial_frequencies_follow_the_scale():
    small = build_model(1, 4, n_features=50, seed=0, numeric_embedding="periodic", n_frequencies=40,
                        frequency_scale=0.01).layers[0].get_weights()[0]
    large = build_model(1, 4, n_features=50, seed=0, numeric_embedding="periodic", n_frequencies=40,
                        frequency_scale=1.0).layers[0].get_weights()[0]
    assert small.std() == pytest.approx(0.01, rel=0.1) and large.std() == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("bad", [{"numeric_embedding": "fourier"}, {"n_frequencies": 0},
                                 {"frequency_scale": 0.0}, {"embedding_dim": -1}])
def test_bad_embedding_settings_are_refused_by_name(bad):
    X, y = regression_data(40)
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        KerasMLPRegressor(**FAST, **{**EMBED, **bad}).fit(X, y)


def test_embedded_regressor_is_seeded_batch_invariant_and_pickles():
    X, y = regression_data()
    first = KerasMLPRegressor(n_hidden=2, n_neurons=16, **FAST, **EMBED).fit(X, y)
    again = KerasMLPRegressor(n_hidden=2, n_neurons=16, **FAST, **EMBED).fit(X, y)
    pred = first.predict(X)
    assert pred.shape == (len(X),)
    np.testing.assert_array_equal(again.predict(X), pred)  # same seed, same model
    alone = np.array([first.predict(X[i : i + 1])[0] for i in range(7)])
    np.testing.assert_allclose(alone, pred[:7], rtol=1e-9)  # a row scores the same alone and in a batch
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(first)).predict(X), pred)


def test_numpy_forward_pass_of_the_embedding_equals_keras_in_float64():
    from estimators.common.inference import float64_twin, numpy_layers

    X, y = regression_data()
    est = KerasMLPRegressor(n_hidden=1, n_neurons=8, **FAST, **EMBED).fit(X, y)
    steps = numpy_layers(est.model_)
    assert steps is not None  # the embedding has a NumPy step: no Keras copy per predict
    ours = X
    for step in steps:
        ours = step(ours)
    keras_float64 = np.asarray(float64_twin(est.model_)(X, training=False))
    np.testing.assert_allclose(ours, keras_float64, rtol=1e-12, atol=1e-12)


def test_embedded_classifier_predicts_probabilities():
    X, y = regression_data()
    labels = np.where(y > np.median(y), "high", "low")
    clf = KerasMLPClassifier(n_hidden=1, n_neurons=8, **FAST, **EMBED).fit(X, labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= {"high", "low"}


# ---- learning-rate schedules -------------------------------------------------------------------------


def test_cosine_schedule_follows_the_half_cosine():
    X, y = regression_data(120)
    est = KerasMLPRegressor(n_hidden=1, n_neurons=4, learning_rate=0.01, lr_schedule="cosine",
                            early_stopping=False, **{**FAST, "epochs": 4}).fit(X, y)
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(est.history_["learning_rate"], expected, rtol=1e-6)


def test_plateau_schedule_only_halves_the_rate():
    X, y = regression_data(120)
    est = KerasMLPRegressor(n_hidden=1, n_neurons=4, learning_rate=0.3, lr_schedule="plateau", patience=2,
                            early_stopping=False, **{**FAST, "epochs": 8}).fit(X, y)
    rates = np.asarray(est.history_["learning_rate"])
    assert len(rates) == 8 and rates[0] == pytest.approx(0.3)
    assert np.all(np.diff(rates) <= 0) and rates[-1] < rates[0]  # it did halve (a constant rate passes the rest)
    halvings = np.log2(0.3 / rates)
    np.testing.assert_allclose(halvings, np.round(halvings), atol=1e-5)


def test_constant_schedule_leaves_no_learning_rate_curve_and_bad_names_are_refused():
    X, y = regression_data(60)
    assert "learning_rate" not in KerasMLPRegressor(**FAST).fit(X, y).history_
    with pytest.raises(ValueError, match="lr_schedule"):
        KerasMLPRegressor(lr_schedule="linear", **FAST).fit(X, y)


# ---- ensembles ---------------------------------------------------------------------------------------


def test_greedy_selection_combines_complementary_models_and_drops_useless_ones():
    y = np.zeros(10)
    up, down, far = np.ones(10), -np.ones(10), np.full(10, 5.0)
    weights = greedy_selection([up, down, far], lambda p: float(np.mean((p - y) ** 2)), size=10)
    np.testing.assert_allclose(weights, [0.5, 0.5, 0.0])
    single = greedy_selection([far, up], lambda p: float(np.mean((p - y) ** 2)), size=5)
    np.testing.assert_allclose(single, [0.0, 1.0])
    with pytest.raises(ValueError):
        greedy_selection([], lambda p: 0.0, size=3)


def test_averaging_regressor_is_the_weighted_mean_of_frozen_members_and_a_plain_estimator(tmp_path):
    X, y = regression_data()
    a = KerasMLPRegressor(n_hidden=1, n_neurons=8, **FAST).fit(X, y)
    b = KerasMLPRegressor(n_hidden=2, n_neurons=8, **{**FAST, "random_state": 1}).fit(X, y)
    ensemble = AveragingRegressor.from_fitted([a, b], [3, 1])
    assert isinstance(ensemble, VotingRegressor)
    assert [member.estimator for member in ensemble.estimators_] == [a, b]
    pred = ensemble.predict(X)
    assert pred.dtype == np.float64 and pred.shape == (len(X),)
    np.testing.assert_allclose(pred, 0.75 * a.predict(X) + 0.25 * b.predict(X), rtol=1e-12)
    alone = np.array([ensemble.predict(X[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(alone, pred[:5], rtol=1e-9)  # a row scores the same alone and in a batch
    assert ensemble.n_features_in_ == 4
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ensemble)).predict(X), pred)
    joblib.dump(ensemble, tmp_path / "ensemble.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "ensemble.joblib").predict(X), pred)
    # The members are frozen: fitting a clone of the ensemble (on other targets) trains nothing.
    np.testing.assert_array_equal(clone(ensemble).fit(X, y + 100.0).predict(X), pred)
    # Built from unfitted members, fit trains clones of them: same seeds, same models.
    fresh = AveragingRegressor([("a", clone(a)), ("b", clone(b))], weights=[3, 1]).fit(X, y)
    np.testing.assert_allclose(fresh.predict(X), pred, rtol=1e-6)
    only_a = AveragingRegressor.from_fitted([a, b], [2, 0])  # a member of weight 0 is dropped
    assert len(only_a.estimators_) == 1 and only_a.weights == [1.0]
    np.testing.assert_array_equal(only_a.predict(X), a.predict(X))
    for bad in ([0, 0], [1, -1], [1, np.nan], [1]):
        with pytest.raises(ValueError, match="weight"):
            AveragingRegressor.from_fitted([a, b], bad)


def test_averaging_classifier_averages_probabilities():
    X, y = regression_data()
    labels = np.where(y > np.median(y), "high", "low")
    a = KerasMLPClassifier(n_hidden=1, n_neurons=8, **FAST).fit(X, labels)
    b = KerasMLPClassifier(n_hidden=1, n_neurons=8, **{**FAST, "random_state": 1}).fit(X, labels)
    ensemble = AveragingClassifier.from_fitted([a, b])
    assert isinstance(ensemble, VotingClassifier) and ensemble.voting == "soft"
    proba = ensemble.predict_proba(X)
    np.testing.assert_allclose(proba, (a.predict_proba(X) + b.predict_proba(X)) / 2, rtol=1e-12)
    assert list(ensemble.classes_) == ["high", "low"]
    np.testing.assert_array_equal(ensemble.predict(X), ensemble.classes_[proba.argmax(axis=1)])
    alone = np.stack([ensemble.predict_proba(X[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(alone, proba[:5], rtol=1e-9)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ensemble)).predict_proba(X), proba)
    weighted = AveragingClassifier.from_fitted([a, b], [1, 3])
    np.testing.assert_allclose(weighted.predict_proba(X), 0.25 * a.predict_proba(X) + 0.75 * b.predict_proba(X),
                               rtol=1e-12)
    other = KerasMLPClassifier(n_hidden=0, **{**FAST, "epochs": 1}).fit(X, np.where(y > 0, "up", "down"))
    with pytest.raises(ValueError, match="same classes_"):
        AveragingClassifier.from_fitted([a, other])


ENSEMBLE_SPACE = {
    "n_hidden": {"type": "int", "low": 1, "high": 2},
    "n_neurons": {"type": "int", "low": 4, "high": 16},
    "learning_rate": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True},
    "frequency_scale": {"type": "float", "low": 0.05, "high": 0.5, "log": True},
}


def test_a_study_exports_a_greedy_ensemble_of_its_best_trials(tmp_path):
    path = write_study(tmp_path, space=ENSEMBLE_SPACE, search={"n_trials": 4},
                       model={"optimizer": "adam", "numeric_embedding": "periodic", "n_frequencies": 4,
                              "embedding_dim": 2, "lr_schedule": "plateau"},
                       export={"ensemble": {"method": "greedy", "size": 6, "candidates": 3}})
    with without_charts():
        result = run_study_without_model_logging(path, tmp_path)
    out = tmp_path / "out"
    info = json.loads((out / "best_params.json").read_text())["ensemble"]
    members = info["members"]
    assert 1 <= len(members) <= 3 and sum(m["weight"] for m in members) == pytest.approx(1.0)
    best_three = sorted((r for r in result.records if r.value is not None), key=lambda r: r.value)[:3]
    assert {m["trial"] for m in members} <= {r.number for r in best_three}
    for i in range(1, len(members) + 1):
        assert (out / f"model_{i}.keras").is_file()
    model = load_model(out)
    assert isinstance(model.named_steps["model"], AveragingRegressor)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid"]["ensemble_mse"] == pytest.approx(info["valid_mse"])
    assert metrics["valid"]["ensemble_mse"] <= metrics["valid"]["mse"] + 1e-9  # greedy starts from the best
    assert result.ensemble == info
    from rich.console import Console

    from tuning.tracking.progress import summary_table

    console = Console(record=True, width=200)
    console.print(summary_table(result))
    text = console.export_text()
    first = members[0]
    assert f"ensemble of trials {first['trial']} ({first['weight']:.2f})" in text
    assert "validation mse (ensemble)" in text


def test_a_classification_study_exports_a_top_k_ensemble(tmp_path):
    path = write_study(tmp_path, dataset={"source": "iris", "test_size": 0.3, "valid_size": 0.3, "seed": 0},
                       search={"n_trials": 3}, export={"ensemble": {"method": "top_k", "size": 2}})
    with without_charts():
        run_study_without_model_logging(path, tmp_path)
    info = json.loads((tmp_path / "out" / "best_params.json").read_text())["ensemble"]
    assert [m["weight"] for m in info["members"]] == [0.5, 0.5]
    model = load_model(tmp_path / "out")
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.drop(columns="target")
    proba = model.predict_proba(frame)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _table(tmp_path):
    """A user's CSV: numbers, an integer column, a text column, a missing value."""
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({
        "rooms": rng.integers(1, 8, n),
        "area": rng.normal(80, 20, n).round(1),
        "city": rng.choice(["Lyon", "Oslo", "Porto"], n),
        "age": rng.uniform(0, 50, n),
    })
    frame["price"] = frame["area"] * 3 + frame["rooms"] * 10 + frame["city"].map({"Lyon": 0, "Oslo": 50, "Porto": 20})
    frame.loc[3, "area"] = np.nan
    path = tmp_path / "homes.csv"
    frame.to_csv(path, index=False)
    return path


_FRESH = """
import json, os, sys
import numpy as np, pandas as pd, mlflow
from mlflow import MlflowClient
from tuning.export.files import load_model
answers = {}
for key, (directory, uri, export, csv) in json.loads(sys.argv[1]).items():
    os.chdir(directory)  # where the study ran: its MLflow artifact store
    rows = pd.read_csv(csv).drop(columns="price").head(6)
    rows.loc[0, "city"] = "never-seen"
    rows.loc[1, "area"] = np.nan
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    parent = client.search_runs([client.get_experiment_by_name("tiny").experiment_id], "tags.`tuning.role` = 'study'")[0]
    pyfunc = mlflow.pyfunc.load_model(parent.data.tags["model.uri"])
    answers[key] = {"pipeline": load_model(export).predict(rows).tolist(),
                    "pyfunc": np.asarray(pyfunc.predict(rows)).ravel().tolist(),
                    "members": parent.data.tags.get("ensemble_members", "")}
print(json.dumps(answers))
"""

TRAIN_ON = ["train", "train+valid"]


@pytest.fixture(scope="module")
def exported_ensembles(tmp_path_factory):
    """A study on a user's CSV per ``export.train_on``, run in this process (MLflow model included), then
    one fresh process predicting raw rows with each export and each MLflow model: {train_on: (study
    directory, CSV, the fresh process's answer)}."""
    from tuning.study import run_study

    studies = {}
    for train_on in TRAIN_ON:
        tmp = tmp_path_factory.mktemp("raw_rows")
        csv = _table(tmp)
        path = write_study(tmp, dataset={"source": "csv", "path": str(csv), "target": "price", "seed": 0},
                           space=ENSEMBLE_SPACE, search={"n_trials": 3},
                           model={"optimizer": "adam", "numeric_embedding": "periodic", "n_frequencies": 4,
                                  "embedding_dim": 2},
                           export={"ensemble": {"size": 4, "candidates": 3}, "train_on": train_on})
        with pytest.MonkeyPatch.context() as patch, without_charts():
            patch.chdir(tmp)  # MLflow's artifact store lands there
            assert run_study(path, quiet=True).best is not None
        studies[train_on] = (str(tmp), tracking_uri(tmp), str(tmp / "out"), str(csv))
    fresh = warm_python.run([sys.executable, "-c", _FRESH, json.dumps(studies)], capture_output=True, text=True,
                            timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    answers = json.loads(fresh.stdout.strip().splitlines()[-1])
    return {key: (Path(directory), Path(csv), answers[key]) for key, (directory, _, _, csv) in studies.items()}


@pytest.mark.parametrize("train_on", TRAIN_ON)
def test_an_exported_ensemble_predicts_raw_rows_in_a_fresh_process_and_through_mlflow(exported_ensembles, train_on):
    tmp_path, csv, answer = exported_ensembles[train_on]
    rows = pd.read_csv(csv).drop(columns="price").head(6)
    rows.loc[0, "city"] = "never-seen"
    rows.loc[1, "area"] = np.nan
    here = load_model(tmp_path / "out").predict(rows)
    assert np.all(np.isfinite(here)) and here.shape == (6,)
    np.testing.assert_allclose(answer["pipeline"], here, rtol=1e-9)
    np.testing.assert_allclose(answer["pyfunc"], here, rtol=1e-9)
    # the parent run names the exported members and their weights
    members = json.loads((tmp_path / "out" / "best_params.json").read_text())["ensemble"]["members"]
    assert answer["members"] == " ".join(f"{m['trial']}:{m['weight']:.3g}" for m in members)
    assert 1 <= len(members) <= 3 and sum(m["weight"] for m in members) == pytest.approx(1.0)
