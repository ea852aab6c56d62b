"""An export of a user's own Keras model loads anywhere: the factory's file travels with it.

Small pipelines (a fitted scaler + ``KerasModelRegressor`` with the Hands-On factory, with the Wide & Deep
factory and its custom layer, and an ensemble of both) are exported and logged to MLflow through the tracker,
then loaded in fresh processes started in another directory, where neither factory module is importable, by
``tuning.export.load_model``, ``mlflow.pyfunc.load_model`` and ``python -m tuning.predict``; each predicts
what the fitting process predicted, row by row and in a batch. The checks share six fresh processes (each starts TensorFlow and
MLflow), run once for the module by the ``elsewhere`` fixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests import warm_python
from tests.helpers import log_model_in_a_run, no_pictures, tracking_uri
from tuning.export.files import export_model, make_pipeline
from tuning.export.shipped_code import CODE_DIR, CODE_FILE, code_paths, ship_code
from tuning.report import html as report_html

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "studies" / "models"
N_ROWS = 12
TOL = dict(rtol=1e-9, atol=1e-12)  # as tests/test_predict_input.py: a row scores the same alone and in a batch
TRAINING = dict(epochs=2, batch_size=64, early_stopping=False, validation_fraction=0.0, random_state=0)


def housing_rows(n: int = 240) -> tuple[pd.DataFrame, np.ndarray]:
    """California housing rows when scikit-learn's cache is there, else generated rows with its columns."""
    home = os.environ.get("SCIKIT_LEARN_DATA")
    if home and (Path(home).expanduser() / "cal_housing_py3.pkz").is_file():
        from sklearn.datasets import fetch_california_housing

        X, y = fetch_california_housing(as_frame=True, return_X_y=True)
        return X.iloc[:n].astype("float64"), y.iloc[:n].to_numpy()
    rng = np.random.default_rng(0)
    columns = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]
    X = pd.DataFrame(rng.normal(size=(n, len(columns))) * 3 + 10, columns=columns)
    return X, X["MedInc"].to_numpy() * 0.4 + rng.normal(scale=0.1, size=n)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """Three exported and logged pipelines, the rows to predict on and what this process predicts."""
    from mlflow import MlflowClient
    from sklearn.preprocessing import StandardScaler

    from estimators.common.ensemble import AveragingRegressor
    from estimators.own_model.estimators import KerasModelRegressor
    from estimators.own_model.factory import resolve

    tmp = tmp_path_factory.mktemp("own_model")
    X, y = housing_rows()
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    # build as a file string (as a study gives it) and as the function itself
    handson = KerasModelRegressor(build=f"{MODELS / 'handson.py'}:build_model", **TRAINING).fit(Xs, y)
    wide_deep = KerasModelRegressor(build=resolve(f"{MODELS / 'wide_deep.py'}:build_model").function,
                                    n_hidden=1, n_neurons=8, **TRAINING).fit(Xs, y)
    ensemble = AveragingRegressor.from_fitted([handson, wide_deep], [0.25, 0.75])
    rows = X.iloc[:N_ROWS].reset_index(drop=True)
    rows.to_csv(tmp / "rows.csv", index=False)

    uri = tracking_uri(tmp)
    client = MlflowClient(uri)
    experiment = client.create_experiment("own-model", artifact_location=(tmp / "artifacts").as_uri())
    out = {"tmp": tmp, "rows": rows, "tracking_uri": uri, "models": {}}
    for name, estimator in (("handson", handson), ("wide_deep", wide_deep), ("ensemble", ensemble)):
        pipeline = make_pipeline(scaler, estimator)
        export_model(pipeline, tmp / "exports" / name, {"trial": 0}, {"test": {}})
        out["models"][name] = {
            "dir": tmp / "exports" / name,
            "uri": log_model_in_a_run(uri, experiment, pipeline, X.iloc[:5]),
            "expected": np.asarray(pipeline.predict(rows), dtype=np.float64),
        }
    return out


def _fresh(exported: dict, *args: str) -> subprocess.CompletedProcess:
    """``python *args`` in a new process whose working directory is an empty folder and whose path holds
    the project but not ``studies/models``."""
    elsewhere = exported["tmp"] / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=exported["tracking_uri"])
    done = warm_python.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True,
                           timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# Runs in a fresh process, in another directory: neither factory module may be importable there. It takes the
