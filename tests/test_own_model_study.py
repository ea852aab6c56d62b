"""Study files that bring their own Keras model (``model.build``): validation when the file loads, trials,
preflight, the facts note, resume refusal, both backends with export.

Factories written by a test go to files with names of their own (a module name is imported once per process)."""

from __future__ import annotations

import pickle
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.helpers import no_pictures, study_dict
from tuning.cli.run import main
from tuning.report import html as report_html

REPO = Path(__file__).resolve().parents[1]
HANDSON = f"{REPO / 'studies' / 'models' / 'handson.py'}:build_model"
SPACE = {"n_hidden": {"type": "int", "low": 0, "high": 2}, "n_neurons": {"type": "int", "low": 2, "high": 16}}


@pytest.fixture(autouse=True)
def _fast(monkeypatch):

    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # slow; tested in test_study
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)  # charts: tested in test_report


def write_factory(tmp_path: Path, name: str, body: str) -> str:
    """``models/<name>.py`` next to the study file, with ``body``; the ``build`` value for it."""
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text("import keras\n\n" + textwrap.dedent(body))
    return f"models/{name}.py:build_model"


def write(tmp_path: Path, model: dict, space: dict | None = SPACE, **changes) -> Path:
    data = study_dict(tmp_path, **changes)
    data["model"] = model
    if space is None:
        data.pop("space")
    else:
        data["space"] = space
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def line_of(path: Path, key: str) -> int:
    """The line of the dotted ``key`` (``space.seed``; a section alone: its own line)."""
    lines = path.read_text().splitlines()
    section, _, name = key.partition(".")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{section}:"))
    if not name:
        return start + 1
    return next(i for i, line in enumerate(lines[start:], start + 1) if line.strip().startswith(f"{name}:"))


