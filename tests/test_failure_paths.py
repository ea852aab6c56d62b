"""Every failure path closes what it opened: a study that fails before its search, an export that fails
half-way or replaces another, a Ctrl-C of an earlier study, a stacked trial's claim, a look at a store."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

import tuning.search.schedulers.stacking as stacking
from tests.helpers import no_pictures, study_config, write_study
from tuning import coordination
from tuning.report import html as report_html
from tuning.search.schedulers import make_scheduler, make_store
from tuning.search.store.optuna import OptunaStore
from tuning.tracking.runlayout import STUDY_REASON
from tuning.tracking.tracker import MlflowTracker

# a failing study's processes are counted as this process's children: its workers start as a study starts them
pytestmark = pytest.mark.cold_workers
MODELS = Path(__file__).resolve().parents[1] / "studies" / "models"


class Boom(RuntimeError):
    """The failure injected into a step."""


def boom(*args, **kwargs):
    raise Boom("injected failure")


def then_boom(real):
    """``real`` that does its work, then fails."""

    def call(*args, **kwargs):
        real(*args, **kwargs)
        raise Boom("injected failure")

    return call


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    """No MLflow model upload, no report charts, no model preflight (tested elsewhere; slow)."""
    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)
    monkeypatch.setattr("tuning.plan.preflight", lambda *args, **kwargs: [])


def live_children(besides: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This process's living children, but those in ``besides`` (started before: joblib's reusable workers
    of earlier tests, which a study's failure has nothing to do with)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid not in besides and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def all_runs(config) -> list:
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000)


# ---- a study failing before its search ------------------------------------------------------------------


class AttachFails:
    portable = False

    def attach(self, runner):
        raise Boom("injected failure")

    def on_trial_start(self, number, params):
        pass

    def on_trial_end(self, record):
        pass


def second_spawn_fails(monkeypatch):
    """The first helper process starts, the second cannot."""
    import tuning.parallel.workers as workers

    real, started = workers.subprocess.Popen, []

    def popen(*args, **kwargs):
        if started:
            raise Boom("injected failure")
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(workers.subprocess, "Popen", popen)


# step -> (how it fails, workers, whether the parent run exists by then)
STEPS = {
    "observer attach": (None, 1, False),
    "store open": (lambda p: p.setattr(OptunaStore, "open", then_boom(OptunaStore.open)), 1, False),
    "parent run's dataset": (lambda p: p.setattr(MlflowTracker, "log_dataset", boom), 1, True),
    "open_parent_run": (lambda p: p.setattr("tuning.study.open_parent_run", then_boom(coordination.open_parent_run)),
                        1, True),
    "lr_range files": (lambda p: p.setattr(MlflowTracker, "log_files", boom), 1, True),
    "close_orphan_runs": (lambda p: p.setattr("tuning.study.close_orphan_runs", boom), 1, True),
    "display resume": (lambda p: p.setattr("tuning.tracking.progress.ProgressDisplay.resume", boom), 1, True),
    "start_helpers": (second_spawn_fails, 3, True),
    "recipe save (helpers running)": (lambda p: p.setattr("tuning.config.recipe.save", boom), 2, True),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_study_failing_before_its_search_leaves_nothing_open(tmp_path, monkeypatch, step):
    """Whatever step of the start fails: no MLflow run left RUNNING (the parent run, once created, ends
    FAILED with the reason), no helper process alive, every store opened closed; the error goes on."""
    from tuning.parallel.workers import thread_budget
    from tuning.study import run_study

    inject, workers, has_parent = STEPS[step]
    if inject is not None:
        inject(monkeypatch)
    for name, value in (thread_budget(workers) if workers > 1 else {}).items():
        monkeypatch.setenv(name, value)  # what start_helpers would set in this process
    opened, closed = [], []
    real_open, real_close = OptunaStore.open, OptunaStore.close
    monkeypatch.setattr(OptunaStore, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    monkeypatch.setattr(OptunaStore, "close", lambda self: closed.append(self) or real_close(self))
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts land there
    config = study_config(tmp_path, name="tiny-fails", search={"n_trials": 1, "workers": workers},
                          training={"epochs": 1})
    observers = [AttachFails()] if step == "observer attach" else []
    before = frozenset(p.pid for p in live_children())
    try:
        with pytest.raises(Boom):
            run_study(config, quiet=True, observers=observers)
        left = live_children(before)
        runs = all_runs(config)
        assert not left, [p.cmdline() for p in left]
        assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []
        parents = [r for r in runs if r.data.tags.get("tuning.role") == "study"]
        if has_parent:
            assert [r.info.status for r in parents] == ["FAILED"]
            assert "Boom: injected failure" in parents[0].data.tags[STUDY_REASON]
        assert all(any(store is c for c in closed) for store in opened), "a study store was left open"
        assert not (config.export_dir / "optuna.db-wal").exists()
    finally:
        for child in live_children(before):  # the old behaviour: do not leave them to the next tests
            child.kill()


def test_a_rerun_after_a_failed_start_finishes_and_drops_the_old_reason(tmp_path, monkeypatch):
    from tuning.study import run_study

    monkeypatch.chdir(tmp_path)
    config = study_config(tmp_path, name="tiny-again", search={"n_trials": 1}, training={"epochs": 1})
    with monkeypatch.context() as patch:
        patch.setattr("tuning.tracking.progress.ProgressDisplay.resume", boom)
        with pytest.raises(Boom):
            run_study(config, quiet=True)
    result = run_study(config, quiet=True)
    parent = MlflowClient(config.mlflow.tracking_uri).get_run(result.parent_run_id)
    assert result.best is not None and parent.info.status == "FINISHED" and STUDY_REASON not in parent.data.tags


# ---- Ctrl-C of an earlier study in the same process -----------------------------------------------------


class CtrlCAfterFirstTrial:
    """Presses Ctrl-C (a real SIGINT, through the study's handler) once the first trial ended."""

    portable = False

    def attach(self, runner):
        pass

    def on_trial_start(self, number, params):
        pass

    def on_trial_end(self, record):
        signal.raise_signal(signal.SIGINT)


def test_a_study_after_an_interrupted_one_in_the_same_process_runs_its_trials(tmp_path, monkeypatch):
    from tuning.parallel import interrupt
    from tuning.study import run_study

    monkeypatch.chdir(tmp_path)
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    interrupt.install_handlers()
    try:
        for name in ("first", "second"):
            (tmp_path / name).mkdir()
        first = study_config(tmp_path / "first", name="tiny-first", search={"n_trials": 2}, training={"epochs": 1})
        assert run_study(first, quiet=True, observers=[CtrlCAfterFirstTrial()]).interrupted
        second = study_config(tmp_path / "second", name="tiny-second", search={"n_trials": 2},
                              training={"epochs": 1})
        result = run_study(second, quiet=True)
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
        interrupt.reset()
    assert not result.interrupted and len(result.records) == 2 and result.best is not None


# ---- a stacked trial's heartbeat ---------------------------------------------------------------------


def heartbeats() -> list[threading.Thread]:
    """Optuna's heartbeat threads still running (named after their target)."""
    return [t for t in threading.enumerate() if t.name.endswith("(_record_heartbeat)") and t.is_alive()]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")
@pytest.mark.parametrize("failure", ["claim raises", "surplus, tell raises", "draw raises"])
def test_a_stacked_trial_that_cannot_be_claimed_leaves_no_heartbeat(tmp_path, monkeypatch, failure):
    from tuning.data.sources import load_dataset
    from tuning.search.trial.runner import make_runner

    config = study_config(tmp_path, name="tiny-ask", search={"n_trials": 2, "stack": 2},
                          space={"learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}},
                          model={"optimizer": "adam", "n_hidden": 1, "n_neurons": 8})
    store = make_store(config, config.export_dir)
    store.open("minimize", "mse")
    before = set(heartbeats())
    try:
        scheduler = make_scheduler(store)  # stack: 2: the backend's scheduler inside a StackedScheduler
        stack = stacking.StackedTrials(scheduler.inner, make_runner(config, load_dataset(config.dataset)))
        stack.ask(1)  # claimed: its heartbeat runs until its trial ends
        assert len(stack.pending) == 1 and len(set(heartbeats()) - before) == 1
        stack.pending.pop().heartbeat.stop()
        if failure == "claim raises":
            monkeypatch.setattr(stack.scheduler, "claim", boom)
        elif failure == "surplus, tell raises":
            monkeypatch.setattr(stack.scheduler, "claim", lambda trial: False)
            monkeypatch.setattr(stack, "_tell", boom)
        else:
            monkeypatch.setattr(stacking, "draw", boom)
        with pytest.raises(Boom):
            stack.ask(1)
        assert set(heartbeats()) - before == set() and stack.pending == []
    finally:
        store.close()


# ---- a look at a study store creates nothing ----------------------------------------------------------


def test_peeking_at_a_store_that_does_not_exist_creates_nothing(tmp_path):
    from tuning.coordination import check_resumable
    from tuning.search.store.base import SPACE_DIGEST
    from tuning.study import RunOptions, finished_result

    config = study_config(tmp_path)
    new = tmp_path / "new.db"
    url = f"sqlite:///{new}"
    store = make_store(config, config.export_dir, storage=url)
    assert store.peek_records() is None and store.peek_attr(SPACE_DIGEST) is None
    assert finished_result(config, RunOptions(storage=url)) is None
    check_resumable(config, url)
    assert not new.exists()
    # the default store, in an output directory not made yet
    assert make_store(config, config.export_dir).peek_records() is None and finished_result(config, RunOptions()) is None
    assert not config.export_dir.exists()
    # a database that is there but holds no Optuna study gets no table
    with sqlite3.connect(new) as db:
        db.execute("create table notes (text)")
    assert make_store(config, config.export_dir, storage=url).peek_records() is None
    with sqlite3.connect(new) as db:
        assert [row[0] for row in db.execute("select name from sqlite_master where type = 'table'")] == ["notes"]


def test_a_dry_run_with_a_new_storage_creates_nothing(tmp_path, capsys):
    from tuning.cli.run import main

    study = write_study(tmp_path)
    new = tmp_path / "new.db"
    assert main([str(study), "--dry-run", "--storage", f"sqlite:///{new}"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert not new.exists() and not (tmp_path / "out").exists()


# ---- export: replaced whole, nothing stale, nothing lost on a crash -------------------------------------


@pytest.fixture(scope="module")
def fitted() -> dict:
    """Small fitted regressors on the same rows: two MLPs and one of the Hands-On factory."""
    from sklearn.preprocessing import StandardScaler

    from estimators import KerasMLPRegressor
    from estimators.own_model.estimators import KerasModelRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    scaler = StandardScaler().fit(X)
    common = dict(epochs=1, batch_size=32, early_stopping=False, validation_fraction=0.0)
    mlps = [KerasMLPRegressor(n_hidden=1, n_neurons=4, random_state=seed, **common).fit(scaler.transform(X), y)
            for seed in (0, 1)]
    own = KerasModelRegressor(build=f"{MODELS / 'handson.py'}:build_model", random_state=0, **common)
    return {"X": X, "scaler": scaler, "mlps": mlps, "own": own.fit(scaler.transform(X), y)}


def export(fitted, model, out_dir):
    from tuning.export.files import export_model, make_pipeline

    pipeline = make_pipeline(fitted["scaler"], model)
    paths = export_model(pipeline, out_dir, {"trial": 0}, {"test": {}})
    assert all(path.exists() and out_dir in path.parents for path in paths.values())
    return pipeline


def ensemble(fitted, size: int):
    from estimators.common.ensemble import AveragingRegressor

    mlps = fitted["mlps"]
    return AveragingRegressor.from_fitted([mlps[i % 2] for i in range(size)], [1.0] * size)


def listing(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` and its sha256."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def study_files(out: Path) -> None:
    """What a study keeps in its export directory beside the export."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "optuna.db").write_bytes(b"store")
    (out / "recipe.json").write_text("{}")
    (out / "report").mkdir()
    (out / "report" / "report.html").write_text("<html/>")


def test_a_re_export_leaves_no_member_of_the_previous_ensemble(tmp_path, fitted):
    from tuning.export import load_model

    out = tmp_path / "out"
    study_files(out)
    export(fitted, ensemble(fitted, 5), out)
    assert sorted(p.name for p in out.glob("model*.keras")) == [f"model_{i}.keras" for i in range(1, 6)]
    export(fitted, ensemble(fitted, 3), out)
    assert sorted(p.name for p in out.glob("model*.keras")) == [f"model_{i}.keras" for i in range(1, 4)]
    single = export(fitted, fitted["mlps"][0], out)
    assert sorted(p.name for p in out.glob("model*.keras")) == ["model.keras"]
    assert sorted(p.name for p in out.iterdir()) == ["best_params.json", "metrics.json", "model.keras", "optuna.db",
                                                      "pipeline.joblib", "preprocessing.joblib", "recipe.json",
                                                      "report"]  # the study's files kept, no staging left
    np.testing.assert_allclose(load_model(out).predict(fitted["X"][:5]), single.predict(fitted["X"][:5]))


def test_an_export_of_our_mlp_after_a_users_model_leaves_no_code(tmp_path, fitted):
    from tuning.export.shipped_code import CODE_DIR, CODE_FILE

    out = tmp_path / "out"
    export(fitted, fitted["own"], out)
    assert (out / CODE_DIR / "handson.py").is_file() and (out / CODE_FILE).is_file()
    export(fitted, fitted["mlps"][0], out)
    assert not (out / CODE_DIR).exists() and not (out / CODE_FILE).exists()
    export(fitted, fitted["own"], out)  # and back: the code again
    assert (out / CODE_DIR / "handson.py").is_file() and (out / CODE_FILE).is_file()


def test_an_export_failing_half_way_leaves_the_previous_one_as_it_was(tmp_path, fitted, monkeypatch):
    import joblib

    from tuning.export import load_model

    out = tmp_path / "out"
    study_files(out)
    before = export(fitted, fitted["mlps"][0], out)
    files = listing(out)
    real, dumps = joblib.dump, []

    def dump(*args, **kwargs):  # the pipeline and the Keras files are written when the preprocessing fails
        dumps.append(1)
        if len(dumps) == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(joblib, "dump", dump)
    with pytest.raises(OSError, match="disk full"):
        export(fitted, ensemble(fitted, 2), out)
    assert listing(out) == files and not list(out.glob(".export-*"))
    np.testing.assert_allclose(load_model(out).predict(fitted["X"][:5]), before.predict(fitted["X"][:5]))
