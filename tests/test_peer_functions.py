"""Model code as other tools write it, run as it is: Optuna's ``create_model(trial)`` and KerasTuner's
``HyperModel`` class (studies/models/optuna_keras.py, studies/models/keras_tuner_hypermodel.py).

The shipped examples run as tiny digits studies (the ``studies`` fixture, once for the module): the Optuna
function on the Optuna backend with a pruner that prunes one trial and on the random backend, the HyperModel on
the random backend with its ``fit`` watched. Their exports predict raw rows in ONE fresh process started in
another directory, where neither example's module is importable."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from tests import warm_python
from tests.helpers import no_pictures, study_dict
from tests.resume_helpers import mlflow_runs
from tuning.cli.run import main
from tuning.report import html as report_html

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "studies" / "models"
TRIAL_FUNCTION = f"{MODELS / 'optuna_keras.py'}:create_model"
HYPERMODEL = f"{MODELS / 'keras_tuner_hypermodel.py'}:MyHyperModel"
PRUNED = 1  # the Optuna study's trial pruned at its first epoch


class PruneOne(optuna.pruners.BasePruner):
    """Prunes trial ``PRUNED`` at its first report; never another."""

    def prune(self, study, trial) -> bool:
        return trial.number == PRUNED and bool(trial.intermediate_values)


def _write(tmp: Path, build: str, backend: str, n_trials: int, **search) -> Path:
    data = study_dict(tmp, dataset={"source": "digits", "test_size": 0.2, "valid_size": 0.25, "seed": 0,
                                    "max_rows": 240},
                      search={"backend": backend, "n_trials": n_trials, **search}, training={"epochs": 2})
    data["model"] = {"build": build}
    data.pop("space")
    data.pop("preprocessing")
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict:
    """The three studies run: their folders, and each training the HyperModel's fit made (its batch size,
    shuffling, rows and the steps Keras ran per epoch)."""
    from estimators.own_model import define_by_run
    from tuning.search.store import optuna as optuna_store

    fits: list[dict] = []
    real_fit = define_by_run._TrainingModel.fit

    def watched_fit(self, x=None, y=None, batch_size=None, shuffle=True, sample_weight=None, **kwargs):
        history = real_fit(self, x, y, batch_size, shuffle, sample_weight, **kwargs)
        fits.append({"batch_size": batch_size, "shuffle": shuffle, "rows": len(x), "steps": history.params["steps"]})
        return history

    out = {"fits": fits}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # slow; test_study
        patch.setattr(report_html, "write_pictures", no_pictures)
        patch.setattr(optuna_store, "make_pruner", lambda config: PruneOne())
        patch.setattr(define_by_run._TrainingModel, "fit", watched_fit)
        for name, build, backend, n_trials, search in (
                ("trial_optuna", TRIAL_FUNCTION, "optuna", 3, {"pruner": "median"}),
                ("trial_random", TRIAL_FUNCTION, "random", 2, {}),
                ("hypermodel", HYPERMODEL, "random", 3, {})):
            tmp = tmp_path_factory.mktemp(name)
            patch.chdir(tmp)  # MLflow's artifact store lands here
            before = len(fits)
            code = main([str(_write(tmp, build, backend, n_trials, **search)), "--quiet"])
            out[name] = {"tmp": tmp, "code": code, "fits": fits[before:]}
    return out


def _logged(tmp: Path) -> list[dict]:
    """The params of each trial's MLflow run, as values."""
    _, trials = mlflow_runs(study_dict(tmp)["mlflow"]["tracking_uri"], "tiny")
    return [{k: yaml.safe_load(v) for k, v in run.data.params.items()} for run in trials]


def _check_optuna_example(params: dict) -> None:
    """The names create_model suggests: n_layers, then n_units_l<i> and dropout_l<i> per layer, learning_rate."""
    layers = params["n_layers"]
    assert 1 <= layers <= 3 and 1e-5 <= params["learning_rate"] <= 1e-1, params
    assert {k for k in params if k.startswith("n_units_l")} == {f"n_units_l{i}" for i in range(layers)}, params
    assert {k for k in params if k.startswith("dropout_l")} == {f"dropout_l{i}" for i in range(layers)}, params
    assert all(4 <= params[f"n_units_l{i}"] <= 128 and 0.2 <= params[f"dropout_l{i}"] <= 0.5 for i in range(layers))


def _exported_estimator(out: Path):
    from tuning.export import load_model

    model = load_model(out)
    estimator = model[-1] if hasattr(model, "steps") else model
    return getattr(estimator, "estimator", estimator)


def test_optunas_create_model_draws_its_suggestions_as_trial_parameters_and_is_pruned(studies):
    """On the Optuna backend the function's suggest_* calls are the trial's parameters (in Optuna, in MLflow,
    in best_params.json), and the study's pruner prunes a trial of it."""
    run = studies["trial_optuna"]
    assert run["code"] == 0
    storage = optuna.storages.RDBStorage(f"sqlite:///{next(run['tmp'].rglob('optuna.db'))}")
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials(deepcopy=False)
    assert [t.state for t in trials].count(optuna.trial.TrialState.PRUNED) == 1
    assert trials[PRUNED].state == optuna.trial.TrialState.PRUNED
    logged = _logged(run["tmp"])
    assert len(logged) == 3
    for params in logged:
        _check_optuna_example(params)
    assert sorted(map(repr, logged)) == sorted(repr(t.params) for t in trials)  # MLflow holds the trials' params
    best = json.loads((run["tmp"] / "out" / "best_params.json").read_text())
    assert best["params"] == trials[best["trial"]].params
    assert _exported_estimator(run["tmp"] / "out").hp_values == best["params"]  # what a refit replays


