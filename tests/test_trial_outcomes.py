"""What a trial leaves behind: complete trials' fitted models go to the keeper, which the export asks instead
of training again; an interrupted trial is killed. (A pruned trial's one value in the study store, MLflow and
the report, for every metric and kind of model: tests/test_true_values.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import study_config
from tuning.export.ensembling import fitted_estimator
from tuning.records import COMPLETE, PRUNED, TrialRecord
from tuning.search.trial.keeper import ModelKeeper
from tuning.search.trial.runner import make_runner

# ---- the keeper ---------------------------------------------------------------------------------------


def finished(number: int, value: float) -> TrialRecord:
    return TrialRecord(number, {}, state=COMPLETE, value=value)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_keeper_holds_the_best_models_ranked_as_the_export_ranks_them(direction):
    keeper = ModelKeeper(direction, size=2)
    values = {0: 3.0, 1: 1.0, 2: 2.0, 3: 1.0, 4: 5.0}
    for number, value in values.items():
        keeper.offer(finished(number, value), f"model-{number}")
    best_first = sorted(values, key=lambda n: (values[n] if direction == "minimize" else -values[n], n))
    assert keeper.numbers == best_first[:2] and keeper.best_number == best_first[0]
    assert [keeper.get(n) for n in best_first] == [f"model-{n}" for n in best_first[:2]] + [None] * 3
    assert len(keeper) == 2 and best_first[2] not in keeper


def test_the_keeper_refuses_what_is_not_a_finished_model():
    keeper = ModelKeeper("minimize", size=3)
    assert not keeper.offer(TrialRecord(0, {}, state=PRUNED, value=0.1), "pruned")
    assert not keeper.offer(finished(1, float("nan")), "nan")
    assert not keeper.offer(finished(2, 1.0), None)
    assert keeper.offer(finished(3, 1.0), "model") and keeper.numbers == [3]
    with pytest.raises(ValueError, match="direction"):
        ModelKeeper("min")


def test_the_export_asks_the_keeper_and_refits_only_what_it_does_not_hold():
    fits = []

    class Estimator:
        def fit(self, X, y, validation_data=None):
            fits.append(len(X))
            return self

    data = SimpleNamespace(X_train=np.zeros((5, 2)), y_train=np.zeros(5), X_valid=np.zeros((2, 2)), y_valid=np.zeros(2))
    runner = SimpleNamespace(data=data, make_estimator=lambda params: Estimator())
    keeper = ModelKeeper("minimize", size=1)
    kept = object()
    keeper.offer(finished(0, 1.0), kept)
    assert fitted_estimator(runner, finished(0, 1.0), keeper) is kept and fits == []
    refit = fitted_estimator(runner, finished(1, 2.0), keeper)
    assert isinstance(refit, Estimator) and fits == [5]
    assert isinstance(fitted_estimator(runner, finished(0, 1.0)), Estimator) and fits == [5, 5]  # no keeper


@pytest.fixture(scope="module")
def diabetes_runners(tmp_path_factory):
    """metric -> a TrialRunner of a tiny diabetes study (target standardised for training)."""
    from tuning.data.sources import load_dataset

    runners, split = {}, None
    for metric in ("mse", "rmse", "r2"):
        config = study_config(tmp_path_factory.mktemp(metric), search={"metric": metric},
                              training={"epochs": 6, "early_stopping": {"patience": 10}})
        split = split or load_dataset(config.dataset)
        runners[metric] = make_runner(config, split)
    return runners


@pytest.mark.parametrize("metric", ["mse", "rmse", "r2"])
def test_the_per_epoch_value_is_the_metric_the_finished_model_scores(diabetes_runners, metric):
    """For these metrics the value a pruner sees after an epoch is the metric itself on the validation rows
    (not a stand-in): the finished trial (best epoch's weights restored) scores the value its best epoch
    reported."""
    runner = diabetes_runners[metric]
    reported: list[float] = []
    outcome = runner.run_trial(0, {"n_hidden": 1, "n_neurons": 8, "learning_rate": 0.01},
                               lambda epoch, value: reported.append(value))
    assert outcome.record.state == COMPLETE and len(reported) == 6
    best = reported[outcome.estimator.best_epoch_ - 1]
    assert outcome.record.value == pytest.approx(best, rel=1e-4, abs=1e-5)
    assert len(set(reported)) > 1  # the epochs differ, so the match is not a coincidence of a flat curve


def test_an_interrupt_ends_the_trial_as_killed_even_when_keras_cannot_clear_its_session(diabetes_runners,
                                                                                         monkeypatch):
    """Ctrl-C can land while Keras traces a graph, where ``clear_session`` raises; the interrupt must still
    reach the command (exit 130), with the trial marked killed."""
    import keras

    def cannot_clear(*args, **kwargs):
        raise AssertionError("Do not use tf.reset_default_graph() to clear nested graphs.")

    runner = diabetes_runners["mse"]
    ended: list[TrialRecord] = []
    runner.observers = [SimpleNamespace(portable=False, on_trial_start=lambda number, params: None,
                                        on_trial_end=ended.append)]
    monkeypatch.setattr(keras.backend, "clear_session", cannot_clear)

    def interrupt(epoch, value):
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(1, {"n_hidden": 1, "n_neurons": 4, "learning_rate": 0.01}, interrupt)
    finally:
        runner.observers = []
    assert [r.state for r in ended] == ["killed"] and ended[0].reason == "interrupted by the user"


def test_keras_state_is_cleared_once_nothing_holds_the_trials_model(diabetes_runners, monkeypatch):
    """Cleared while the fitted model still lives, its traced functions outlive the clearing (and are freed
    inside the next trial): RSS grew ~7 MB more over 90 trials of benchmarks/memory.py than when the model
    is gone first."""
    import gc
    import weakref

    runner = diabetes_runners["mse"]
    made: list[weakref.ref] = []
    alive_at_clearing: list[bool] = []
    make_estimator, release_memory = runner.make_estimator, runner.release_memory

    def tracked(params):
        estimator = make_estimator(params)
        made.append(weakref.ref(estimator))
        return estimator

    def checked():
        gc.collect()
        alive_at_clearing.append(made[-1]() is not None)
        release_memory()

    monkeypatch.setattr(runner, "make_estimator", tracked)
    monkeypatch.setattr(runner, "release_memory", checked)
    record = runner.run(0, {"n_hidden": 1, "n_neurons": 8, "learning_rate": 0.01})
    assert record.state == COMPLETE and made
    assert alive_at_clearing == [False]


def test_greedy_selection_loss_takes_float32_probabilities_without_a_warning():
    """Float32 class probabilities sum to one only within ~1e-7; the ensemble's log loss uses them silently
    (sklearn warns once per greedy step otherwise) and scores them as the normalised float64 rows."""
    import warnings

    from sklearn.metrics import log_loss

    from tuning.export.ensembling import _validation_loss

    rng = np.random.default_rng(0)
    raw = rng.random((50, 3))
    proba = (raw / raw.sum(axis=1, keepdims=True)).astype(np.float32) * np.float32(1.0000003)
    labels = rng.integers(0, 3, size=50)
    loss = _validation_loss(SimpleNamespace(task="multiclass", data=SimpleNamespace(y_valid=labels)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss(proba, labels=[0, 1, 2])
    exact = proba.astype(np.float64) / proba.astype(np.float64).sum(axis=1, keepdims=True)
    assert value == pytest.approx(log_loss(labels, exact, labels=[0, 1, 2]), rel=1e-12)
