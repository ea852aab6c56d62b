"""Each internal of another library that a compat module uses (``tuning/compat/``, ``estimators/compat/``),
checked as we rely on it: these fail loudly when the library renames, removes or changes one. The other
modules use the libraries' public APIs only (tests/test_architecture.py)."""

from __future__ import annotations

import os
import time

import pytest

from tests.helpers import tracking_uri

# ---- Optuna ----------------------------------------------------------------------------------------------


def _heartbeat_study(tmp_path):
    import optuna

    from tuning.search.backends.optuna_storage import quiet_experimental

    with quiet_experimental():
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1,
                                             grace_period=2)
    return optuna.create_study(storage=storage), storage


def _stale_failed(study) -> None:
    import optuna

    from tuning.search.backends.optuna_storage import quiet_experimental

    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")  # ask() outside optimize()
def test_optuna_trial_heartbeat_keeps_an_asked_trial_alive_until_stopped(tmp_path):
    """TrialHeartbeat: Optuna's heartbeat thread (optuna.storages._heartbeat.get_heartbeat_thread with
    Trial._trial_id and Study._storage) records a trial asked outside optimize(), so fail_stale_trials leaves
    it running; stopped, the trial goes stale after the grace period."""
    from optuna.trial import TrialState

    from tuning.compat.optuna import TrialHeartbeat

    study, storage = _heartbeat_study(tmp_path)
    trial = study.ask()
    heartbeat = TrialHeartbeat(study, trial)
    heartbeat.start()
    try:
        time.sleep(3.5)  # longer than the grace period: alive only through its heartbeats
        _stale_failed(study)
        assert study.get_trials()[0].state == TrialState.RUNNING
    finally:
        heartbeat.stop()
    time.sleep(3.5)
    _stale_failed(study)
    assert study.get_trials()[0].state == TrialState.FAIL
    storage.engine.dispose()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")
def test_optuna_trial_heartbeat_is_nothing_without_heartbeats():
    import optuna

    from tuning.compat.optuna import TrialHeartbeat

    study = optuna.create_study()  # in memory: no heartbeats
    heartbeat = TrialHeartbeat(study, study.ask())
    heartbeat.start()
    heartbeat.stop()


def test_optuna_storage_engine_is_the_rdb_storages_sqlalchemy_engine(tmp_path):
    """storage_engine: RDBStorage.engine, the SQLAlchemy engine of its URL (connections tuned and closed)."""
    import optuna
    import sqlalchemy

    from tuning.compat.optuna import storage_engine

    path = tmp_path / "optuna.db"
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    engine = storage_engine(storage)
    assert isinstance(engine, sqlalchemy.engine.Engine)
    assert engine.url.database == str(path)
    engine.dispose()


# ---- MLflow ----------------------------------------------------------------------------------------------


def test_mlflow_sql_engine_is_the_sql_stores_engine(tmp_path):
    """sql_engine: MlflowClient._tracking_client.store.engine for a database URI; None for other stores."""
    import sqlalchemy
    from mlflow import MlflowClient

    from tuning.compat.mlflow import sql_engine

    uri = tracking_uri(tmp_path)
    engine = sql_engine(MlflowClient(uri))
    assert isinstance(engine, sqlalchemy.engine.Engine)
    assert engine.url.database == uri.removeprefix("sqlite:///")
    assert sql_engine(MlflowClient("http://127.0.0.1:9")) is None  # a server's store has no engine


@pytest.fixture
def unset_tracking_uri(monkeypatch):
    """MLflow's global tracking URI unset (and MLFLOW_TRACKING_URI), and unset again afterwards."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    yield
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_mlflow_global_tracking_uri_puts_back_unset(unset_tracking_uri, tmp_path):
    """global_tracking_uri: the URI is MLflow's global one inside; afterwards an unset URI is unset again
    (mlflow.set_tracking_uri(None), what MLflow's private _use_tracking_uri does) and so is the variable."""
    import mlflow

    from tuning.compat.mlflow import global_tracking_uri

    uri = tracking_uri(tmp_path)
    default = mlflow.get_tracking_uri()
    assert not mlflow.tracking.is_tracking_uri_set()
    with global_tracking_uri(uri):
        assert mlflow.get_tracking_uri() == uri
    assert not mlflow.tracking.is_tracking_uri_set()
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() == default


def test_mlflow_global_tracking_uri_puts_back_a_set_uri_and_the_variable(unset_tracking_uri, tmp_path, monkeypatch):
    import mlflow

    from tuning.compat.mlflow import global_tracking_uri

    mlflow.set_tracking_uri("sqlite:///first.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///exported.db")
    with global_tracking_uri(tracking_uri(tmp_path)):
        pass
    assert mlflow.get_tracking_uri() == "sqlite:///first.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///exported.db"
