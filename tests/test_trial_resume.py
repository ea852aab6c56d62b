"""Trials that resume mid-way (tuning/search/trial/resume.py, estimators/common/checkpoint.py): a fit's
checkpoint keeps its weights, optimizer, epoch, early stopping and schedule; a resumed fit ends as the
uninterrupted one; a study killed with ``kill -9`` mid-trial goes on from the trial's last checkpoint in
the trial's one MLflow run, and leaves no checkpoint behind."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap

import keras
import numpy as np
import pytest

from estimators import KerasMLPRegressor, KerasModelRegressor
from estimators.common.checkpoint import CheckpointMismatch, FitCheckpoint, read_checkpoint, write_checkpoint
from tests.helpers import study_config
from tests.resume_helpers import load_trials, mlflow_db, start, wait_for, without_charts, write_study
from tuning.records import COMPLETE, PRUNED, PruneTrial
from tuning.search.trial.resume import FOLDER, Attempt


class StopAt(keras.callbacks.Callback):
    """Ctrl-C at the end of epoch ``epoch`` (1-based), before the checkpoint of that epoch is written."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def rows(seed=0, n=240):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype("float32")
    return X, X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 * rng.normal(size=n)


def interrupted_then_resumed(make, path, stop_at: int, every: int):
    """An uninterrupted fit, and a fit stopped at ``stop_at`` then resumed from its checkpoint."""
    X, y = rows()
    Xv, yv = rows(1, 80)
    whole = make().fit(X, y, validation_data=(Xv, yv))
    with pytest.raises(KeyboardInterrupt):
        make().fit(X, y, validation_data=(Xv, yv), callbacks=[FitCheckpoint(path, every_epochs=every), StopAt(stop_at)])
    state = read_checkpoint(path)
    resumed = make().fit(X, y, validation_data=(Xv, yv), callbacks=[FitCheckpoint(path, every_epochs=every, resume=state)])
    return whole, state, resumed


def assert_same_fit(whole, resumed):
    assert resumed.n_epochs_ == whole.n_epochs_ and resumed.best_epoch_ == whole.best_epoch_
    for key in whole.history_:
        np.testing.assert_allclose(resumed.history_[key], whole.history_[key], rtol=0, atol=0)
    for a, b in zip(whole.model_.get_weights(), resumed.model_.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=0)


@contextlib.contextmanager
def epochs_trained(runner):
    """The epochs ``runner`` trains inside the block (0-based, in order), as a list filled while it runs."""
    trained, hook = [], runner.epoch_hook

    def counting(record, report, reported):
        on_epoch = hook(record, report, reported)
        return lambda epoch, logs: trained.append(epoch) or on_epoch(epoch, logs)

    runner.epoch_hook = counting
    try:
        yield trained
    finally:
        del runner.epoch_hook


def test_a_resumed_fit_keeps_early_stopping_and_the_schedule_and_ends_as_the_uninterrupted_one(tmp_path):
    """Adam, dropout, a plateau schedule and early stopping with best weights restored: the checkpoint at
    epoch 9 (its best epoch 8 before it, early stopping's count started) holds early stopping's wait, best
    value, best epoch and best weights and the schedule's state; the fit resumed from it stops at the same
    epoch (12) with the same (best epoch's) weights, curves and learning rates."""
    def make():
        return KerasMLPRegressor(n_hidden=2, n_neurons=16, optimizer="adam", learning_rate=0.03, dropout=0.2,
                                 lr_schedule="plateau", patience=4, epochs=60, batch_size=32, random_state=3)

    whole, state, resumed = interrupted_then_resumed(make, tmp_path / "fit.npz", stop_at=11, every=3)
    assert state.epochs == 9 and 9 < whole.n_epochs_ < 60  # resumed before early stopping ended it
    stopping = state.callbacks["EarlyStopping"]
    val_loss = np.asarray(state.history["val_loss"])
    assert stopping["best"] == pytest.approx(val_loss.min()) and stopping["best_epoch"] == int(val_loss.argmin())
    assert 0 < stopping["wait"] == 9 - 1 - int(val_loss.argmin())  # the best epoch before the checkpoint
    assert state.best_weights is not None and len(state.best_weights) == len(whole.model_.get_weights())
    assert set(state.callbacks["ReduceLROnPlateau"]) == {"wait", "best", "cooldown_counter"}
    assert_same_fit(whole, resumed)


