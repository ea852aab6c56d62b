"""Own models beyond flat tables: ``dataset.shape`` (images, token sequences), ``model.inputs`` (named inputs),
the new facts and float64 prediction of such models.

Config errors and the input-name check run on bundled data; the shipped examples (``studies/imdb_embedding.yaml``,
``studies/mnist_cnn.yaml``, ``studies/housing_wide_deep.yaml``) run end to end on a few rows of the shared data
files (skipped, with the reason, where they are absent), and their exports predict in a fresh process on rows as
the source file gives them.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import in_one_process, no_pictures, study_dict
from tests.test_own_model_study import exit_2, line_of, write, write_factory
from tuning.cli.run import main
from tuning.report import html as report_html

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "studies" / "models"
DATA = Path(os.environ.get("TUNING_SHARED_DATA", ROOT.parent / "shared" / "data"))
TOL = dict(rtol=1e-9, atol=1e-12)
TRAINING = dict(epochs=1, batch_size=16, early_stopping=False, validation_fraction=0.0, random_state=0)


@pytest.fixture(autouse=True)
def _no_pictures(monkeypatch):
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)


# ---- the estimators: nd rows, token facts, named inputs, float64 twins --------------------------------------

def _alone_equals_batch(estimator, X) -> None:
    how = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
    batch = np.asarray(how(X), dtype=np.float64)
    alone = np.concatenate([np.asarray(how(X[i : i + 1]), dtype=np.float64) for i in range(len(X))])
    scale = float(np.max(np.abs(batch))) or 1.0
    np.testing.assert_allclose(alone, batch, rtol=TOL["rtol"], atol=TOL["atol"] * scale)


def test_token_rows_images_and_named_inputs_train_and_predict_the_same_alone_and_in_a_batch():
    """The shipped factories on tiny generated data: a twin in float64 scores each (no float32 fallback)."""
    from sklearn.base import clone

    from estimators import KerasModelClassifier, KerasModelRegressor
    from estimators.common.inference import float64_twin
    from estimators.own_model.factory import resolve

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 40, size=(24, 12)).astype(np.int32)
    text = KerasModelClassifier(build=f"{MODELS / 'text_embedding.py'}:build_model", vocab_size=50, **TRAINING)
    text.fit(tokens, rng.integers(0, 2, 24))
    assert text.model_.layers[0].input_dim == 50 and text.model_.input_shape == (None, 12)  # vocab_size, length
    assert clone(text).get_params()["vocab_size"] == 50
    guessed = clone(text).set_params(vocab_size=None).fit(tokens, rng.integers(0, 2, 24))
    assert guessed.model_.layers[0].input_dim == int(tokens.max()) + 1  # not given: the largest id + 1
    from tests.factories import handson_flatten, token_functional

    int_input = KerasModelClassifier(build=token_functional, vocab_size=50, **TRAINING).fit(tokens, np.arange(24) % 2)

    images = rng.random((24, 28, 28))
    cnn = KerasModelClassifier(build=resolve(f"{MODELS / 'small_cnn.py'}:build_model").function, filters=2,
                               n_neurons=4, **TRAINING).fit(images, np.arange(24) % 3)
    assert cnn.model_.output_shape == (None, 3)
    flatten = KerasModelClassifier(build=handson_flatten, **TRAINING).fit(images, np.arange(24) % 3)

    X = rng.normal(size=(24, 8))
    inputs = {"wide": [0, 1, 2, 3, 4], "deep": [2, 3, 4, 5, 6, 7]}
    wide_deep = KerasModelRegressor(build=f"{MODELS / 'wide_deep_inputs.py'}:build_model", inputs=inputs,
                                    n_hidden=1, n_neurons=4, **TRAINING).fit(X, X[:, 0])
    assert clone(wide_deep).inputs == inputs
    assert {t.name: tuple(t.shape[1:]) for t in wide_deep.model_.inputs} == {"wide": (5,), "deep": (6,)}

    for estimator, rows in ((text, tokens), (int_input, tokens), (cnn, images), (flatten, images), (wide_deep, X)):
        assert float64_twin(estimator.model_) is not None, estimator
        _alone_equals_batch(estimator, rows)


def test_inputs_that_are_not_the_model_input_names_are_refused():
    from estimators import KerasModelRegressor

    X = np.random.default_rng(0).normal(size=(10, 8))
    estimator = KerasModelRegressor(build=f"{MODELS / 'wide_deep_inputs.py'}:build_model",
                                    inputs={"wide": [0], "deep": [1], "extra": [2]}, **TRAINING)
    with pytest.raises(ValueError, match=r"inputs are named \['deep', 'wide'\], but inputs maps \['deep', 'extra', 'wide'\]"):
        estimator.fit(X, X[:, 0])
    with pytest.raises(ValueError, match="inputs must map each Keras input name"):
        KerasModelRegressor(build=f"{MODELS / 'wide_deep_inputs.py'}:build_model", inputs={"wide": []}).fit(X, X[:, 0])


def test_the_shaped_steps_take_rows_as_the_source_gives_them():
    from tuning.data.shaped import PadSequences, ToImages

    pad = PadSequences(max_length=4, vocab_size=10, columns=["token_0", "token_1", "token_2", "token_3"]).fit(None)
    expected = np.array([[1, 5, 2, 0], [3, 4, 5, 6]], dtype=np.int32)  # padded after, 12 -> 2 (unknown), cut
    np.testing.assert_array_equal(pad.transform([[1, 5, 12], [3, 4, 5, 6, 7]]), expected)
    frame = pd.DataFrame({"label": [0, 1], "token_0": [1, 3], "token_1": [5, 4], "token_2": [12, 5],
                          "token_3": [np.nan, 6]})
    np.testing.assert_array_equal(pad.transform(frame), expected)  # by name, NaN is padding
    with pytest.raises(ValueError, match="integers >= 0"):
        pad.transform([[1, -3]])
    images = ToImages(2, 2, channels=True, columns=["pixel_0", "pixel_1", "pixel_2", "pixel_3"]).fit(None)
    flat = np.array([[0.0, 0.25, 0.5, 1.0]])
    assert images.transform(flat).shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(images.transform(pd.DataFrame(flat, columns=images.columns)), images.transform(flat))
    with pytest.raises(ValueError, match="rows of 4 pixels"):
        images.transform(np.zeros((1, 5)))


# ---- the study file: dataset.shape and model.inputs checks ------------------------------------------------

FACTORY = """
def build_model(n_hidden=1, input_shape=None):
    a = keras.Input(shape=(2,), name="left")
    b = keras.Input(shape=(3,), name="right")
    h = b
    for _ in range(n_hidden):
        h = keras.layers.Dense(4, activation="relu")(h)
    return keras.Model(inputs=[a, b], outputs=keras.layers.Dense(1)(keras.layers.Concatenate()([a, h])))
