"""Divergence is a result, never silent: a trial whose validation predictions become NaN or infinite fails
with the epoch; a retrained ensemble member that diverges is dropped (the others' weights renormalised, a
note in best_params.json and on the MLflow parent run); a diverging retrain of a lone best model gives way
to the trial's own model; when nothing finite is left, the command exits 1 with the reason and the parent
run is FAILED. No Keras line on stdout on the way."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow import MlflowClient

import tuning.export.ensembling as ensembling
from tests.helpers import no_pictures, study_config, write_study
from tuning.cli.run import main
from tuning.config.schema import load_study
from tuning.data.sources import load_dataset
from tuning.export.files import load_model
from tuning.records import COMPLETE, FAILED
from tuning.search.trial.runner import make_runner
from tuning.tracking import runlayout as layout

TRAINING = {"epochs": 3, "batch_size": 32, "early_stopping": {"patience": 3}}
SPACE = {"n_hidden": {"type": "int", "low": 1, "high": 1}, "n_neurons": {"type": "int", "low": 4, "high": 8},
         "learning_rate": {"type": "float", "low": 3e-3, "high": 1e-2, "log": True}}


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    import tuning.report.html as report_html

    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # slow; tested in test_study
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)


POISSON = """
import keras


def build_model(learning_rate=0.01, input_shape=None):  # a Poisson regression: exp of a linear function
    model = keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(1, activation="exponential")])
    model.compile(loss="poisson", optimizer=keras.optimizers.Adam(learning_rate))
    return model
