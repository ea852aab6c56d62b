"""Parallel and distributed studies, for both backends (one Optuna store): the budget under racing workers,
dead workers' trials, and three workers on a real PostgreSQL server with a real ``mlflow server``."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.mlflow_server import mlflow_server, wait_healthy
from tests.resume_helpers import (
    check_one_run_per_trial,
    cli,
    load_trials,
    mlflow_db,
    mlflow_runs,
    start,
    write_study,
)
from tuning.search.schedulers import make_store
from tuning.search.store.budget import CANDIDATE, SURPLUS, WORKER, Budget, counts_toward_budget
from tuning.search.store.optuna import OptunaStore
from tuning.search.store.storage import driver_url

POSTGRES_URL = os.environ.get("TUNING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")  # ask/tell here
BACKENDS = ["optuna", "random"]


def _backend(tmp_path: Path, n_trials: int, backend: str) -> OptunaStore:
    from tuning.config.schema import load_study

    study = write_study(tmp_path, "race", n_trials=n_trials, backend=backend)
    store = make_store(load_study(study).with_overrides(output_dir=tmp_path), tmp_path)  # needs no runner
    store.open("minimize", "mse")
    return store


def _suggest(trial) -> None:
    trial.suggest_int("n_neurons", 8, 32)
    trial.suggest_float("learning_rate", 1.0e-3, 3.0e-3, log=True)


@pytest.mark.parametrize("name", BACKENDS)
def test_racing_workers_never_overrun_the_budget(tmp_path, name):
    """Three workers start a trial at once for the last two slots: the third trial is surplus; a slot
    freed by a dead worker is filled by the retry of its parameters (for the random backend: of its
    candidate)."""
    from optuna.trial import TrialState

    backend = _backend(tmp_path, n_trials=2, backend=name)
    study = backend.study
    first, second, third = study.ask(), study.ask(), study.ask()
    assert [backend.is_surplus(t) for t in (first, second, third)] == [False, False, True]
    third.set_user_attr(SURPLUS, True)
    study.tell(third, state=TrialState.FAIL)
    for trial in (first, second):
        _suggest(trial)
    study.tell(first, 1.0)
    assert Budget.of(backend.trials()) == Budget(done=1, running=1, waiting=0)

    backend._fail_and_retry(backend.trial(second.number))  # its worker died
    retry = study.ask()
    assert retry.params == second.params and not backend.is_surplus(retry)
    assert retry.user_attrs.get(CANDIDATE) == second.user_attrs.get(CANDIDATE)  # None for optuna
    retry.set_user_attr(WORKER, backend.worker.as_dict())
    study.tell(retry, 2.0)
    trials = backend.trials()
    assert sum(map(counts_toward_budget, trials)) == 2
    assert backend.take_interrupted() == {second.number: second.params}  # this process failed it
    assert backend.take_interrupted() == {}
    assert backend.export_due()  # this process ran the last counted trial
    backend.mark_exported()
    assert not backend.export_due()  # once


@pytest.mark.parametrize("name", BACKENDS)
def test_trial_of_a_dead_local_process_is_failed_and_queued_at_once(tmp_path, name):
    """No waiting for the heartbeat grace period when the worker's pid is known to be gone."""
    backend = _backend(tmp_path, n_trials=2, backend=name)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = backend.study.ask()
    _suggest(trial)
    trial.set_user_attr(WORKER, backend.worker.as_dict() | {"pid": dead.pid, "started": None})
    alive = backend.study.ask()
    alive.set_user_attr(WORKER, backend.worker.as_dict())
    backend.recover()
    states = {t.number: t.state.name for t in backend.trials()}
    assert states == {trial.number: "FAIL", alive.number: "RUNNING", alive.number + 1: "WAITING"}
    assert backend.trials()[-1].params == trial.params
    assert backend.trials()[-1].user_attrs.get(CANDIDATE) == trial.user_attrs.get(CANDIDATE)
    assert backend.running_numbers() == {alive.number}


def test_a_dead_workers_trial_is_failed_and_queued_when_the_grid_is_covered(tmp_path):
    """The grid sampler stops the study (``study.stop()``, which raises outside ``optimize``) when the trial
    told is the last of its grid not finished: the dead worker's trial is still failed and queued again."""
    from tests.helpers import study_config
    from tuning.search.space import draw

    config = study_config(tmp_path, search={"sampler": "grid", "n_trials": 2},
                          space={"n_neurons": {"type": "categorical", "choices": [8, 16]}})
    store = make_store(config, tmp_path / "out")
    store.open("minimize", "mse")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    done, lost = store.study.ask(), store.study.ask()  # both grid points taken; the lost one's is the last
    for trial in (done, lost):
        draw(trial, config)
        trial.set_user_attr(WORKER, store.worker.as_dict())
    store.study.tell(done, 1.0)
    lost.set_user_attr(WORKER, store.worker.as_dict() | {"pid": dead.pid, "started": None})
    store.recover()
    states = {t.number: t.state.name for t in store.trials()}
    assert states == {done.number: "COMPLETE", lost.number: "FAIL", lost.number + 1: "WAITING"}
    assert store.trials()[-1].params == lost.params and store.take_interrupted() == {lost.number: lost.params}
    store.close()