"""
SPACE = {"n_hidden": {"type": "int", "low": 1, "high": 2}}

# name -> (dataset changes, with model.build, model.inputs, key, message)
BAD_SHAPES = {
    "images on a table": ({"shape": "images"}, True, None, "dataset.shape",
                          "'diabetes' rows are tables: shape is only for mnist"),
    "sequences on mnist": ({"source": "mnist", "shape": "sequences"}, True, None, "dataset.shape",
                           "'mnist' takes shape flat or images"),
    "max_length without sequences": ({"source": "imdb", "max_length": 100}, True, None, "dataset.max_length",
                                     "only used with shape: sequences"),
    "channels without images": ({"source": "mnist", "channels": True}, True, None, "dataset.channels",
                                "only used with shape: images"),
    "images for our MLP": ({"source": "mnist", "shape": "images"}, False, None, "dataset.shape",
                           "our MLP takes flat rows"),
    "inputs with images": ({"source": "mnist", "shape": "images"}, True, {"left": [0]}, "model.inputs",
                           "the rows are not a table"),
}


@pytest.mark.parametrize("case", sorted(BAD_SHAPES))
def test_a_shape_that_does_not_fit_exits_2_naming_key_and_line(tmp_path, capsys, case):
    dataset, own, inputs, key, message = BAD_SHAPES[case]
    dataset = {**study_dict(tmp_path)["dataset"], **dataset}
    if dataset["source"] != "diabetes":
        dataset.pop("test_size"), dataset.pop("valid_size")
    if own:
        model = {"build": write_factory(tmp_path, "f_" + case.replace(" ", "_"), FACTORY)}
        if inputs:
            model["inputs"] = inputs
        path = write(tmp_path, model, SPACE, dataset=dataset)
    else:
        data = study_dict(tmp_path, dataset=dataset)
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    err = exit_2(path, capsys)
    assert message in err, err
    assert f"{key} (line {line_of(path, key)})" in err, err


def test_model_inputs_names_that_do_not_match_the_model_exit_2_with_both_lists(tmp_path, capsys):
    build = write_factory(tmp_path, "f_names", FACTORY)
    path = write(tmp_path, {"build": build, "inputs": {"wide": ["age", "sex"], "deep": [2, 3, 4]}}, SPACE,
                 training={"epochs": 1})
    err = exit_2(path, capsys)
    assert "model.inputs names ['deep', 'wide'], but the model's inputs are named ['left', 'right']" in err, err
    assert not (tmp_path / "out" / "optuna.db").exists()  # stopped before the search


def test_model_inputs_naming_no_feature_column_exits_2(tmp_path, capsys):
    build = write_factory(tmp_path, "f_columns", FACTORY)
    path = write(tmp_path, {"build": build, "inputs": {"left": ["age", "sexx"], "right": [2, 3, 4]}}, SPACE)
    err = exit_2(path, capsys)
    assert "model.inputs.left: column 'sexx' is not a feature column" in err, err


def test_model_inputs_select_preprocessed_columns_by_raw_name_or_position(tmp_path, capsys):
    """A study on diabetes with two named inputs (names and 0-based positions) trains and exports a pipeline
    that takes one table of raw rows."""
    from tuning.export import load_model

    build = write_factory(tmp_path, "f_two_inputs", FACTORY)
    path = write(tmp_path, {"build": build, "optimizer": "adam", "inputs": {"left": ["age", 1], "right": [2, 3, 4]}},
                 SPACE, search={"n_trials": 2}, training={"epochs": 1})
    import unittest.mock as mock

    with mock.patch("tuning.export.mlflow_model.log_model", lambda *a, **k: None):
        assert main([str(path), "--quiet"]) == 0, capsys.readouterr().err[-3000:]
    pipeline = load_model(tmp_path / "out")
    assert pipeline.named_steps["model"].inputs == {"left": [0, 1], "right": [2, 3, 4]}
    from sklearn.datasets import load_diabetes

    rows = load_diabetes(as_frame=True).data.iloc[:5]
    batch = pipeline.predict(rows)
    alone = np.concatenate([pipeline.predict(rows.iloc[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(alone, batch, rtol=1e-9, atol=1e-12 * float(np.max(np.abs(batch))))


# ---- the shipped examples, end to end on a few rows, and their exports in a fresh process ------------------

EXAMPLES = {
    # study file -> (shared file it reads, dataset overrides, space overrides)
    "imdb_embedding": ("imdb/imdb_keras_numwords500_nopickle.npz", {"max_rows": 240},
                       {"embedding_dim": {"type": "int", "low": 2, "high": 4}}),
    "mnist_cnn": ("mnist", {"max_rows": 300}, {"filters": {"type": "int", "low": 2, "high": 4}}),
    "housing_wide_deep": ("scikit_learn_data/cal_housing_py3.pkz", {"max_rows": 400}, {}),
}


def _shipped(name: str, tmp_path: Path) -> Path:
    """The shipped study with absolute paths, 2 trials of 2 epochs on a few rows, everything in ``tmp_path``."""
    shared, dataset, space = EXAMPLES[name]
    if not (DATA / shared).exists():
        pytest.skip(f"shared data not found: {DATA / shared} (set TUNING_SHARED_DATA)")
    data = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())
    data["model"]["build"] = str(ROOT / "studies" / data["model"]["build"])
    if "path" in data["dataset"]:
        data["dataset"]["path"] = str(DATA / shared)
    data["dataset"].update(dataset)
    data["space"].update(space)
    base = study_dict(tmp_path)
    data.update(mlflow=base["mlflow"], export=base["export"])
    data["search"].update(n_trials=2)
    data["training"].update(epochs=2)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> dict:
    """Each shipped example run (exit 0; the MLflow model logged), with rows as its source file gives them."""
    from mlflow import MlflowClient

    from tuning.config.schema import load_study
    from tuning.data.sources import load_dataset

    out = {}
    for name in EXAMPLES:
        tmp = tmp_path_factory.mktemp(name)
        shared = DATA / EXAMPLES[name][0]
        if not shared.exists():
            out[name] = f"shared data not found: {shared} (set TUNING_SHARED_DATA)"
            continue
        if name == "housing_wide_deep":
            os.environ.setdefault("SCIKIT_LEARN_DATA", str(shared.parent))
        path = _shipped(name, tmp)
        report_html.write_pictures, saved = no_pictures, report_html.write_pictures
        try:
            code = main([str(path), "--quiet"])
        finally:
            report_html.write_pictures = saved
        assert code == 0, name
        config = load_study(path)
        split = load_dataset(config.dataset)
        uri = config.mlflow.tracking_uri
        client = MlflowClient(uri)
        parent = [r for r in client.search_runs([client.get_experiment_by_name(config.name).experiment_id])
                  if r.data.tags.get("tuning.role") == "study"][0]
        out[name] = {"dir": config.export_dir, "uri": parent.data.tags["model.uri"], "tracking_uri": uri,
                     "tmp": tmp, "rows": _source_rows(name, split, config)}
    return out


def _source_rows(name: str, split, config) -> dict:
    """Rows to predict on, as the source file gives them: for the API, the MLflow model and the CSV command."""
    if name == "imdb_embedding":  # the reviews: index sequences of their own lengths, from the npz
        with np.load(config.dataset.path) as data:
            lengths = data["x_test_lengths"][:6]
            flat = data["x_test_flat"][: int(lengths.sum())]
        reviews = [r.tolist() for r in np.split(flat, np.cumsum(lengths)[:-1])]
        from tuning.data.shaped import pad_sequences

        padded = pad_sequences(reviews, config.dataset.sequence_length)
        frame = pd.DataFrame(padded, columns=split.feature_names)
        return {"api": reviews, "frame": frame}
    frame = split.frame("test").iloc[:6].reset_index(drop=True)  # raw pixels in [0, 1] / raw housing columns
    frame = pd.read_csv(io.StringIO(frame.to_csv(index=False)))  # as read from a file, in each process
    return {"api": frame, "frame": frame}


FRESH = """
import json, sys
import numpy as np, pandas as pd
import mlflow.pyfunc
from tuning.export import load_model
export, uri, api_file, frame_file = sys.argv[1:5]
api = json.load(open(api_file)) if api_file.endswith(".json") else pd.read_csv(api_file)
frame = pd.read_csv(frame_file)
out = {}
pipeline = load_model(export)
how = pipeline.predict_proba if hasattr(pipeline, "predict_proba") else pipeline.predict
rows = (lambda i: api[i : i + 1]) if isinstance(api, list) else (lambda i: api.iloc[i : i + 1])
out["export"] = np.asarray(how(api), dtype=float).tolist()
out["export_alone"] = [np.asarray(how(rows(i)), dtype=float)[0].tolist() for i in range(len(api))]
model = mlflow.pyfunc.load_model(uri)
out["mlflow"] = np.asarray(model.predict(frame), dtype=float).ravel().tolist()
out["mlflow_alone"] = [float(np.asarray(model.predict(frame.iloc[i : i + 1]), dtype=float).ravel()[0])
                       for i in range(len(frame))]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def elsewhere(examples) -> dict:
    """Each example's fresh-process checks, run once for the module: its export and MLflow model loaded and
    predicting (FRESH), and the predict command on a CSV of its table rows. Three processes instead of six:
    the one of the predict command of an example (run first, as it starts its process) also loads the next
    example's models. name -> {"fresh": FRESH's output, "predict": the command's result, "target": CSV}."""
    from tuning.export import load_model

    names = [name for name in sorted(examples) if not isinstance(examples[name], str)]
    checks = {}
    for name in names:
        model, tmp = examples[name], examples[name]["tmp"]
        rows = model["rows"]
        api_file = tmp / ("api.json" if isinstance(rows["api"], list) else "api.csv")
        if isinstance(rows["api"], list):
            api_file.write_text(json.dumps(rows["api"]))
        else:
            rows["api"].to_csv(api_file, index=False)
        rows["frame"].to_csv(tmp / "frame.csv", index=False)
        script = tmp / "fresh.py"
        script.write_text(FRESH)
        proba = hasattr(load_model(model["dir"]), "predict_proba")
        env = {"MLFLOW_TRACKING_URI": model["tracking_uri"]}
        checks[name] = {
            "fresh": ("script", script, [model["dir"], model["uri"], api_file, tmp / "frame.csv"], env),
            "predict": ("module", "tuning.predict", [model["dir"], tmp / "frame.csv", "-o", tmp / "predictions.csv",
                                                     *(["--proba"] if proba else [])], env),
        }
    out = {name: {"target": examples[name]["tmp"] / "predictions.csv"} for name in names}
    for i, name in enumerate(names):
        after = names[(i + 1) % len(names)]
        elsewhere = examples[name]["tmp"] / "elsewhere"
        elsewhere.mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out[name]["predict"], out[after]["fresh"] = in_one_process(
            [checks[name]["predict"], checks[after]["fresh"]], elsewhere, env)
    return out