# steps of the JSON list in argv[1], in order, each one of:
# - ["predict", tracking URI, args, fresh]: ``python -m tuning.predict *args`` (run as that module's __main__,
#   with MLFLOW_TRACKING_URI set); only as the first step, so it starts the process as the command does;
# - ["both", tracking URI, export dir, MLflow model URI, rows CSV, first loader, fresh]: loads the MLflow model
#   (from that tracking store) and the export,
#   in the order given: the first one imports the factory's module itself (MLflow from its code/ on sys.path,
#   load_model from code.json), the second finds it imported.
# ``fresh`` names the factory modules the step must be the first to import: none of them is imported yet when it
# starts. Each step's result (the predictions per loader, the command's exit code, or the error) is one entry
# of the JSON list printed last; a failed step does not stop the next.
ELSEWHERE = """
import importlib.util, json, os, runpy, sys, traceback
assert not any(importlib.util.find_spec(m) for m in ("handson", "wide_deep", "hypermodel")), sys.path


def both(tracking, export, uri, rows, first):
    import numpy as np, pandas as pd
    import mlflow.pyfunc
    from tuning.export import load_model

    mlflow.set_tracking_uri(tracking)

    rows = pd.read_csv(rows).astype("float64")
    out = {}
    loaders = {"mlflow": lambda: mlflow.pyfunc.load_model(uri), "export": lambda: load_model(export)}
    for how in sorted(loaders, key=lambda how: how != first):
        model = loaders[how]()
        pipeline = model if how == "export" else model.get_raw_model()
        pipeline.get_params()  # the factory's parameters: from the unpickled function, not a file path
        batch = np.asarray(model.predict(rows), dtype=np.float64).ravel()
        alone = [float(np.asarray(model.predict(rows.iloc[i : i + 1]), dtype=np.float64).ravel()[0])
                 for i in range(len(rows))]
        out[how] = {"batch": batch.tolist(), "alone": alone}
    return out


def predict(tracking, args):
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    sys.argv = ["tuning.predict", *args]
    try:
        runpy.run_module("tuning.predict", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return {"code": exc.code or 0}
    return {"code": 0}


results = []
for number, (kind, *args) in enumerate(json.loads(sys.argv[1])):
    *args, fresh = args
    try:
        assert kind != "predict" or number == 0, "the predict command starts a process"
        imported = sorted(m for m in fresh if m in sys.modules)
        assert not imported, f"already imported: {imported}"
        results.append(both(*args) if kind == "both" else predict(*args))
    except BaseException:
        results.append({"error": traceback.format_exc()})
print(json.dumps(results))
"""


def _elsewhere(context: dict, steps: list[list]) -> list[dict]:
    """The steps (see ELSEWHERE) in ONE fresh process elsewhere: each step's result."""
    script = context["tmp"] / "elsewhere.py"
    script.write_text(ELSEWHERE)
    done = _fresh(context, str(script), json.dumps(steps))
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == len(steps), done.stdout[-3000:]
    return results


def _both(context: dict, model: dict, first: str, fresh: list[str]) -> list:
    """A "both" step: ``model`` (its export dir and MLflow URI) on the rows of ``context`` (a fixture's)."""
    return ["both", context["tracking_uri"], str(model["dir"]), model["uri"], str(context["tmp"] / "rows.csv"),
            first, fresh]


def _predict(context: dict, where: str, target: Path, fresh: list[str]) -> list:
    """A "predict" step: ``where`` (an export dir or MLflow model URI) on the rows of ``context``."""
    return ["predict", context["tracking_uri"], [where, str(context["tmp"] / "rows.csv"), "-o", str(target)], fresh]


def _ok(result: dict) -> dict:
    assert "error" not in result, result["error"]
    return result


