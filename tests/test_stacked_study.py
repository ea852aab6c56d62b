"""`search.stack: K`: a study's trials trained side by side as one model (tuning.search.schedulers.stacking), recorded,
tracked, pruned, stopped, resumed and exported as the trials of an unstacked study are."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from mlflow import MlflowClient

import tuning.search.schedulers.stacking as stacking
from tests.helpers import no_pictures, study_config, study_dict
from tuning.cli.run import main
from tuning.config.schema import load_study
from tuning.data.sources import load_dataset
from tuning.errors import StudyConfigError
from tuning.export import load_model
from tuning.parallel.workers import thread_budget
from tuning.records import COMPLETE, KILLED, PRUNED, TrialRecord
from tuning.report import html as report_html
from tuning.search.schedulers.optuna import OptunaScheduler
from tuning.search.store.budget import WORKER, counts_toward_budget
from tuning.study import run_study

RECORD_FIELDS = ("params", "state", "value", "metric", "fold_scores", "epochs_run", "best_epoch", "learning_rates")


@pytest.fixture(scope="module", autouse=True)
def _fast():
    """No MLflow model upload (slow; tested in test_study), no report charts (tested in test_report)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)
        patch.setattr(report_html, "write_pictures", no_pictures)
        yield


def run(config, tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # MLflow's artifact store lands there
        return run_study(config, quiet=True)


def children(client: MlflowClient, parent_run_id: str):
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=100)
    return sorted(runs, key=lambda r: int(r.data.tags["trial.number"]))


def exported_files(directory) -> set[str]:
    """The export's files, less SQLite's ``-wal``/``-shm`` files of a store this test still holds open."""
    return {str(p.relative_to(directory)) for p in Path(directory).rglob("*") if not p.name.endswith(("-wal", "-shm"))}