"""


def test_validation_predictions_that_become_infinite_fail_the_trial_with_the_epoch(tmp_path, capsys):
    """Training rows are fine; two validation rows far out (+-1e4 in every feature) make exp overflow: the
    trial fails at its first epoch (not after its last), with the reason and the epoch; nothing is printed."""
    (tmp_path / "poisson_factory.py").write_text(POISSON)
    config = study_config(tmp_path, model={"build": f"{tmp_path / 'poisson_factory.py'}:build_model"},
                          training=TRAINING, space={"learning_rate": SPACE["learning_rate"]},
                          preprocessing={"target_scaling": "none"})
    runner = make_runner(config, load_dataset(config.dataset))
    runner.data.X_valid = runner.data.X_valid.copy()
    runner.data.X_valid[:2] = [[1e4], [-1e4]]
    record = runner.run(0, {"learning_rate": 0.01})
    assert record.state == FAILED and record.epochs_run == 1 and len(record.history["loss"]) == 1
    assert record.reason == "FloatingPointError: validation predictions became NaN or infinite at epoch 1"
    assert capsys.readouterr().out == ""


def test_a_retrained_ensemble_member_that_diverges_is_dropped(tmp_path, monkeypatch):
    path = write_study(tmp_path, name="drop-member", space=SPACE, training=TRAINING,
                       search={"n_trials": 3, "sampler": "random"},
                       export={"train_on": "train+valid", "ensemble": {"method": "top_k", "size": 3}})
    config = load_study(path)
    fit_again, order = ensembling._fit_again, []

    def retrain(estimator, epochs, rates, X, y):  # the first member retrained (the best trial) diverges
        if not order:
            estimator.set_params(optimizer="sgd", learning_rate=1e12)
            rates = [1e12] * len(rates)
        order.append(estimator)
        return fit_again(estimator, epochs, rates, X, y)

    monkeypatch.setattr(ensembling, "_fit_again", retrain)
    monkeypatch.chdir(tmp_path)
    assert main([str(path), "--quiet"]) == 0
    best = json.loads((config.export_dir / "best_params.json").read_text())
    ensemble = best["ensemble"]
    assert len(order) == 3 and len(ensemble["members"]) == 2 and len(ensemble["dropped"]) == 1
    dropped = ensemble["dropped"][0]["trial"]
    assert dropped == best["trial"] and dropped not in [m["trial"] for m in ensemble["members"]]
    assert sum(m["weight"] for m in ensemble["members"]) == pytest.approx(1.0)
    assert "NaN" in ensemble["dropped"][0]["reason"] and f"trial {dropped} dropped" in best["notes"][0]

    split = load_dataset(config.dataset)
    pipeline = load_model(config.export_dir)
    assert len(pipeline.named_steps["model"].estimators_) == 2
    assert np.isfinite(pipeline.predict(split.X_valid)).all() and np.isfinite(pipeline.predict(split.X_test)).all()
    client = MlflowClient(config.mlflow.tracking_uri)
    parent = client.search_runs([client.get_experiment_by_name(config.experiment_name).experiment_id],
                                filter_string=f"tags.`{layout.ROLE}` = '{layout.ROLE_STUDY}'")[0]
    assert parent.info.status == "FINISHED" and f"trial {dropped} dropped" in parent.data.tags[layout.EXPORT_NOTES]
    assert parent.data.tags["ensemble_members"].count(":") == 2


def diverge_every_retrain(monkeypatch) -> None:
    """Every retrain on training + validation rows runs SGD at a learning rate of 1e12: its loss becomes NaN
    (a real divergence of a real fit, injected into the retrain only)."""
    fit_again = ensembling._fit_again
    monkeypatch.setattr(ensembling, "_fit_again", lambda est, epochs, rates, X, y: fit_again(
        est.set_params(optimizer="sgd", learning_rate=1e12), epochs, [1e12] * len(rates), X, y))


def test_a_lone_best_model_whose_retrain_diverges_is_exported_as_trained_on_the_training_rows(tmp_path, monkeypatch):
    path = write_study(tmp_path, name="lone-fallback", space=SPACE, training=TRAINING,
                       search={"n_trials": 1}, export={"train_on": "train+valid"})
    config = load_study(path)
    diverge_every_retrain(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main([str(path), "--quiet"]) == 0
    best = json.loads((config.export_dir / "best_params.json").read_text())
    assert "retrained on the training + validation rows diverged" in best["notes"][0]
    split = load_dataset(config.dataset)
    assert np.isfinite(load_model(config.export_dir).predict(split.X_valid)).all()


def test_an_ensemble_whose_every_member_diverges_exits_1_and_fails_the_parent_run(tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path, name="all-diverge", space=SPACE, training=TRAINING,
                       search={"n_trials": 2, "sampler": "random"},
                       export={"train_on": "train+valid", "ensemble": {"method": "top_k", "size": 2}})
    config = load_study(path)
    diverge_every_retrain(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main([str(path), "--quiet"]) == 1
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "every member of the ensemble" in err and "diverged" in err and "Traceback" not in err
    assert captured.out == ""
    assert not (config.export_dir / "pipeline.joblib").exists()
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment_name).experiment_id
    parent = client.search_runs([experiment], filter_string=f"tags.`{layout.ROLE}` = '{layout.ROLE_STUDY}'")[0]
    assert parent.info.status == "FAILED" and "every member of the ensemble" in parent.data.tags[layout.STUDY_REASON]
    trials = client.search_runs([experiment], filter_string=layout.children_filter(parent.info.run_id))
    assert [r.data.tags[layout.TRIAL_STATE] for r in trials] == [COMPLETE, COMPLETE]
    assert not [r for r in client.search_runs([experiment]) if r.info.status == "RUNNING"]


def test_test_metrics_never_drop_a_metric_for_non_finite_predictions():
    """A metric that cannot be computed (a class missing from the test rows) is left out; predictions that
    are NaN never are: they raise, so an export cannot end with an empty test score and exit 0."""
    from types import SimpleNamespace

    from tuning.export.files import test_metrics

    y = np.array([0.0, 1.0, 2.0])
    nan = SimpleNamespace(predict=lambda X: np.array([0.0, np.nan, 1.0]))
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        test_metrics(nan, np.zeros((3, 1)), y, "mse", "regression")
    fine = SimpleNamespace(predict=lambda X: y + 1.0)
    assert test_metrics(fine, np.zeros((3, 1)), y, "mse", "regression")["mse"] == pytest.approx(1.0)