def exit_2(path: Path, capsys, *args: str) -> str:
    assert main([str(path), "--quiet", *args]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    return err


SEQUENTIAL = """
def build_model(n_hidden=1, n_neurons=8, input_shape=(3,)):
    model = keras.Sequential([keras.Input(shape=input_shape)])
    for _ in range(n_hidden):
        model.add(keras.layers.Dense(n_neurons, activation="relu"))
    model.add(keras.layers.Dense(1))
    return model
"""

# name -> (factory body or None for the shipped handson factory, model: extra keys, space, key, message)
BAD = {
    "missing file": (None, {"build": "models/nowhere.py:build_model"}, SPACE, "model.build", "no file"),
    "missing function": (SEQUENTIAL, {"build": "models/f_missing_function.py:build_modl"}, SPACE, "model.build",
                         "did you mean 'build_model'"),
    "import fails": ("import no_such_package_xyz\n" + SEQUENTIAL, {}, SPACE, "model.build",
                     "ModuleNotFoundError: No module named 'no_such_package_xyz'"),
    "lambda": ("build_model = lambda n_hidden=1: None\n", {}, SPACE, "model.build", "lambda"),
    "nested": ("def outer():\n    def build_model(n_hidden=1):\n        return None\n    return build_model\n\n"
               "build_model = outer()\n", {}, SPACE, "model.build", "inside another function"),
    "__main__": (SEQUENTIAL + "\nbuild_model.__module__ = '__main__'\n", {}, SPACE, "model.build", "__main__"),
    "unknown space key": (SEQUENTIAL, {}, {**SPACE, "n_neuron": SPACE["n_neurons"]}, "space.n_neuron",
                          "did you mean 'n_neurons'"),
    "unknown model key": (SEQUENTIAL, {"n_hiden": 2}, {"n_neurons": SPACE["n_neurons"]}, "model.n_hiden",
                          "did you mean 'n_hidden'"),
    "fact in model": (SEQUENTIAL, {"input_shape": [10]}, SPACE, "model.input_shape", "given to"),
    "fact in space": (SEQUENTIAL, {}, {**SPACE, "seed": {"type": "int", "low": 0, "high": 3}}, "space.seed",
                      "from the data"),
    "training-setting argument": (SEQUENTIAL.replace("input_shape=(3,)", "input_shape=(3,), epochs=3"), {}, SPACE,
                                  "model.build", "argument 'epochs' has the name of a training setting"),
    "required argument": (SEQUENTIAL.replace("n_hidden=1, n_neurons=8", "n_neurons, width, n_hidden=1"), {}, {"n_hidden": SPACE["n_hidden"]},
                          "model.build", "needs arguments 'n_neurons', 'width'"),
    "fixed and tuned": (SEQUENTIAL, {"n_hidden": 1}, SPACE, "space.n_hidden", "both fixed in model and tuned"),
    "no default space": (SEQUENTIAL.replace("n_hidden=1, n_neurons=8", "depth=1, width=8")
                         .replace("n_hidden", "depth").replace("n_neurons", "width"), {}, None, "model.build",
                         "give a space:"),
    "training setting in model": (SEQUENTIAL, {"epochs": 3}, SPACE, "model.epochs", "set it in training.epochs"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_factory_or_key_exits_2_naming_file_key_and_line(tmp_path, capsys, case):
    body, model, space, key, message = BAD[case]
    module = "f_" + re.sub(r"\W", "_", case)
    build = write_factory(tmp_path, module, body) if body is not None else None
    model = {"build": build, **model} if "build" not in model else {**model}
    path = write(tmp_path, model, space)
    err = exit_2(path, capsys)
    assert str(path) in err
    assert f"{key} (line " in err, err
    assert message in err, err
    assert f"{key} (line {line_of(path, key)})" in err, err


def test_a_valid_study_loads_pickles_and_dumps_an_importable_build(tmp_path):
    """The factory is resolved at load; a pickled config (worker processes) resolves it again; a dump (the
    workers' study file, overrides) has the absolute path; the default space keeps what the factory takes."""
    from tuning.config.schema import load_study, load_study_dict

    build = write_factory(tmp_path, "f_valid", SEQUENTIAL)
    path = write(tmp_path, {"build": build, "optimizer": "adam"}, space=None)
    config = load_study(path)
    assert config.model.factory.function.__name__ == "build_model"
    assert set(config.space) == {"n_hidden", "n_neurons", "learning_rate"}  # learning_rate: a compile knob
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config and copy.model._factory is None and copy.model.factory.function is config.model.factory.function
    dumped = config.model_dump(mode="json")["model"]["build"]
    assert Path(dumped.rpartition(":")[0]).is_absolute()
    assert load_study_dict(config.model_dump(mode="json")).model.factory.label.endswith("f_valid.py:build_model")
    assert config.with_overrides(n_trials=1).model.factory.function is config.model.factory.function


def test_a_factory_failing_for_some_values_gives_failed_trials_and_the_study_goes_on(tmp_path, capsys):
    from mlflow import MlflowClient

    build = write_factory(tmp_path, "f_some_fail", SEQUENTIAL.replace(
        "    model = keras", "    if n_hidden == 0:\n        raise ValueError('no zero layers here')\n    model = keras"))
    space = {"n_hidden": {"type": "categorical", "choices": [1, 0]}}
    path = write(tmp_path, {"build": build}, space, search={"n_trials": 2, "sampler": "grid"},
                 training={"epochs": 1})
    assert main([str(path), "--quiet"]) == 0, capsys.readouterr().err[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    trials = {r.data.params["n_hidden"]: r for r in runs if "n_hidden" in r.data.params}
    assert trials["0"].data.tags["trial.state"] == "failed"
    assert "no zero layers here" in trials["0"].data.tags["trial.reason"]
    assert trials["1"].data.tags["trial.state"] == "complete"
    parent = [r for r in runs if r.data.tags.get("tuning.role") == "study"][0]
    assert parent.info.status == "FINISHED"
    assert (tmp_path / "out" / "pipeline.joblib").is_file()


def test_preflight_stops_a_factory_that_cannot_run_with_exit_2(tmp_path, capsys):
    build = write_factory(tmp_path, "f_preflight", SEQUENTIAL.replace("keras.Input(shape=input_shape)",
                                                                        "keras.Input(shape=(3,))"))
    path = write(tmp_path, {"build": build}, SPACE, training={"epochs": 1})
    err = exit_2(path, capsys)
    assert str(path) in err and "f_preflight.py:build_model" in err and "failed its check before the search" in err
    assert not (tmp_path / "out" / "optuna.db").exists()  # no search started


def test_a_compile_knob_a_self_compiling_factory_ignores_is_refused(tmp_path, capsys):
    """The factory compiles its own optimizer and does not take learning_rate: tuning it (or a range
    test) would change nothing."""
    body = SEQUENTIAL.replace("    return model", "    model.compile(loss='mse', optimizer='sgd')\n    return model")
    build = write_factory(tmp_path, "f_compiles", body)
    space = {**SPACE, "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}
    path = write(tmp_path, {"build": build}, space, search={"lr_range_test": True}, training={"epochs": 1})
    err = exit_2(path, capsys)
    assert "compiles the model itself and does not take learning_rate" in err


def test_facts_note_once_and_resume_refused_when_the_factory_changes(tmp_path, capsys):
    build = write_factory(tmp_path, "f_resume", SEQUENTIAL)
    path = write(tmp_path, {"build": build}, SPACE, search={"n_trials": 1}, training={"epochs": 1})
    assert main([str(path)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("given from the data") == 1, err
    assert "input_shape=(3,) -> (10,)" in err

    factory_file = tmp_path / "models" / "f_resume.py"
    factory_file.write_text(factory_file.read_text() + "\n# changed\n")
    err = exit_2(path, capsys, "--n-trials", "2")
    assert "models/f_resume.py:build_model" in err and "--fresh" in err and "source file changed" in err
    assert main([str(path), "--quiet", "--fresh"]) == 0
    assert "given from the data" not in capsys.readouterr().err  # quiet


@pytest.mark.parametrize("backend", ["optuna", "random"])
def test_the_handson_factory_runs_end_to_end_and_exports(tmp_path, capsys, backend):
    from tuning.export import load_model

    space = {**SPACE, "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True}}
    path = write(tmp_path, {"build": HANDSON}, space, search={"backend": backend, "n_trials": 2},
                 training={"epochs": 2}, export={"ensemble": {"size": 2, "candidates": 2}})
    assert main([str(path), "--quiet"]) == 0, capsys.readouterr().err[-3000:]
    out = tmp_path / "out"
    assert (out / "pipeline.joblib").is_file()
    from sklearn.datasets import load_diabetes

    X = load_diabetes(as_frame=True).data.head(3)
    assert load_model(out).predict(X).shape[0] == 3


def test_a_file_factory_cross_validates_with_folds_in_other_processes(tmp_path, capsys):
    """joblib's workers cannot import a file's module by name: they get the factory by its path."""
    build = write_factory(tmp_path, "f_folds", SEQUENTIAL)
    path = write(tmp_path, {"build": build}, SPACE, search={"n_trials": 1, "cv": 2, "n_jobs": 2},
                 training={"epochs": 1})
    assert main([str(path), "--quiet"]) == 0, capsys.readouterr().err[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    trial = next(r for r in runs if "n_hidden" in r.data.params)
    assert trial.data.tags["trial.state"] == "complete", trial.data.tags.get("trial.reason")


@pytest.mark.parametrize("study", ["handson.yaml", "wide_deep.yaml"])
def test_the_shipped_own_model_studies_run_on_tiny_data(tmp_path, study):
    """The shipped studies as they are, made tiny (diabetes, 2 trials of 2 epochs): Hands-On's verbatim
    factory, and the functional Wide & Deep with its custom layer, compiled by the study."""
    from tuning.config.schema import load_study, load_study_dict
    from tuning.export import load_model
    from tuning.study import run_study

    data = load_study(REPO / "studies" / study).model_dump(mode="json", exclude_unset=True)
    tiny = study_dict(tmp_path, search={"n_trials": 2}, training={"epochs": 2})
    data.update(dataset=tiny["dataset"], mlflow=tiny["mlflow"], export=tiny["export"])
    data["search"].update(n_trials=2)
    data["training"].update(epochs=2)
    result = run_study(load_study_dict(data), quiet=True)
    assert result.n_complete >= 1 and result.best is not None
    from sklearn.datasets import load_diabetes

    rows = load_diabetes(as_frame=True).data.head(4)
    assert load_model(tmp_path / "out").predict(rows).shape == (4,)


def test_a_file_factorys_members_retrain_in_other_processes(tmp_path):
    """``train_on: train+valid`` with workers retrains the ensemble's members in joblib's processes, which
    cannot import a file's module by name: they get the factory by its path, and come back fitted."""
    from tuning.config.schema import load_study
    from tuning.data.sources import load_dataset
    from tuning.export.ensembling import retrained_estimators
    from tuning.records import COMPLETE
    from tuning.search.trial.runner import make_runner

    build = write_factory(tmp_path, "f_members", SEQUENTIAL)
    config = load_study(write(tmp_path, {"build": build}, SPACE, training={"epochs": 2}))
    runner = make_runner(config, load_dataset(config.dataset))
    records = [runner.run(i, {"n_hidden": 1, "n_neurons": 4 + i}) for i in range(2)]
    assert all(r.state == COMPLETE for r in records), [r.reason for r in records]
    members = retrained_estimators(runner, records, n_jobs=2)
    X = runner.data.X_valid[:5]
    assert [m.n_neurons for m in members] == [4, 5] and all(m.predict(X).shape == (5,) for m in members)


def test_a_hypermodel_study_takes_command_line_overrides_and_dumps_for_workers(tmp_path):
    """A ``build(hp)`` study has no space: section; overridden (``--n-trials``) or dumped for ``--workers``
    helpers, it must still have none (not an empty one, which the schema refuses)."""
    from tuning.config.schema import load_study, load_study_dict

    hypermodel = f"{REPO / 'studies' / 'models' / 'hypermodel.py'}:build_model"
    config = load_study(write(tmp_path, {"build": hypermodel}, space=None))
    assert config.model.factory.takes_hp and config.space == {}
    assert config.with_overrides(n_trials=7).search.n_trials == 7
    assert "space" not in config.model_dump(mode="json", exclude_unset=True)
    assert load_study_dict(config.model_dump(mode="json", exclude_unset=True)).space == {}