def after_a_helper_claims(count: int, stores: list):
    """``StackedTrials.run`` that first waits (at most two minutes) until another process (the ``--workers``
    helper) has claimed ``count`` trials, so that both processes run stacks whatever their start-up times."""
    real = stacking.StackedTrials.run

    def run(self, n_trials, timeout):
        stores.append(self.store.url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(
                (t.user_attrs.get(WORKER) or {}).get("pid") not in (None, os.getpid())
                for t in self.store.study.get_trials(deepcopy=False)) < count:
            time.sleep(0.2)
        return real(self, n_trials, timeout)

    return run


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """The same tiny study stacked (3 at a time, 6 trials, plateau schedule, periodic embeddings at a tuned
    frequency_scale: the default housing study's network; two processes: a ``--workers`` helper trains the
    first stack, this process the second) and alone (1 trial). One depth and one padded width (9-12 units
    pad to 12), so that each stack takes three trials."""
    out = {}
    space = {"n_hidden": {"type": "int", "low": 2, "high": 2}, "n_neurons": {"type": "int", "low": 9, "high": 12},
             "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
             "frequency_scale": {"type": "float", "low": 0.05, "high": 0.5, "log": True}}
    for stack, n_trials, workers in ((3, 6, 2), (1, 1, 1)):
        tmp = tmp_path_factory.mktemp(f"stack{stack}")
        config = study_config(tmp, name=f"tiny-stack{stack}",
                              search={"n_trials": n_trials, "stack": stack, "workers": workers},
                              model={"optimizer": "adam", "lr_schedule": "plateau", "numeric_embedding": "periodic",
                                     "n_frequencies": 4, "embedding_dim": 4}, space=space,
                              training={"epochs": 4, "batch_size": 64, "early_stopping": {"patience": 2}})
        stores = []
        with pytest.MonkeyPatch.context() as patch:
            for name, value in (thread_budget(workers) if workers > 1 else {}).items():
                patch.setenv(name, value)  # what the helper inherits; undone here, not left to later tests
            patch.setattr(stacking.StackedTrials, "run", after_a_helper_claims(stack if workers > 1 else 0, stores))
            out[stack] = config, run(config, tmp), tmp, (stores or [None])[0]
    return out


def test_a_stacked_study_records_tracks_and_exports_like_an_unstacked_one(studies):
    (config, result, tmp, storage), (lone_config, lone, _, _) = studies[3], studies[1]
    assert not result.interrupted and len(result.records) == 6
    assert {r.state for r in result.records} == {COMPLETE}
    assert [r.number for r in sorted(result.records, key=lambda r: r.number)] == list(range(6))
    # the same record fields are filled as by a lone trial
    for record in result.records:
        for name in RECORD_FIELDS:
            assert bool(getattr(record, name)) == bool(getattr(lone.records[0], name)), name
        assert len(record.learning_rates) == record.best_epoch
    # MLflow: one child run per trial, same tags, params and metric keys, per-epoch curves
    client = MlflowClient(config.mlflow.tracking_uri)
    lone_client = MlflowClient(lone_config.mlflow.tracking_uri)
    runs, lone_runs = children(client, result.parent_run_id), children(lone_client, lone.parent_run_id)
    assert len(runs) == 6
    by_number = {r.number: r for r in result.records}
    scales = []
    for mlflow_run in runs:
        record = by_number[int(mlflow_run.data.tags["trial.number"])]
        assert set(mlflow_run.data.tags) - {"mlflow.runName"} == set(lone_runs[0].data.tags) - {"mlflow.runName"}
        assert set(mlflow_run.data.params) == set(lone_runs[0].data.params)
        assert set(mlflow_run.data.metrics) == set(lone_runs[0].data.metrics)
        assert json.loads(mlflow_run.data.params["n_hidden"]) == record.params["n_hidden"]
        assert mlflow_run.info.status == "FINISHED" and mlflow_run.data.tags["trial.state"] == COMPLETE
        for key in ("loss", "val_loss", "learning_rate"):
            history = client.get_metric_history(mlflow_run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, record.epochs_run + 1)), key
        assert mlflow_run.data.metrics["objective_mse"] == pytest.approx(record.value)
        # the member keeps its best epoch's weights: its score is that epoch's validation loss (scaled to y)
        curve = sorted(client.get_metric_history(mlflow_run.info.run_id, "val_loss"), key=lambda m: m.step)
        scales.append(record.value / curve[record.best_epoch - 1].value)
    assert np.allclose(scales, scales[0], rtol=1e-4)
    # two processes (the --workers helper and this one), each trained three of the trials side by side
    trials = [t for t in optuna.load_study(study_name=config.name, storage=storage).get_trials()
              if counts_toward_budget(t)]
    by_process = {}
    for trial in trials:
        by_process.setdefault(trial.user_attrs[WORKER]["pid"], []).append(trial.number)
    assert sorted(len(numbers) for numbers in by_process.values()) == [3, 3], by_process
    spans = {int(r.data.tags["trial.number"]): (r.info.start_time, r.info.end_time) for r in runs}
    for numbers in by_process.values():  # one stack: its members' runs are open at the same time
        assert max(spans[n][0] for n in numbers) < min(spans[n][1] for n in numbers), (numbers, spans)
    parent = client.get_run(result.parent_run_id).data
    assert set(parent.metrics) == set(lone_client.get_run(lone.parent_run_id).data.metrics)
    # the export: reloads, predicts float64 rows, scores what the study said
    pipeline = load_model(result.export_dir)
    split = load_dataset(config.dataset)
    predicted = pipeline.predict(np.asarray(split.X_test, dtype=np.float64))
    assert predicted.dtype == np.float64 and predicted.shape == (len(split.X_test),)
    mse = float(np.mean((predicted - np.asarray(split.y_test)) ** 2))
    assert mse == pytest.approx(result.test_metrics["mse"], rel=1e-6)
    assert (tmp / "out").is_dir() and type(pipeline[-1]) is type(load_model(lone.export_dir)[-1])
    assert exported_files(result.export_dir) == exported_files(lone.export_dir)
    assert pipeline[-1].model_.get_layer("periodic_embedding").n_frequencies == 4