@pytest.fixture(scope="module")
def elsewhere(exported, three_ways, keras_tuner_study) -> dict:
    """Every fresh-process check of this module, in six fresh processes (each starts TensorFlow and MLflow),
    run once: case -> result. A process takes at most one first import of each factory module (``handson``,
    ``wide_deep``, ``hypermodel``; the ensemble's export imports both of its members'), and a predict command
    starts its process. The cases: each model loaded both ways (``(name, first loader)``: each loader first
    for the custom layer), the predict command on the handson export and on the ensemble's MLflow model
    (``("predict", name)``), the three ways of tuning the Hands-On factory (``"three_ways"``, and its predict
    command ``("predict", "random")``), the KerasTuner study (``"keras_tuner"``, ``("predict", "keras_tuner")``)."""
    models, ways, kt = exported["models"], three_ways["ways"], keras_tuner_study
    targets = {"handson": exported["tmp"] / "predictions_handson_export.csv",
               "ensemble": exported["tmp"] / "predictions_ensemble_mlflow.csv",
               "random": three_ways["tmp"] / "predictions_random.csv", "keras_tuner": kt["tmp"] / "predictions.csv"}
    plan = [  # one process each: [(case, step)]
        [(("predict", "handson"), _predict(exported, str(models["handson"]["dir"]), targets["handson"], ["handson"])),
         (("wide_deep", "export"), _both(exported, models["wide_deep"], "export", ["wide_deep"])),
         ("keras_tuner", _both(kt, kt["model"], "export", ["hypermodel"]))],
        [(("predict", "ensemble"), _predict(exported, models["ensemble"]["uri"], targets["ensemble"],
                                            ["handson", "wide_deep"]))],
        [(("predict", "keras_tuner"), _predict(kt, str(kt["model"]["dir"]), targets["keras_tuner"], ["hypermodel"])),
         (("handson", "mlflow"), _both(exported, models["handson"], "mlflow", ["handson"])),
         (("wide_deep", "mlflow"), _both(exported, models["wide_deep"], "mlflow", ["wide_deep"]))],
        [(("ensemble", "export"), _both(exported, models["ensemble"], "export", ["handson", "wide_deep"]))],
        [(("predict", "random"), _predict(three_ways, str(ways["random"]["dir"]), targets["random"], ["handson"]))],
        # the first way loaded imports the factory from the export; the others find it imported
        [(("three_ways", way), _both(three_ways, ways[way], first, ["handson"] if way == "search" else []))
         for way, first in (("search", "export"), ("optuna", "mlflow"), ("random", "export"))],
    ]
    out = {"targets": targets}
    for cases in plan:
        for (case, _), result in zip(cases, _elsewhere(exported, [step for _, step in cases]), strict=True):
            out[case] = result
    return out


# which loader imports the factory first: each way for the custom layer; the predict command's test loads
# the handson export and the ensemble's MLflow model alone
@pytest.mark.parametrize(("name", "first"), [("handson", "mlflow"), ("wide_deep", "export"),
                                             ("wide_deep", "mlflow"), ("ensemble", "export")])
def test_loads_in_a_fresh_process_elsewhere_and_predicts_the_same(exported, elsewhere, name, first):
    model = exported["models"][name]
    got = _ok(elsewhere[name, first])
    for how in ("mlflow", "export"):
        np.testing.assert_allclose(got[how]["batch"], model["expected"], **TOL)
        np.testing.assert_allclose(got[how]["alone"], model["expected"], **TOL)


@pytest.mark.parametrize(("name", "how"), [("handson", "export"), ("ensemble", "mlflow")])
def test_predict_command_in_a_fresh_process_elsewhere(exported, elsewhere, name, how):
    model = exported["models"][name]
    assert _ok(elsewhere["predict", name]) == {"code": 0}
    out = pd.read_csv(elsewhere["targets"][name])
    pd.testing.assert_frame_equal(out.drop(columns=["prediction"]), exported["rows"])
    np.testing.assert_allclose(out["prediction"].to_numpy(), model["expected"], **TOL)


def test_the_export_ships_each_factory_file_with_its_module_name_and_digest(exported):
    for name, modules in (("handson", ["handson"]), ("wide_deep", ["wide_deep"]),
                          ("ensemble", ["handson", "wide_deep"])):
        export = exported["models"][name]["dir"]
        entries = json.loads((export / CODE_FILE).read_text())["modules"]
        assert [e["module"] for e in entries] == modules
        for entry in entries:
            assert entry["function"] == "build_model"
            assert entry["file"] == f"{CODE_DIR}/{entry['module']}.py"
            shipped = (export / entry["file"]).read_bytes()
            assert shipped == (MODELS / f"{entry['module']}.py").read_bytes()
            assert entry["sha256"] == hashlib.sha256(shipped).hexdigest()


def test_our_own_mlp_ships_no_code(tmp_path):
    from estimators import KerasMLPRegressor

    assert ship_code(make_pipeline(None, KerasMLPRegressor()), tmp_path) == []
    assert not (tmp_path / CODE_DIR).exists() and not (tmp_path / CODE_FILE).exists()
    assert code_paths(tmp_path) == []


DOTTED = """
import importlib.util, sys
from tuning.export.shipped_code import import_shipped_code
assert importlib.util.find_spec("ownpkg_export") is None
assert import_shipped_code(sys.argv[1]) == ["ownpkg_export.nets"]
import ownpkg_export.nets
assert ownpkg_export.nets.build_model() == "shipped"
"""


