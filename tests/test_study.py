"""End to end: a tiny study runs, every trial is in MLflow, the export reproduces the test score."""

from __future__ import annotations

import json
import sys

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient

from tests import warm_python
from tests.helpers import no_pictures, study_config
from tuning.records import COMPLETE, FAILED, PRUNED
from tuning.report import html as report_html
from tuning.study import run_study


def child_runs(client: MlflowClient, parent_run_id: str):
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=500
    )
    return sorted(runs, key=lambda r: int(r.data.tags["trial.number"]))


@pytest.fixture(scope="module", autouse=True)
def no_report_charts():
    """Every study here writes its report without the charts (slow to draw, tested in test_report)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report_html, "write_pictures", no_pictures)
        yield


@pytest.fixture(scope="module")
def optuna_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("optuna_study")
    config = study_config(tmp, name="tiny-optuna", search={"n_trials": 4})
    return config, run_study(config, quiet=True), tmp


def test_one_child_run_per_trial_under_one_parent(optuna_study):
    config, result, _ = optuna_study
    client = MlflowClient(config.mlflow.tracking_uri)
    children = child_runs(client, result.parent_run_id)
    assert len(children) == 4 == len(result.records)
    assert [int(r.data.tags["trial.number"]) for r in children] == [0, 1, 2, 3]
    experiment = client.get_experiment_by_name(config.experiment_name)
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`tuning.role` = 'study'")
    assert [p.info.run_id for p in parents] == [result.parent_run_id]
    for run, record in zip(children, sorted(result.records, key=lambda r: r.number), strict=True):
        assert set(run.data.params) == {"n_hidden", "n_neurons", "learning_rate"}
        assert json.loads(run.data.params["n_hidden"]) == record.params["n_hidden"]
        assert run.data.tags["trial.state"] == record.state
        assert run.info.status == "FINISHED"
        # per-epoch curves are step metrics, one point per epoch run
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in history] == list(range(1, record.epochs_run + 1))
        assert len(client.get_metric_history(run.info.run_id, "loss")) == record.epochs_run
        assert run.data.metrics["objective_mse"] == pytest.approx(record.value)
        assert run.data.metrics["epochs_run"] == record.epochs_run
        assert run.data.metrics["duration_s"] > 0


def test_parent_run_holds_study_dataset_best_and_test_metrics(optuna_study):
    config, result, _ = optuna_study
    client = MlflowClient(config.mlflow.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search.n_trials"] == "4"
    assert "version.tensorflow" in parent.data.params and "version.mlflow" in parent.data.params
    assert parent.data.tags["dataset.name"] == "diabetes"
    assert json.loads(parent.data.tags["dataset.shapes"])["X_train"][1] == 10
    contexts = {d.dataset.name for d in parent.inputs.dataset_inputs}
    assert {"diabetes-train", "diabetes-validation", "diabetes-test"} <= contexts
    assert parent.data.metrics["best_valid_mse"] == pytest.approx(result.best.value)
    assert parent.data.metrics["test_mse"] == pytest.approx(result.test_metrics["mse"])
    assert parent.data.tags["best.trial"] == str(result.best.number)
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert "study.yaml" in artifacts
    assert parent.data.tags["model.uri"].startswith("models:/")


@pytest.fixture(scope="module")
def maximized_study(tmp_path_factory):
    """A study of a maximised metric (r2), beside the minimised mse of ``optuna_study``."""
    tmp = tmp_path_factory.mktemp("maximized_study")
    config = study_config(tmp, name="tiny-r2", search={"n_trials": 3, "metric": "r2"}, training={"epochs": 2})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # tested on optuna_study
        return config, run_study(config, quiet=True), tmp


@pytest.mark.parametrize("fixture, best_of", [("optuna_study", min), ("maximized_study", max)])
def test_best_is_the_best_finished_trial(request, fixture, best_of):
    """The best trial is the one of the lowest mse, of the highest r2, in the records, MLflow and Optuna."""
    config, result, _ = request.getfixturevalue(fixture)
    finished = [r for r in result.records if r.state == COMPLETE]
    assert len({r.value for r in finished}) >= 2  # distinct values: the wrong end is another trial
    expected = best_of(finished, key=lambda r: r.value)
    assert (result.best.number, result.best.value) == (expected.number, expected.value)
    parent = MlflowClient(config.mlflow.tracking_uri).get_run(result.parent_run_id)
    assert parent.data.tags["best.trial"] == str(expected.number)
    stored = optuna.load_study(study_name=config.name, storage=f"sqlite:///{config.export_dir / 'optuna.db'}")
    assert stored.best_trial.number == expected.number


def test_optuna_storage_matches_records(optuna_study):
    config, result, _ = optuna_study
    storage = f"sqlite:///{config.export_dir / 'optuna.db'}"
    study = optuna.load_study(study_name=config.name, storage=storage)
    assert len(study.trials) == 4
    assert study.best_trial.number == result.best.number
    assert study.best_value == pytest.approx(result.best.value)


def test_export_reloads_in_a_fresh_process_and_reproduces_the_test_score(optuna_study):
    config, result, _ = optuna_study
    export = config.export_dir
    for name in ("pipeline.joblib", "model.keras", "preprocessing.joblib", "best_params.json", "metrics.json"):
        assert (export / name).is_file(), name
    best = json.loads((export / "best_params.json").read_text())
    assert best["params"] == result.best.params
    code = (
        "import json, sys\n"
        "from sklearn.metrics import mean_squared_error\n"
        "from tuning.config.schema import load_study_dict\n"
        "from tuning.data.sources import load_dataset\n"
        "from tuning.export.files import load_model\n"
        f"cfg = load_study_dict(json.loads({json.dumps(json.dumps(config.model_dump(mode='json')))}))\n"
        "split = load_dataset(cfg.dataset)\n"
        f"model = load_model({str(export)!r})\n"
        "print(json.dumps(mean_squared_error(split.y_test, model.predict(split.X_test))))\n"
    )
    out = warm_python.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    reloaded_mse = json.loads(out.stdout.strip().splitlines()[-1])
    assert reloaded_mse == pytest.approx(result.test_metrics["mse"], rel=1e-5)
    saved = json.loads((export / "metrics.json").read_text())
    assert saved["test"]["mse"] == pytest.approx(result.test_metrics["mse"])


def test_mlflow_model_predicts_raw_rows(optuna_study):
    import mlflow.pyfunc

    config, result, _ = optuna_study
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    parent = MlflowClient(config.mlflow.tracking_uri).get_run(result.parent_run_id)
    model = mlflow.pyfunc.load_model(parent.data.tags["model.uri"])
    from tuning.data.sources import load_dataset

    split = load_dataset(config.dataset)
    pred = np.asarray(model.predict(split.frame("test").head(20)))  # named columns, as the signature lists
    assert pred.shape[0] == 20
    assert model.metadata.signature.inputs.input_names() == split.feature_names
    import mlflow.sklearn  # the bare pipeline (no MLflow schema check) also takes a float64 array

    bare = mlflow.sklearn.load_model(parent.data.tags["model.uri"])
    np.testing.assert_allclose(bare.predict(np.asarray(split.X_test[:20], dtype=np.float64)), pred, rtol=1e-5)


def test_random_backend_with_cross_validation_logs_fold_scores(tmp_path, monkeypatch):
    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # tested on optuna_study
    config = study_config(
        tmp_path, name="tiny-random", search={"backend": "random", "n_trials": 2, "cv": 3},
        training={"epochs": 3},
    )
    result = run_study(config, quiet=True)
    assert len(result.records) == 2 and all(r.state == COMPLETE for r in result.records)
    client = MlflowClient(config.mlflow.tracking_uri)
    children = child_runs(client, result.parent_run_id)
    assert len(children) == 2
    for run, record in zip(children, result.records, strict=True):
        folds = [run.data.metrics[f"fold_{i}_mse"] for i in range(3)]
        assert np.mean(folds) == pytest.approx(record.value)
        assert len(record.fold_scores) == 3
    assert result.test_metrics["mse"] > 0
    assert (config.export_dir / "pipeline.joblib").is_file()


def test_failed_and_pruned_trials_are_recorded_as_such(tmp_path, monkeypatch):
    """A diverging learning rate fails with a reason; a bad trial under successive halving is pruned."""
    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # tested on optuna_study
    config = study_config(
        tmp_path, name="tiny-states",
        model={"optimizer": "sgd"},
        space={"learning_rate": {"type": "categorical", "choices": [1e-5, 3e-3, 1.0e3]},
               "n_neurons": {"type": "int", "low": 8, "high": 8}},
        search={"n_trials": 8, "sampler": "random", "pruner": "successive_halving"},
        training={"epochs": 20, "early_stopping": {"enabled": False}},
    )
    result = run_study(config, quiet=True)
    states = {r.state for r in result.records}
    assert FAILED in states and PRUNED in states and COMPLETE in states
    client = MlflowClient(config.mlflow.tracking_uri)
    runs = {int(r.data.tags["trial.number"]): r for r in child_runs(client, result.parent_run_id)}
    storage = optuna.load_study(study_name=config.name, storage=f"sqlite:///{config.export_dir / 'optuna.db'}")
    optuna_state = {t.number: t.state.name for t in storage.trials}
    for record in result.records:
        run = runs[record.number]
        assert run.data.tags["trial.state"] == record.state
        if record.state == FAILED:
            assert record.params["learning_rate"] == 1.0e3
            assert "NaN" in run.data.tags["trial.reason"]
            assert run.info.status == "FAILED"
            assert optuna_state[record.number] == "FAIL"
            assert record.epochs_run < 20
        elif record.state == PRUNED:
            assert run.info.status == "FINISHED"
            assert optuna_state[record.number] == "PRUNED"
            assert record.epochs_run < 20
        else:
            assert optuna_state[record.number] == "COMPLETE"


def test_per_epoch_values_of_a_standardised_target_are_in_the_target_units(tmp_path):
    """Pruners and pruned trials see the validation MSE in the target's units, not standardised units."""
    from tuning.data.sources import load_dataset
    from tuning.records import PruneTrial
    from tuning.search.trial.runner import make_runner

    config = study_config(tmp_path, preprocessing={"target_scaling": "standard"})
    runner = make_runner(config, load_dataset(config.dataset))
    assert runner.data.standardize_target and np.std(runner.data.y_train) > 10  # diabetes: y around 150 +- 77
    reported = []

    def report(epoch, value):
        reported.append(value)
        if epoch == 2:
            raise PruneTrial()

    params = {"n_hidden": 1, "n_neurons": 8, "learning_rate": 0.01}
    pruned = runner.run(0, params, report)
    complete = runner.run(1, params)
    assert pruned.state == PRUNED and len(reported) == 3
    assert pruned.value == pytest.approx(reported[-1])
    # Both in squared target units: the same order of magnitude (standardised values would be ~6,000x smaller).
    assert 0.1 < pruned.value / complete.value < 10