def test_a_member_stops_or_is_pruned_alone_and_its_slot_is_refilled(tmp_path, monkeypatch):
    """Three grid points, two slots: the member at a tiny rate stops early (no improvement >= min_delta),
    the one at 3e-2 is pruned at epoch 3 by its own trial, the one at 1e-2 trains on to the last epoch; the
    freed slot takes the third trial, in the same stack."""
    rates = [1e-6, 3e-2, 1e-2]
    config = study_config(tmp_path, name="tiny-members", space={"learning_rate": {"type": "categorical",
                                                                                   "choices": rates}},
                          model={"optimizer": "adam", "n_hidden": 1, "n_neurons": 16},
                          search={"n_trials": 3, "stack": 2, "sampler": "grid", "pruner": "median"},
                          training={"epochs": 5, "batch_size": 32,
                                    "early_stopping": {"patience": 1, "min_delta": 0.02}})
    reporter = OptunaScheduler.reporter
    told: dict[float, list[int]] = {}

    def pruning_reporter(self, trial):
        report = reporter(self, trial)

        def prune_one(epoch, value):
            told.setdefault(trial.params["learning_rate"], []).append(epoch + 1)
            report(epoch, value)
            if trial.params["learning_rate"] == 3e-2 and epoch + 1 == 3:
                raise stacking.PruneTrial()

        return prune_one

    monkeypatch.setattr(OptunaScheduler, "reporter", pruning_reporter)
    built = []
    build = stacking.build_stacked_model
    monkeypatch.setattr(stacking, "build_stacked_model", lambda *a, **k: built.append(a) or build(*a, **k))
    result = run(config, tmp_path)
    by_rate = {r.params["learning_rate"]: r for r in result.records}
    assert sorted(by_rate) == sorted(rates) and len(built) == 1  # one stack: the third trial refilled a slot
    slow, pruned, fast = (by_rate[r] for r in rates)
    assert slow.state == COMPLETE and slow.epochs_run == 2
    assert pruned.state == PRUNED and pruned.epochs_run == 3
    assert fast.state == COMPLETE and fast.epochs_run == 5
    assert told[3e-2] == [1, 2, 3] and told[1e-2] == [1, 2, 3, 4, 5]
    storage = optuna.load_study(study_name="tiny-members", storage=f"sqlite:///{config.export_dir / 'optuna.db'}")
    states = {t.params["learning_rate"]: t.state.name for t in storage.trials}
    assert states == {1e-6: "COMPLETE", 3e-2: "PRUNED", 1e-2: "COMPLETE"}
    intermediate = {t.params["learning_rate"]: t.intermediate_values for t in storage.trials}
    assert sorted(intermediate[1e-2]) == [1, 2, 3, 4, 5] and sorted(intermediate[3e-2]) == [1, 2, 3]


def test_a_new_stack_asks_ahead_for_members_of_its_own_depth(tmp_path, monkeypatch):
    """Four grid points of two depths, stacks of 2: whatever order the sampler proposes them in, each stack
    is full and of one depth (the trials of the other depth wait for their own stack), not 1 + 2 + 1."""
    config = study_config(tmp_path, name="tiny-ahead", space={"n_hidden": {"type": "categorical", "choices": [1, 2]},
                                                              "learning_rate": {"type": "categorical",
                                                                                "choices": [1e-3, 3e-3]}},
                          model={"optimizer": "adam", "n_neurons": 8},
                          search={"n_trials": 4, "stack": 2, "sampler": "grid", "seed": 1},
                          training={"epochs": 2, "batch_size": 64})
    built = []
    build = stacking.build_stacked_model
    monkeypatch.setattr(stacking, "build_stacked_model",
                        lambda configs, *a, **k: built.append((len(configs), k["n_hidden"])) or build(configs, *a, **k))
    result = run(config, tmp_path)
    assert len(result.records) == 4 and {r.state for r in result.records} == {COMPLETE}
    assert sorted(built) == [(2, 1), (2, 2)]


def test_a_later_stack_of_the_same_depth_reuses_the_compiled_model(tmp_path, monkeypatch):
    """Eight grid points of two depths in stacks of 2 train as four stacks (depth 2, 1, 2, 1 with this
    seed) but only two models are built: a later stack of a depth takes the model built for it, with
    fresh weights in every slot (its tracing and XLA compilation cost seconds), and its trials end as
    any others do."""
    config = study_config(tmp_path, name="tiny-reuse", space={"n_hidden": {"type": "categorical", "choices": [1, 2]},
                                                              "learning_rate": {"type": "categorical",
                                                                                "choices": [1e-3, 3e-3, 1e-2, 3e-2]}},
                          model={"optimizer": "adam", "n_neurons": 8},
                          search={"n_trials": 8, "stack": 2, "sampler": "grid", "seed": 3},
                          training={"epochs": 2, "batch_size": 64})
    built, trained = [], []
    build, train = stacking.build_stacked_model, stacking.StackedTrials.train
    monkeypatch.setattr(stacking, "build_stacked_model",
                        lambda configs, *a, **k: built.append(k["n_hidden"]) or build(configs, *a, **k))
    monkeypatch.setattr(stacking.StackedTrials, "train",
                        lambda self, group: trained.append(len(group[0].widths)) or train(self, group))
    result = run(config, tmp_path)
    assert trained == [2, 1, 2, 1] and built == [2, 1]
    assert len(result.records) == 8 and {r.state for r in result.records} == {COMPLETE}
    assert all(np.isfinite(r.value) and r.epochs_run == 2 for r in result.records)