def test_a_dotted_module_ships_as_a_package_and_imports_by_its_name(tmp_path, monkeypatch):
    """``package.module:function``: ``code/package/module.py`` with an empty ``__init__.py``; MLflow gets the
    package folder (so ``code/`` on ``sys.path`` imports it) and ``import_shipped_code`` imports it elsewhere."""
    from estimators.own_model.estimators import KerasModelRegressor

    source = tmp_path / "src"
    (source / "ownpkg_export").mkdir(parents=True)
    (source / "ownpkg_export" / "__init__.py").write_text("")
    (source / "ownpkg_export" / "nets.py").write_text("def build_model(n_neurons=3):\n    return 'shipped'\n")
    monkeypatch.syspath_prepend(str(source))
    try:
        export = tmp_path / "export"
        pipeline = make_pipeline(None, KerasModelRegressor(build="ownpkg_export.nets:build_model"))
        ship_code(pipeline, export)
    finally:
        for module in ("ownpkg_export.nets", "ownpkg_export"):
            sys.modules.pop(module, None)
    assert (export / CODE_DIR / "ownpkg_export" / "__init__.py").read_text() == ""
    assert (export / CODE_DIR / "ownpkg_export" / "nets.py").is_file()
    assert code_paths(export) == [str(export / CODE_DIR / "ownpkg_export")]
    entry = json.loads((export / CODE_FILE).read_text())["modules"][0]
    assert (entry["module"], entry["file"]) == ("ownpkg_export.nets", "code/ownpkg_export/nets.py")
    script = tmp_path / "dotted.py"
    script.write_text(DOTTED)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = warm_python.run([sys.executable, str(script), str(export)], cwd=elsewhere, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


# ---- the Hands-On factory, verbatim, tuned three ways; each export loads and predicts elsewhere ----------



def _study_file(tmp: Path, backend: str, table: Path) -> Path:
    """The shipped handson study made tiny, on ``table``, with its MLflow store and export in ``tmp``."""
    import yaml

    study = yaml.safe_load((ROOT / "studies" / "handson.yaml").read_text())
    study["name"] = f"handson-{backend}"
    study["model"]["build"] = str(MODELS / "handson.py") + ":build_model"
    study["dataset"] = {"source": "csv", "path": str(table), "target": "MedHouseVal", "test_size": 0.2,
                        "valid_size": 0.25, "seed": 0}
    study["search"].update(backend=backend, n_trials=2)
    study["training"] = {"epochs": 2, "batch_size": 64}
    study["mlflow"] = {"tracking_uri": tracking_uri(tmp)}
    study["export"] = {"dir": str(tmp / backend), "baseline": False}
    path = tmp / f"{backend}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def three_ways(tmp_path_factory) -> dict:
    """The verbatim Hands-On factory tuned by RandomizedSearchCV (exported with ``save_model``, logged with
    the tracker), and by a study file with each backend; each way's export dir, MLflow URI and predictions."""
    from mlflow import MlflowClient
    from scipy.stats import loguniform, randint
    from sklearn.model_selection import RandomizedSearchCV
    from sklearn.pipeline import make_pipeline as sk_pipeline
    from sklearn.preprocessing import StandardScaler

    from estimators import KerasModelRegressor
    from tuning.export import load_model, save_model
    from tuning.study import run_study

    tmp = tmp_path_factory.mktemp("three_ways")
    X, y = housing_rows(300)
    rows = X.iloc[:N_ROWS].reset_index(drop=True)
    rows.to_csv(tmp / "rows.csv", index=False)
    X.assign(MedHouseVal=y).to_csv(tmp / "housing.csv", index=False)
    sys.path.insert(0, str(MODELS))
    try:
        from handson import build_model  # as the user's script imports it
    finally:
        sys.path.remove(str(MODELS))
    search = RandomizedSearchCV(
        sk_pipeline(StandardScaler(), KerasModelRegressor(build=build_model, epochs=2, patience=1, random_state=0)),
        {"kerasmodelregressor__n_hidden": randint(0, 4), "kerasmodelregressor__n_neurons": randint(1, 100),
         "kerasmodelregressor__learning_rate": loguniform(3e-4, 3e-2)}, n_iter=2, cv=2, random_state=0)
    search.fit(X, y)
    save_model(search.best_estimator_, tmp / "search")
    uri = tracking_uri(tmp)
    client = MlflowClient(uri)
    experiment = client.create_experiment("search", artifact_location=(tmp / "artifacts").as_uri())
    ways = {"search": {"dir": tmp / "search", "uri": log_model_in_a_run(uri, experiment, load_model(tmp / "search"),
                                                                         X.iloc[:5]),
                       "expected": search.best_estimator_.predict(rows)}}
    for backend in ("optuna", "random"):
        with pytest.MonkeyPatch.context() as patch:  # the report's charts: tested in test_report
            patch.setattr(report_html, "write_pictures", no_pictures)
            result = run_study(_study_file(tmp, backend, tmp / "housing.csv"), quiet=True)
        assert result.n_complete >= 1
        parent = client.get_run(result.parent_run_id)
        ways[backend] = {"dir": tmp / backend, "uri": parent.data.tags["model.uri"],
                         "expected": load_model(tmp / backend).predict(rows)}
    return {"tmp": tmp, "tracking_uri": uri, "rows": rows, "ways": ways}


def test_the_hands_on_factory_tuned_three_ways_predicts_elsewhere(three_ways, elsewhere):
    """Through ``load_model`` and ``mlflow.pyfunc``, the three ways in one fresh process, and ``python -m
    tuning.predict`` in another, both in a directory where ``handson`` does not import: the same values, alone
    and in a batch (the first way loaded imports the factory from the export; the predict command is the
    one other fresh process every way would take, tested with both loaders above)."""
    ways = three_ways["ways"]
    for way in ("search", "optuna", "random"):
        got = _ok(elsewhere["three_ways", way])
        expected = np.asarray(ways[way]["expected"], dtype=np.float64)
        for how in ("mlflow", "export"):
            np.testing.assert_allclose(got[how]["batch"], expected, **TOL, err_msg=f"{way} {how}")
            np.testing.assert_allclose(got[how]["alone"], expected, **TOL, err_msg=f"{way} {how}")
    assert _ok(elsewhere["predict", "random"]) == {"code": 0}
    predicted = pd.read_csv(elsewhere["targets"]["random"])["prediction"].to_numpy()
    np.testing.assert_allclose(predicted, ways["random"]["expected"], **TOL)


@pytest.fixture(scope="module")
def keras_tuner_study(tmp_path_factory) -> dict:
    """studies/keras_tuner.yaml (a ``build(hp)`` factory) made tiny and run: its export dir and MLflow URI, digits
    rows and what this process predicts on them."""
    import yaml
    from mlflow import MlflowClient
    from sklearn.datasets import load_digits

    from tuning.export import load_model
    from tuning.study import run_study

    tmp = tmp_path_factory.mktemp("keras_tuner")
    study = yaml.safe_load((ROOT / "studies" / "keras_tuner.yaml").read_text())
    study["model"]["build"] = f"{MODELS / 'hypermodel.py'}:build_model"
    study["search"].update(n_trials=2)
    study["training"] = {"epochs": 2}
    study["mlflow"] = {"tracking_uri": tracking_uri(tmp)}
    study["export"] = {"dir": str(tmp / "out"), "baseline": False}
    path = tmp / "keras_tuner.yaml"
    path.write_text(yaml.safe_dump(study))
    with pytest.MonkeyPatch.context() as patch:  # the report's charts: tested in test_report
        patch.setattr(report_html, "write_pictures", no_pictures)
        result = run_study(path, quiet=True)
    rows = load_digits(as_frame=True).data.head(N_ROWS).astype("float64")
    rows.to_csv(tmp / "rows.csv", index=False)
    uri = MlflowClient(tracking_uri(tmp)).get_run(result.parent_run_id).data.tags["model.uri"]
    expected = np.asarray(load_model(tmp / "out").predict(rows), dtype=np.float64)
    return {"tmp": tmp, "tracking_uri": tracking_uri(tmp), "result": result,
            "model": {"dir": tmp / "out", "uri": uri, "expected": expected}}


def test_a_keras_tuner_hypermodel_study_exports_a_model_that_predicts_elsewhere(keras_tuner_study, elsewhere):
    """studies/keras_tuner.yaml (a ``build(hp)`` factory) made tiny: its export and MLflow model predict digits
    rows in a fresh process elsewhere (``load_model``, ``mlflow.pyfunc``, ``python -m tuning.predict``), alone
    and in a batch, as in the process that ran the study."""
    assert keras_tuner_study["result"].n_complete >= 1
    expected = keras_tuner_study["model"]["expected"]
    got = _ok(elsewhere["keras_tuner"])
    for how in ("mlflow", "export"):
        np.testing.assert_array_equal(got[how]["batch"], expected)  # class labels
        np.testing.assert_array_equal(got[how]["alone"], expected)
    assert _ok(elsewhere["predict", "keras_tuner"]) == {"code": 0}
    predicted = pd.read_csv(elsewhere["targets"]["keras_tuner"])["prediction"].to_numpy()
    np.testing.assert_array_equal(predicted, expected)