def _ok(result: dict) -> dict:
    assert result["code"] == 0, f"{result['error'] or ''}{result['stderr']}"
    return result


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_shipped_example_exports_a_model_that_predicts_source_rows_in_a_fresh_process(examples, elsewhere, name):
    model = examples[name]
    if isinstance(model, str):
        pytest.skip(model)
    from tuning.export import load_model

    rows = model["rows"]
    pipeline = load_model(model["dir"])
    how = pipeline.predict_proba if hasattr(pipeline, "predict_proba") else pipeline.predict
    expected = np.asarray(how(rows["api"]), dtype=np.float64)  # in this process
    scale = float(np.max(np.abs(expected)))
    tol = dict(rtol=TOL["rtol"], atol=TOL["atol"] * scale)
    got = json.loads(_ok(elsewhere[name]["fresh"])["stdout"].strip().splitlines()[-1])
    np.testing.assert_allclose(got["export"], expected, **tol)
    np.testing.assert_allclose(got["export_alone"], expected, **tol)
    # the MLflow model predicts labels (classifier) or values, from the padded / flat / raw table of the same rows
    labels = pipeline.predict(rows["api"])
    np.testing.assert_allclose(got["mlflow"], np.asarray(labels, dtype=float).ravel(), **tol)
    np.testing.assert_allclose(got["mlflow_alone"], np.asarray(labels, dtype=float).ravel(), **tol)
    # the predict command on a CSV of the table rows
    _ok(elsewhere[name]["predict"])
    target = elsewhere[name]["target"]
    table = pd.read_csv(target)
    np.testing.assert_allclose(table["prediction"].to_numpy(dtype=float), np.asarray(labels, dtype=float).ravel(), **tol)
    if hasattr(pipeline, "predict_proba"):
        proba = table[[f"proba_{c}" for c in pipeline.classes_]].to_numpy(dtype=float)
        np.testing.assert_allclose(proba, expected, **tol)