def test_a_users_factory_resumes_and_a_checkpoint_of_another_network_is_refused(tmp_path):
    def make(n_neurons=8):
        return KerasModelRegressor(build="tests.factories:small_network", n_neurons=n_neurons, epochs=10,
                                   early_stopping=False, batch_size=32, random_state=5)

    whole, state, resumed = interrupted_then_resumed(make, tmp_path / "fit.npz", stop_at=5, every=2)
    assert state.epochs == 4
    assert_same_fit(whole, resumed)
    X, y = rows()
    with pytest.raises(CheckpointMismatch):
        make(n_neurons=9).fit(X, y, callbacks=[FitCheckpoint(tmp_path / "x.npz", resume=state)])


def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path):
    from estimators.common.checkpoint import FitState

    path = tmp_path / "c" / "trial-0.npz"
    write_checkpoint(path, FitState(3, [np.ones(2)], [np.zeros(1)], extra={"a": [1.0, float("nan")]}))
    first = path.read_bytes()
    with pytest.raises(TypeError):  # fails while writing: the earlier checkpoint stays, no temporary left
        write_checkpoint(path, FitState(4, [np.ones(2)], [], extra={"a": object()}))
    assert path.read_bytes() == first and sorted(p.name for p in path.parent.iterdir()) == ["trial-0.npz"]
    state = read_checkpoint(path)
    assert state.epochs == 3 and np.isnan(state.extra["a"][1]) and state.best_weights is None
    path.write_bytes(b"not a checkpoint")
    assert read_checkpoint(path) is None and read_checkpoint(tmp_path / "none.npz") is None


# ---- a trial ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    """checkpoints on / off -> a runner of a tiny diabetes study (12 epochs, no early stopping)."""
    from tuning.data.sources import load_dataset
    from tuning.search.trial.runner import make_runner

    made, split = {}, None
    for checkpoint in (True, False):
        config = study_config(tmp_path_factory.mktemp("runner"), search={
            "checkpoint": {"every_epochs": 3, "every_s": None} if checkpoint else False},
            model={"optimizer": "adam", "dropout": 0.1},
            training={"epochs": 12, "batch_size": 32, "early_stopping": {"enabled": False}})
        split = split or load_dataset(config.dataset)
        made[checkpoint] = make_runner(config, split)
        made[checkpoint].out_dir = config.export_dir  # (for the test's eyes only)
    return made


PARAMS = {"n_hidden": 1, "n_neurons": 8, "learning_rate": 0.01}


def test_a_retried_trial_goes_on_from_its_first_attempts_checkpoint(runners):
    """Attempt 0 stopped by Ctrl-C after epoch 8 keeps its checkpoint (epoch 6); its retry (trial 1) trains
    epochs 7-12 only, is told the first six values again (the pruner sees the whole curve), ends with the
    uninterrupted trial's curves and weights, and removes the checkpoint."""
    runner = runners[True]
    path = runner.settings.checkpoint.path(Attempt(0))
    whole = runner.run_trial(5, PARAMS)
    assert whole.record.state == COMPLETE and not path.exists()  # a trial that ends takes its checkpoint away

    def stop_after_8(epoch, value):
        if epoch + 1 == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(0, PARAMS, report=stop_after_8)
    assert read_checkpoint(path).epochs == 6  # kept for the retry

    told = []
    with epochs_trained(runner) as trained:
        retry = runner.run_trial(1, PARAMS, report=lambda epoch, value: told.append((epoch, value)),
                                 attempt=Attempt(1, (0,)))
    record = retry.record
    assert trained == list(range(6, 12)) and [e for e, _ in told] == list(range(12))
    assert record.state == COMPLETE and record.epochs_run == 12 and not path.exists()
    for key, values in whole.record.history.items():
        np.testing.assert_allclose(record.history[key], values, rtol=0, atol=0)
    assert record.value == whole.record.value
    for a, b in zip(whole.estimator.model_.get_weights(), retry.estimator.model_.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=0)


def test_a_first_attempt_never_resumes_and_a_pruned_retry_leaves_nothing(runners):
    runner = runners[True]
    path = runner.settings.checkpoint.path(Attempt(7))

    def stop_after_5(epoch, value):
        if epoch + 1 == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(7, PARAMS, report=stop_after_5)
    assert read_checkpoint(path).epochs == 3
    first = runner.run(7, PARAMS)  # a first attempt of that number (an earlier study's file): from epoch 0
    assert first.state == COMPLETE and first.epochs_run == 12 and not path.exists()

    with pytest.raises(KeyboardInterrupt):
        runner.run(7, PARAMS, report=stop_after_5)
    other = {**PARAMS, "n_neurons": 9}  # a checkpoint of other parameters is not resumed
    assert runner.run(8, other, attempt=Attempt(8, (7,))).epochs_run == 12 and not path.exists()

    with pytest.raises(KeyboardInterrupt):
        runner.run(7, PARAMS, report=stop_after_5)

    def prune(epoch, value):
        raise PruneTrial()

    pruned = runner.run(8, PARAMS, report=prune, attempt=Attempt(8, (7,)))  # pruned on the replayed epoch 1
    assert pruned.state == PRUNED and pruned.epochs_run == 3 and not path.exists()
    assert not path.parent.exists()


