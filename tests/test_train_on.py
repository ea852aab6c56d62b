"""export.train_on: train+valid (each exported model trained again on training + validation rows, for its
trial's best epoch count at its trial's learning rates), the validation outputs a complete trial keeps for
ensemble selection, and search.workers in the study file."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest

from estimators.common.ensemble import AveragingRegressor
from tests.helpers import run_study_without_model_logging, study_dict, write_study
from tests.resume_helpers import without_charts
from tuning.config.schema import load_study, load_study_dict
from tuning.data.sources import load_dataset
from tuning.errors import StudyError
from tuning.export.ensembling import retrained_estimator, stored_output
from tuning.export.files import load_model
from tuning.records import COMPLETE, TrialRecord, decode_output, encode_output
from tuning.search.trial.runner import make_runner

PLATEAU = {"optimizer": "adam", "lr_schedule": "plateau"}
TRAINING = {"epochs": 12, "batch_size": 32, "early_stopping": {"patience": 4}}


def test_a_stored_output_round_trips_exactly_as_float32():
    output = np.random.default_rng(0).normal(size=(7, 3))
    stored = json.loads(json.dumps(encode_output(output)))  # what a study store keeps
    back = decode_output(stored)
    assert back.shape == (7, 3) and back.dtype == np.float32
    np.testing.assert_array_equal(back, output.astype(np.float32))
    assert decode_output(None) is None


def test_a_retrained_model_replays_its_trials_epochs_and_learning_rates_on_all_rows(tmp_path):
    config = load_study(write_study(tmp_path, model=PLATEAU, training=TRAINING,
                                    export={"ensemble": {"size": 3, "candidates": 2}}))
    split = load_dataset(config.dataset)
    runner = make_runner(config, split)
    outcome = runner.run_trial(0, {"n_hidden": 1, "n_neurons": 8, "learning_rate": 0.03})
    record, trained = outcome.record, outcome.estimator
    assert record.state == COMPLETE and trained is not None
    assert record.best_epoch == trained.best_epoch_ >= 1
    assert record.learning_rates == pytest.approx(trained.history_["learning_rate"][: record.best_epoch])
    np.testing.assert_allclose(record.valid_output, trained.predict(runner.data.X_valid), rtol=1e-6, atol=1e-6)

    again = retrained_estimator(runner, record)
    assert again.n_epochs_ == record.best_epoch and "val_loss" not in again.history_
    assert again.history_["learning_rate"] == pytest.approx(record.learning_rates)
    rows = len(runner.data.X_train) + len(runner.data.X_valid)
    steps = int(again.model_.optimizer.iterations.numpy())
    assert steps == record.best_epoch * math.ceil(rows / 32)  # every epoch saw all rows, nothing held out
    assert not np.allclose(again.predict(runner.data.X_valid), trained.predict(runner.data.X_valid))


@pytest.fixture(scope="module")
def ensemble_study(tmp_path_factory):
    """One train+valid greedy-ensemble study (4 trials), shared: (study file, result, export dir)."""
    tmp = tmp_path_factory.mktemp("ensemble")
    path = write_study(tmp, model=PLATEAU, training=TRAINING, search={"n_trials": 4},
                       export={"ensemble": {"method": "greedy", "size": 6, "candidates": 3}, "train_on": "train+valid",
                               "baseline": True})
    with without_charts():
        result = run_study_without_model_logging(path, tmp)
    return path, result, tmp / "out"


def test_a_study_exports_an_ensemble_retrained_on_training_and_validation_rows(ensemble_study):
    path, result, out = ensemble_study
    info = json.loads((out / "best_params.json").read_text())["ensemble"]
    by_number = {r.number: r for r in result.records}
    ensemble = load_model(out).named_steps["model"]
    assert isinstance(ensemble, AveragingRegressor)
    assert len(ensemble.estimators_) == len(info["members"])
    for member, chosen in zip(ensemble.estimators_, info["members"], strict=True):
        record = by_number[chosen["trial"]]
        assert member.n_epochs_ == record.best_epoch >= 1
        assert member.history_["learning_rate"] == pytest.approx(record.learning_rates)
    # the reported validation score is the trials' own models' (stored outputs), not the retrained ones'
    outputs = np.stack([by_number[m["trial"]].valid_output for m in info["members"]]).astype(np.float64)
    averaged = np.tensordot([m["weight"] for m in info["members"]], outputs, axes=1)
    y_valid = load_dataset(load_study(path).dataset).y_valid
    assert info["valid_mse"] == pytest.approx(float(np.mean((averaged - y_valid) ** 2)), rel=1e-5)


def test_the_random_backend_keeps_outputs_for_a_retrained_single_best_model(tmp_path):
    path = write_study(tmp_path, model=PLATEAU, training=TRAINING, search={"backend": "random", "n_trials": 2},
                       export={"train_on": "train+valid", "ensemble": {"method": "top_k", "size": 2}})
    with without_charts():
        result = run_study_without_model_logging(path, tmp_path)
    done = [r for r in result.records if r.state == COMPLETE]
    assert done and all(r.best_epoch >= 1 and r.valid_output is not None for r in done)  # read back from its file
    members = load_model(tmp_path / "out").named_steps["model"].estimators_
    assert sorted(m.n_epochs_ for m in members) == sorted(r.best_epoch for r in done)


def test_train_on_train_valid_needs_a_validation_set(tmp_path):
    data = study_dict(tmp_path, search={"cv": 3}, export={"train_on": "train+valid"})
    with pytest.raises(StudyError, match=r"export\.train_on.*cv: validation"):
        load_study_dict(data, "study.yaml")


def test_search_workers_in_the_study_starts_helpers(tmp_path, monkeypatch):
    import tuning.study

    started = []
    real = tuning.study.start_helpers
    monkeypatch.setattr(tuning.study, "start_helpers",
                        lambda config, store, workers, *rest: started.append(workers) or real(config, store, workers, *rest))
    path = write_study(tmp_path, search={"n_trials": 2, "workers": 2})
    with without_charts():
        result = run_study_without_model_logging(path, tmp_path)
    assert started == [2] and len(result.records) == 2


def test_another_process_selects_the_same_ensemble_from_the_stored_trials(ensemble_study):
    """The exporting process may not have trained a member (a helper did): selection reads the outputs
    the study store keeps, and the members are retrained from their records alone."""
    path, _, out = ensemble_study
    exported = json.loads((out / "best_params.json").read_text())["ensemble"]
    config = load_study(path)
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'optuna.db'}")
    complete = [t for t in optuna.load_study(study_name="tiny", storage=storage).trials
                if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all("valid_output" in t.user_attrs and t.user_attrs["best_epoch"] >= 1 for t in complete)

    from tuning.export.ensembling import build_ensemble
    from tuning.search.store.budget import to_record

    fresh = make_runner(config, load_dataset(config.dataset))  # trained nothing, no keeper: all retrained
    ensemble, info = build_ensemble(fresh, [to_record(t, "mse") for t in complete], config.export.ensemble,
                                    train_on=config.export.train_on)
    assert info == exported
    assert len(ensemble.estimators_) == len(exported["members"])


def test_members_retrained_in_two_processes_are_the_same_models(tmp_path):
    config = load_study(write_study(tmp_path, model=PLATEAU, training=TRAINING,
                                    export={"ensemble": {"size": 3, "candidates": 2}}))
    runner = make_runner(config, load_dataset(config.dataset))
    records = [runner.run(i, {"n_hidden": 1, "n_neurons": n, "learning_rate": 0.02}) for i, n in enumerate((4, 8))]
    from tuning.export.ensembling import retrained_estimators

    apart = retrained_estimators(runner, records, n_jobs=2)  # loky processes, models pickled back
    here = retrained_estimators(runner, records, n_jobs=1)
    X_valid = runner.data.X_valid
    for a, h, record in zip(apart, here, records, strict=True):
        assert a.n_epochs_ == h.n_epochs_ == record.best_epoch
        assert a.history_["learning_rate"] == pytest.approx(record.learning_rates)
        assert np.corrcoef(a.predict(X_valid), h.predict(X_valid))[0, 1] > 0.999


def test_the_summary_names_the_exported_ensemble_and_a_baseline_with_one_value_everywhere(ensemble_study):
    """metrics.json, the parent run and report.html show the same baseline scores (HistGradientBoosting on
    the same rows, recomputed here) and the exported ensemble's members, weights and validation score."""
    from mlflow import MlflowClient

    from tuning.export.baseline import fit_baseline

    path, result, out = ensemble_study
    stored = json.loads((out / "metrics.json").read_text())["baseline"]
    config = load_study(path)
    split = load_dataset(config.dataset)
    again = fit_baseline(make_runner(config, split), split, seed=config.search.seed)
    assert stored["model"] == "HistGradientBoosting" and stored["fit_s"] > 0
    assert stored["test"] == pytest.approx(again.test, rel=1e-9)
    parent = MlflowClient(result.tracking_uri).get_run(result.parent_run_id)
    for name, value in stored["test"].items():
        assert parent.data.metrics[f"baseline_test_{name}"] == pytest.approx(value, rel=1e-12)
    html = result.report_path.read_text()
    assert f"test mse {stored['test']['mse']:.4g}" in html and "HistGradientBoosting" in html
    members = json.loads((out / "best_params.json").read_text())["ensemble"]["members"]
    listed = ", ".join(f"trial {m['trial']} (weight {m['weight']:.3g})" for m in members)
    assert f"ensemble of {len(members)}: {listed}" in html