@pytest.mark.parametrize("refill", [True, False], ids=["refill", "idle"])
def test_a_freed_slot_is_refilled_or_left_idle_as_the_loop_is_set(tmp_path, monkeypatch, refill):
    """Three grid points, two slots, the member at a tiny rate stopping early: refilled (the default), its
    slot takes the third trial in the same stack; left idle (the variant benchmarks/stacked.py measures),
    the third trial waits for a stack of its own. Every trial ends as it would alone either way."""
    rates = [1e-6, 1e-2, 3e-3]
    config = study_config(tmp_path, name=f"tiny-refill-{refill}",
                          space={"learning_rate": {"type": "categorical", "choices": rates}},
                          model={"optimizer": "adam", "n_hidden": 1, "n_neurons": 8},
                          search={"n_trials": 3, "stack": 2, "sampler": "grid", "seed": 0},
                          training={"epochs": 4, "batch_size": 64, "early_stopping": {"patience": 1, "min_delta": 0.02}})
    monkeypatch.setattr(stacking.StackedTrials, "refill_slots", refill)
    trained = []
    train = stacking.StackedTrials.train
    monkeypatch.setattr(stacking.StackedTrials, "train", lambda self, group: trained.append(len(group)) or train(self, group))
    result = run(config, tmp_path)
    assert trained == ([2] if refill else [2, 1])
    assert len(result.records) == 3 and {r.state for r in result.records} == {COMPLETE}
    assert {r.params["learning_rate"]: r.epochs_run for r in result.records}[1e-6] == 2


def test_a_stack_by_width_holds_only_members_of_one_padded_width(tmp_path, monkeypatch):
    """Widths 7, 8, 60, 64 (padded to 8, 8, 64, 64), one depth, stacks of 2: grouped by width, each stack
    holds two members of one padded width (built 8 and 64 wide); padded (the default), stacks form in the
    sampler's order."""
    config = study_config(tmp_path, name="tiny-width", space={"n_neurons": {"type": "categorical",
                                                                            "choices": [7, 8, 60, 64]}},
                          model={"optimizer": "adam", "n_hidden": 1},
                          search={"n_trials": 4, "stack": 2, "sampler": "grid", "seed": 0},
                          training={"epochs": 2, "batch_size": 64})
    monkeypatch.setattr(stacking.StackedTrials, "by_width", True)
    trained, built = [], []
    train, build = stacking.StackedTrials.train, stacking.build_stacked_model
    monkeypatch.setattr(stacking.StackedTrials, "train",
                        lambda self, group: trained.append(sorted(m.widths[0] for m in group)) or train(self, group))
    monkeypatch.setattr(stacking, "build_stacked_model",
                        lambda configs, *a, **k: built.append(k["max_widths"]) or build(configs, *a, **k))
    result = run(config, tmp_path)
    assert sorted(trained) == [[7, 8], [60, 64]] and sorted(built) == [[8], [64]]
    assert len(result.records) == 4 and {r.state for r in result.records} == {COMPLETE}