def test_a_checkpoint_that_does_not_fit_the_network_is_dropped_and_the_trial_starts_over(runners):
    from estimators.common.checkpoint import FitState

    runner = runners[True]
    path = runner.settings.checkpoint.path(Attempt(4))
    history = {"loss": [1.0] * 3, "val_loss": [1.0] * 3, "valid_mse": [1.0] * 3}
    write_checkpoint(path, FitState(3, [np.zeros(5)], [np.zeros(1)], history=history,
                                    extra={"params": PARAMS, "history": history, "elapsed_s": 1.0}))
    with epochs_trained(runner) as trained:
        record = runner.run(5, PARAMS, attempt=Attempt(5, (4,)))
    assert record.state == COMPLETE and trained == list(range(12)) and record.epochs_run == 12
    assert len(record.history["loss"]) == 12 and record.history["loss"][:3] != [1.0] * 3 and not path.exists()


def test_no_checkpoint_is_written_when_they_are_off(runners):
    runner = runners[False]
    assert runner.settings.checkpoint is None and runners[True].settings.checkpoint.folder.name == FOLDER

    def stop_after_5(epoch, value):
        if epoch + 1 == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(0, PARAMS, report=stop_after_5)
    assert not list(runner.out_dir.parent.rglob("trial-*.npz*"))


def test_a_resumed_trial_continues_its_first_attempts_run_and_logs_each_epoch_once(tmp_path):
    """The run of attempt 0 (stopped by Ctrl-C after epoch 8, its curves logged) goes on as trial 3's (from
    the checkpoint of epoch 6): one run, renumbered, with steps 1..12 of each curve, none twice."""
    from mlflow import MlflowClient

    from tests.helpers import tracking_uri
    from tuning.records import KILLED, TrialRecord
    from tuning.tracking.tracker import MlflowTracker

    uri = tracking_uri(tmp_path)
    tracker = MlflowTracker(uri, "resumed", background=False)
    tracker.start_study("resumed", {}, None, "name: resumed")
    tracker.on_trial_start(0, {"a": 1})
    tracker.on_trial_end(TrialRecord(0, {"a": 1}, state=KILLED, reason="interrupted by the user",
                                     history={"loss": [9.0] * 8, "valid_mse": [9.0] * 8}, epochs_run=8))
    tracker.on_trial_start(1, {"a": 2})  # another trial's run
    tracker.on_trial_end(TrialRecord(1, {"a": 2}, state=COMPLETE, value=1.0, history={"loss": [1.0]}))
    tracker.on_trial_resume(3, {"a": 1}, (0,), 6)
    curve = [float(i) for i in range(12)]
    tracker.on_trial_end(TrialRecord(3, {"a": 1}, state=COMPLETE, value=0.5, epochs_run=12,
                                     history={"loss": curve, "valid_mse": curve}))
    client = MlflowClient(uri)
    runs = client.search_runs([tracker.experiment_id], "tags.`tuning.role` = 'trial'")
    (run,) = [r for r in runs if r.data.tags["trial.number"] == "3"]
    assert sorted(r.data.tags["trial.number"] for r in runs) == ["1", "3"]
    assert run.info.run_id == tracker.trial_runs[0] == tracker.trial_runs[3] and run.info.run_name == "trial-003"
    assert run.info.status == "FINISHED" and run.data.tags["trial.state"] == COMPLETE
    assert "trial.reason" not in run.data.tags and run.data.tags["trial.resumed_from"] == "0"
    assert run.data.tags["trial.resumed_at_epoch"] == "6"
    for key in ("loss", "valid_mse"):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, 13))
        assert [m.value for m in history] == [9.0] * 8 + curve[8:]  # what the first attempt logged stays


# ---- kill -9 mid-trial, then the same command ---------------------------------------------------------------