def test_optunas_create_model_runs_on_the_random_backend_its_refit_replaying_the_draws(studies):
    run = studies["trial_random"]
    assert run["code"] == 0
    logged = _logged(run["tmp"])
    assert len(logged) == 2 and logged[0] != logged[1]
    for params in logged:
        _check_optuna_example(params)
    best = json.loads((run["tmp"] / "out" / "best_params.json").read_text())
    assert _exported_estimator(run["tmp"] / "out").hp_values == best["params"]


def test_a_hypermodel_class_fit_wraps_the_training_with_the_batch_size_and_shuffling_it_draws(studies):
    """MyHyperModel's fit is applied: each trial trained with the batch size and shuffling logged for it
    (Keras ran ceil(rows / batch size) steps an epoch), and a refit replays them."""
    run = studies["hypermodel"]
    assert run["code"] == 0
    logged = _logged(run["tmp"])
    assert len(logged) == 3
    for params in logged:
        assert params.keys() == {"units", "batch_size", "shuffle"}, params
        assert params["batch_size"] in (16, 32) and params["shuffle"] in (False, True)
    fits = run["fits"]
    assert fits and all(fit["steps"] == math.ceil(fit["rows"] / fit["batch_size"]) for fit in fits)
    trained = {(fit["batch_size"], fit["shuffle"]) for fit in fits}
    assert {(p["batch_size"], p["shuffle"]) for p in logged} <= trained
    assert trained <= {(p["batch_size"], p["shuffle"]) for p in logged}  # never the study's batch_size: 64


FRESH = """
import importlib.util, json, sys
import pandas as pd
assert not any(importlib.util.find_spec(m) for m in ("optuna_keras", "keras_tuner_hypermodel")), sys.path
from tuning.export import load_model

rows = pd.read_csv(sys.argv[1])
print(json.dumps({name: load_model(folder).predict(rows).tolist() for name, folder in json.loads(sys.argv[2]).items()}))
"""


def test_the_exports_predict_raw_rows_in_a_fresh_process_elsewhere(studies, tmp_path):
    from sklearn.datasets import load_digits

    from tuning.export import load_model

    rows = load_digits(as_frame=True).data.head(8).astype("float64")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    folders = {name: str(studies[name]["tmp"] / "out") for name in ("trial_optuna", "trial_random", "hypermodel")}
    expected = {name: load_model(folder).predict(rows).tolist() for name, folder in folders.items()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "fresh.py").write_text(textwrap.dedent(FRESH))
    done = warm_python.run([sys.executable, str(tmp_path / "fresh.py"), str(tmp_path / "rows.csv"), json.dumps(folders)],
                           cwd=elsewhere, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                           timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == expected
    assert all(np.isin(labels, np.arange(10)).all() for labels in got.values())


# ---- mistakes: clear messages naming the factory -----------------------------------------------------------

TWICE = """
import keras

def create_model(trial):
    model = keras.Sequential()
    for i in range(2):
        model.add(keras.layers.Dense(trial.suggest_int("units", 4, 8 * (i + 1)), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    return model
"""


def test_a_name_suggested_twice_with_two_ranges_stops_the_study_naming_the_function(tmp_path, capsys):
    (tmp_path / "peer_twice.py").write_text(textwrap.dedent(TWICE))
    path = _write(tmp_path, f"{tmp_path / 'peer_twice.py'}:create_model", "random", 2)
    assert main([str(path), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "peer_twice.py:create_model" in err and "trial.suggest_int('units', 4, 16, 1, False) after" in err, err
    assert "Traceback" not in err


NOT_HP = """
class NoHp:
    def build(self):
        return None


class Needs:
    def __init__(self, units):
        self.units = units

    def build(self, hp):
        return None
"""


@pytest.mark.parametrize(("name", "message"), [("NoHp", "NoHp.build(self) does not take hp"),
                                               ("Needs", "Needs() needs units")])
def test_a_class_that_cannot_be_a_hypermodel_is_refused_naming_it(tmp_path, name, message):
    from estimators.own_model.factory import FactoryError, resolve

    (tmp_path / f"peer_class_{name.lower()}.py").write_text(textwrap.dedent(NOT_HP))
    with pytest.raises(FactoryError, match=re.escape(message)):
        resolve(f"{tmp_path / f'peer_class_{name.lower()}.py'}:{name}")


@pytest.mark.parametrize(("study", "style"), [("optuna_trial.yaml", "trial"), ("keras_tuner_hypermodel.yaml", "class")])
def test_the_shipped_studies_load_with_their_example(study, style):
    from tuning.config.schema import load_study

    config = load_study(ROOT / "studies" / study)
    factory = config.model.factory
    assert factory.takes_hp and factory.hp_style == style and config.space == {}
    assert config.dataset.source == "digits"