def test_an_interrupted_stack_leaves_its_trials_interrupted_and_a_rerun_completes(tmp_path, monkeypatch):
    """Ctrl-C in the middle of a stack: each member is a KILLED run and a FAIL trial without reason (not
    counted, its parameters queued again), as an interrupted lone trial; the re-run fills the budget."""
    config = study_config(tmp_path, name="tiny-resume", search={"n_trials": 2, "stack": 2},  # one stack: one width
                          space={"learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}},
                          model={"optimizer": "adam", "n_hidden": 1, "n_neurons": 8},
                          training={"epochs": 2, "batch_size": 64, "early_stopping": {"enabled": False}})
    calls = []

    def stop_on_fourth():
        calls.append(1)
        if len(calls) == 4:  # two trials opened, the first member's first epoch: mid-stack
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("tuning.search.trial.runner.interrupt.check", stop_on_fourth)
        first = run(config, tmp_path)
    assert first.interrupted
    assert sorted((r.number, r.state) for r in first.records) == [(0, KILLED), (1, KILLED)]
    url = f"sqlite:///{config.export_dir / 'optuna.db'}"
    trials = optuna.load_study(study_name="tiny-resume", storage=url).trials
    assert [(t.number, t.state.name, "reason" in t.user_attrs) for t in trials[:2]] == [(0, "FAIL", False),
                                                                                      (1, "FAIL", False)]
    assert [t.state.name for t in trials[2:]] == ["WAITING", "WAITING"]  # queued again
    assert first.best is None
    client = MlflowClient(config.mlflow.tracking_uri)
    killed = children(client, first.parent_run_id)
    assert [(r.info.status, r.data.tags["trial.state"]) for r in killed] == [("KILLED", KILLED)] * 2

    second = run(config, tmp_path)
    assert not second.interrupted and second.best is not None
    trials = optuna.load_study(study_name="tiny-resume", storage=url).trials
    assert sum(map(counts_toward_budget, trials)) == 2 and len(trials) == 4
    retried = {t.params["learning_rate"] for t in trials[2:4]}
    assert retried == {t.params["learning_rate"] for t in trials[:2]}
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")  # ask/tell here
def test_a_stack_killed_with_kill_9_is_failed_and_trained_again_as_a_stack(tmp_path):
    """What a process killed (kill -9) in the middle of a stack leaves: its two members RUNNING in the study
    store under its (dead) pid, their MLflow runs open. The next run fails them (no reason: not counted),
    closes their runs as KILLED and trains their parameters again, side by side in one stack."""
    import subprocess
    import sys

    from tuning.search.schedulers import make_store
    from tuning.search.space import suggest
    from tuning.search.store.base import PARENT_RUN

    config = study_config(tmp_path, name="tiny-kill", search={"n_trials": 2, "stack": 2},  # one stack: one width
                          space={"learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}},
                          model={"optimizer": "adam", "n_hidden": 1, "n_neurons": 8},
                          training={"epochs": 2, "batch_size": 64, "early_stopping": {"enabled": False}})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.create_experiment(config.name)
    parent = client.create_run(experiment, tags={"tuning.role": "study"}).info.run_id
    store = make_store(config, config.export_dir)
    store.open("minimize", "mse")
    store.set_attr(PARENT_RUN, parent)
    killed = []
    for number in range(2):
        trial = store.study.ask()
        suggest(trial, config.space)
        trial.set_user_attr(WORKER, store.worker.as_dict() | {"pid": dead.pid, "started": None})
        client.create_run(experiment, tags={"mlflow.parentRunId": parent, "tuning.role": "trial",
                                            "trial.number": str(number)})
        killed.append(trial.params["learning_rate"])

    result = run(config, tmp_path)
    assert not result.interrupted and result.parent_run_id == parent
    trials = optuna.load_study(study_name=config.name, storage=store.url).trials
    assert [(t.state.name, "reason" in t.user_attrs) for t in trials[:2]] == [("FAIL", False)] * 2
    assert len(trials) == 4 and [counts_toward_budget(t) for t in trials] == [False, False, True, True]
    assert sorted(t.params["learning_rate"] for t in trials[2:]) == sorted(killed)
    runs = {int(r.data.tags["trial.number"]): r for r in children(client, parent)}
    assert sorted(runs) == [0, 1, 2, 3]
    assert [runs[n].info.status for n in range(4)] == ["KILLED", "KILLED", "FINISHED", "FINISHED"]
    retried = [runs[2].info, runs[3].info]  # one stack: both runs open at the same time
    assert max(r.start_time for r in retried) < min(r.end_time for r in retried)


def test_a_stack_that_cannot_train_fails_its_trials_with_the_reason(tmp_path, monkeypatch):
    config = study_config(tmp_path, name="tiny-broken", search={"n_trials": 2, "stack": 2})

    def broken(*args, **kwargs):
        raise ValueError("no room for this stack")

    monkeypatch.setattr(stacking, "build_stacked_model", broken)
    result = run(config, tmp_path)
    assert [(r.state, r.reason) for r in result.records] == [("failed", "ValueError: no room for this stack")] * 2
    assert result.best is None and not result.interrupted


REFUSED = {
    "own model": ({"model": {"build": "models/net.py:build_model"}}, "model.build"),
    "sgd": ({"model": {"optimizer": "sgd"}}, "model.optimizer: adam"),
    "optimizer tuned": ({"space": {"optimizer": {"type": "categorical", "choices": ["adam", "sgd"]}}},
                        "space.optimizer"),
    "cross-validation": ({"search": {"cv": 3}}, "cv: validation"),
    "cosine": ({"model": {"optimizer": "adam", "lr_schedule": "cosine"}}, "lr_schedule"),
    "weight decay": ({"model": {"optimizer": "adam", "weight_decay": 1e-4}}, "weight_decay"),
    "members": ({"model": {"optimizer": "adam", "members": 8}}, "members: 1"),
    "feature scaling": ({"model": {"optimizer": "adam", "feature_scaling": True}}, "feature_scaling: false"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cannot_be_stacked_is_refused_with_what_to_change(tmp_path, case):
    change, text = REFUSED[case]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.py").write_text(
        "import keras\n\ndef build_model(n_hidden=1):\n    return keras.Sequential([keras.layers.Dense(1)])\n")
    data = study_dict(tmp_path, **{**change, "search": {**change.get("search", {}), "stack": 4}})
    if case == "optimizer tuned":
        data["model"] = {}
    if "build" in data["model"]:
        data["model"] = {"build": data["model"]["build"]}
        data["space"] = {"n_hidden": {"type": "int", "low": 0, "high": 2}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(StudyConfigError) as refused:
        load_study(path)
    assert "search.stack" in str(refused.value) and text in str(refused.value)
    assert "search.stack: 1" in str(refused.value)
    if case in ("own model", "sgd"):
        assert main([str(path), "--dry-run"]) == 2
    data["search"]["stack"] = 1  # the same study unstacked loads
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_study(path)


def test_a_lone_trial_record_has_the_fields_the_stack_fills():
    """The fields compared above exist on the record (a renamed field must not pass vacuously)."""
    assert set(RECORD_FIELDS) <= set(TrialRecord.__dataclass_fields__)


SEQUENCES = [
    [1.0, 0.9, 0.95, 0.91, 0.89, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8],
    [1.0, float("nan"), 0.99995, 0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.19999, 0.3, 0.3],
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
]


@pytest.mark.parametrize("values", SEQUENCES)
@pytest.mark.parametrize("patience,min_delta", [(1, 0.0), (3, 0.0), (2, 0.05), (4, 0.02)])
def test_a_members_early_stopping_and_plateau_decide_as_keras_callbacks_do(values, patience, min_delta):
    """Member.early_stop / Member.plateau against keras' EarlyStopping and ReduceLROnPlateau (as
    estimators.common.callbacks makes them) on the same validation losses: same stop epoch, best epoch and rates."""
    import keras

    from estimators import KerasMLPRegressor
    from estimators.common.callbacks import early_stopping, lr_schedule

    estimator = KerasMLPRegressor(patience=patience, min_delta=min_delta, learning_rate=0.01,
                                  restore_best_weights=False)
    member = stacking.Member(None, {}, estimator, None)
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    net.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    stopper = early_stopping("val_loss", patience, min_delta, False)
    plateau = lr_schedule("plateau", 0.01, 100, patience, "val_loss")
    for callback in (stopper, plateau):
        callback.set_model(net)
        callback.on_train_begin()
    rate, stopped_at = 0.01, None
    for epoch, value in enumerate(values):
        logs = {"val_loss": value}
        stopper.on_epoch_end(epoch, logs)
        plateau.on_epoch_end(epoch, logs)
        member.epoch = epoch
        stop = member.early_stop(value, lambda: None)
        new = member.plateau(value, rate)
        rate = rate if new is None else new
        assert rate == pytest.approx(float(net.optimizer.learning_rate.numpy()), rel=1e-6), epoch
        assert stop == bool(net.stop_training), epoch
        if stop:
            stopped_at = epoch
            break
    assert stopped_at == (stopper.stopped_epoch or None)
    assert member.best_epoch == stopper.best_epoch


def test_a_stack_pads_its_layers_to_a_few_widths_at_most_half_again_as_wide():
    """Padded widths come from one short ladder (so later stacks fit a compiled model), never narrower than
    the widest member and at most 1.5 times as wide."""
    widths = range(1, 1025)
    padded = [stacking.padded_width(w) for w in widths]
    assert all(w <= p <= max(8, 1.5 * w) for w, p in zip(widths, padded, strict=True))
    assert sorted(set(padded))[:11] == [8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]