SLOW_EPOCHS = textwrap.dedent("""
    import sys, time
    from tuning.search.trial import runner

    hook = runner.TrialRunner.epoch_hook

    def slow(self, *args):
        on_epoch = hook(self, *args)
        return lambda epoch, logs: time.sleep(0.05) or on_epoch(epoch, logs)

    runner.TrialRunner.epoch_hook = slow
    from tuning.cli.run import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_9_mid_trial_then_the_same_command_trains_only_the_epochs_left(tmp_path, monkeypatch):
    """A 60-epoch trial killed after its checkpoint of epoch 30 or later: the re-run trains the epochs left
    and no more, ends with 60 epochs and the weights of an uninterrupted trial, in the killed trial's one
    MLflow run (curves of steps 1..60, none repeated); the pruner was told every epoch; no checkpoint is left."""
    from mlflow import MlflowClient

    from tuning.config.schema import load_study
    from tuning.export.files import load_model
    from tuning.search.trial import runner as runner_module
    from tuning.study import run_study

    epochs = 60
    study = write_study(tmp_path, "mid", n_trials=1, epochs=epochs, pruner="median",
                        checkpoint={"every_epochs": 5, "every_s": None})
    out, tracking = tmp_path / "out", f"sqlite:///{mlflow_db(tmp_path)}"
    storage = f"sqlite:///{out / 'optuna.db'}"
    checkpoint = out / FOLDER / "trial-0.npz"
    cmd = [sys.executable, "-c", SLOW_EPOCHS, str(study), "--quiet", "--tracking-uri", tracking, "--output-dir", str(out)]
    first = start(cmd, tmp_path, tmp_path / "cli.log")
    try:
        def at_30():
            state = read_checkpoint(checkpoint) if checkpoint.exists() else None
            return state is not None and state.epochs >= 30

        wait_for(at_30, 240, f"the checkpoint of epoch 30 (output: {tmp_path / 'cli.log'})", poll=0.02, alive=first)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    done = read_checkpoint(checkpoint).epochs
    assert 30 <= done < epochs
    killed = load_trials(storage, "mid")
    assert [t.state.name for t in killed] == ["RUNNING"]

    trained = []
    hook = runner_module.TrialRunner.epoch_hook

    def counting(self, *args):
        on_epoch = hook(self, *args)
        return lambda epoch, logs: trained.append(epoch) or on_epoch(epoch, logs)

    config = load_study(study).with_overrides(output_dir=out, tracking_uri=tracking)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner_module.TrialRunner, "epoch_hook", counting)
    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)
    with without_charts():
        result = run_study(config, quiet=True)  # the same study again (this process: the killed one is gone)

    assert trained == list(range(done, epochs))
    trials = {t.number: t for t in load_trials(storage, "mid")}
    assert trials[0].state.name == "FAIL" and trials[1].state.name == "COMPLETE"
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].user_attrs["epochs_run"] == epochs
    assert sorted(trials[1].intermediate_values) == list(range(1, epochs + 1))  # replayed, then reported
    assert result.best.number == 1 and result.best.epochs_run == epochs
    assert not (out / FOLDER).exists()

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("mid").experiment_id
    runs = client.search_runs([experiment], "tags.`tuning.role` = 'trial'")
    assert len(runs) == 1  # the killed trial's run, continued
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["trial.number"] == "1"
    assert run.data.tags["trial.resumed_from"] == "0" and run.data.tags["trial.resumed_at_epoch"] == str(done)
    assert run.data.tags["trial.state"] == COMPLETE and "trial.reason" not in run.data.tags
    for key in ("loss", "val_loss", "valid_mse"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == list(range(1, epochs + 1))

    # the weights of the same trial trained without a break (this process, no checkpoints)
    from tuning.data.sources import load_dataset
    from tuning.search.trial.runner import make_runner

    plain = load_study(study).with_overrides(output_dir=tmp_path / "plain")
    plain = plain.model_copy(update={"search": plain.search.model_copy(update={"checkpoint": None})})
    monkeypatch.setattr(runner_module.TrialRunner, "epoch_hook", hook)
    whole = make_runner(plain, load_dataset(plain.dataset)).run_trial(0, dict(trials[1].params)).estimator
    exported = load_model(out).named_steps["model"]
    for a, b in zip(whole.model_.get_weights(), exported.model_.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=0)


def test_the_trial_schedulers_import_no_keras():
    """The schedulers name a trial's attempts (tuning.search.trial.resume) without loading Keras: a command that
    only looks at a stored study (a dry run, a finished study, a refused resume) starts no TensorFlow, and a
    study starts it quietly once its settings are applied (tests/test_cli.py)."""
    import subprocess

    code = ("import sys, tuning.search.schedulers.optuna, tuning.search.schedulers.random, tuning.coordination; "
            "sys.exit(int('keras' in sys.modules or 'tensorflow' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