def test_stored_class_probabilities_are_rows_that_sum_to_one_for_log_loss():
    """A trial keeps its validation probabilities in float32; read back for the ensemble's greedy selection and
    its reported validation score, each row sums to one in float64, so log_loss neither warns nor scores
    rows that are not probabilities (seen on credit-g: rows off one by 2.7e-8)."""
    import warnings

    from sklearn.metrics import log_loss

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(500, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    record = TrialRecord(number=0, params={}, state=COMPLETE, value=0.5, valid_output=proba.astype(np.float32))
    y = rng.integers(0, 3, size=500)
    raw = np.asarray(record.valid_output, dtype=np.float64)
    assert np.abs(raw.sum(axis=1) - 1).max() > np.sqrt(np.finfo(np.float64).eps)  # what log_loss warns about
    read = stored_output(record, regression=False)
    np.testing.assert_allclose(read.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(read, proba, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert log_loss(y, read, labels=[0, 1, 2]) == pytest.approx(log_loss(y, proba, labels=[0, 1, 2]), rel=1e-6)
    values = rng.normal(size=50).astype(np.float32)
    regression = TrialRecord(number=1, params={}, state=COMPLETE, value=0.5, valid_output=values)
    np.testing.assert_array_equal(stored_output(regression, regression=True), values.astype(np.float64))