def test_a_worker_is_its_pid_and_start_time_and_a_zombie_is_dead():
    """Liveness on this host: a recycled pid (same pid, another start time) and an unreaped child are not
    the worker; another host's worker is unknown."""
    import time

    import psutil

    from tuning.parallel.workers import WorkerId, group_alive, is_alive

    me = WorkerId.current()
    assert me.started == pytest.approx(psutil.Process().create_time())
    assert is_alive(me.as_dict()) is True and group_alive(me.group) is True
    assert is_alive(me.as_dict() | {"started": me.started - 3600}) is False  # the pid now runs another process
    assert group_alive(f"{me.host}:{me.pid}:{me.started - 3600}") is False
    assert is_alive(me.as_dict() | {"host": f"not-{me.host}"}) is None and group_alive("no group") is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        info = me.as_dict() | {"pid": child.pid, "started": psutil.Process(child.pid).create_time()}
        deadline = time.monotonic() + 60
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped yet
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert is_alive(info) is False
    finally:
        child.wait()
    assert is_alive(info) is False and group_alive(f"{me.host}:{child.pid}:None") is False


# ---- three workers, PostgreSQL + mlflow server -------------------------------------------------------
def _postgres_or_skip() -> str:
    try:
        import psycopg2

        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:
        print(f"no PostgreSQL server answers at {POSTGRES_URL}: {exc}".strip())
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_URL} (set TUNING_TEST_POSTGRES_URL): "
                    f"{str(exc).strip()}")
    return POSTGRES_URL


@pytest.fixture(scope="module")
def postgres_and_server(tmp_path_factory):
    """(PostgreSQL URL, one ``mlflow server`` for this module's studies, each its own experiment). The server
    is yielded while it starts: a test starts its workers first, then waits for it (``wait_healthy``)."""
    storage = _postgres_or_skip()
    directory = tmp_path_factory.mktemp("mlflow_server")
    with mlflow_server(directory, f"sqlite:///{mlflow_db(directory, 'server.db')}") as server:
        yield storage, server


@pytest.mark.parametrize("backend", BACKENDS)
def test_three_workers_on_postgres_and_an_mlflow_server(tmp_path, backend, postgres_and_server):
    """Three independent workers (as on three machines): exactly n_trials counted trials with unique
    numbers and parameters (the random backend: each seeded candidate once), one parent run, one run per
    trial, the best model exported once."""
    import optuna

    storage, server = postgres_and_server
    name = f"dist-{uuid.uuid4().hex[:10]}"
    n_trials = 6
    study = write_study(tmp_path, name, backend=backend, n_trials=n_trials, epochs=10)
    try:
        procs = []  # started with the server (first test): it comes up while they import TensorFlow
        for i in range(3):
            cmd = cli(study, "--storage", storage, "--tracking-uri", server.url, "--output-dir", str(tmp_path / f"w{i}"))
            procs.append(start(cmd, tmp_path, tmp_path / f"w{i}.log"))
        tracking = wait_healthy(server)
        codes = [p.wait(timeout=600) for p in procs]
        logs = "\n".join((tmp_path / f"w{i}.log").read_text(errors="replace")[-2000:] for i in range(3))
        assert codes == [0, 0, 0], logs
        parents, runs = mlflow_runs(tracking, name)

        storage = driver_url(storage)  # this process reads it directly (the CLI was given the plain URL)
        trials = load_trials(storage, name)
        counted = [t for t in trials if counts_toward_budget(t)]
        assert len(counted) == n_trials
        assert len({t.number for t in trials}) == len(trials)
        assert len({json.dumps(t.params, sort_keys=True) for t in counted}) == n_trials  # no duplicated trial
        assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
        if backend == "random":
            from tuning.config.schema import load_study
            from tuning.search.store.candidates import candidates

            ran = sorted((t.user_attrs[CANDIDATE], t.params) for t in counted)
            assert ran == list(enumerate(candidates(load_study(study), n_trials)))
        assert len(parents) == 1
        parent_id = parents[0].info.run_id
        assert optuna.load_study(study_name=name, storage=storage).user_attrs["mlflow_parent_run_id"] == parent_id
        check_one_run_per_trial(trials, runs, parent_id)
        assert parents[0].data.tags.get("best.trial") is not None
        exported = [i for i in range(3) if (tmp_path / f"w{i}" / "pipeline.joblib").exists()]
        assert len(exported) == 1, exported
        workers = {t.user_attrs[WORKER]["pid"] for t in counted}
        print(f"{len(trials)} trials ({len(trials) - len(counted)} not counted) by {len(workers)} worker(s); "
              f"exported by worker {exported[0]}")
    finally:
        with contextlib.suppress(Exception):
            optuna.delete_study(study_name=name, storage=driver_url(storage))
