"""Each internal of another library that a compat module uses (``tuning/compat/``, ``estimators/compat/``),
checked as we rely on it: these fail loudly when the library renames, removes or changes one. The other
modules use the libraries' public APIs only (tests/test_architecture.py)."""

from __future__ import annotations

import inspect
import os
import time
import warnings

import numpy as np
import pytest

from tests.helpers import tracking_uri

# ---- Optuna ----------------------------------------------------------------------------------------------


def _heartbeat_study(tmp_path):
    import optuna

    from tuning.search.store.storage import quiet_experimental

    with quiet_experimental():
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1,
                                             grace_period=2)
    return optuna.create_study(storage=storage), storage


def _stale_failed(study) -> None:
    import optuna

    from tuning.search.store.storage import quiet_experimental

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
    """MLflow's global tracking URI unset (and MLFLOW_TRACKING_URI); afterwards both as they were."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None
    variable = os.environ.get("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    yield
    mlflow.set_tracking_uri(previous)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if variable is not None:
        os.environ["MLFLOW_TRACKING_URI"] = variable


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


# ---- Keras and TensorFlow ------------------------------------------------------------------------------------


def _fit_fresh_model(fix: bool) -> None:
    import keras

    from estimators.compat.keras import skip_single_replica_all_reduce

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(0.01)
    model.compile(loss="mse", optimizer=skip_single_replica_all_reduce(optimizer) if fix else optimizer)
    rows = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    model.fit(rows, rows[:, 0], epochs=1, batch_size=8, verbose=0)


def test_keras_sums_one_replicas_gradients_in_a_private_method_that_leaks_and_the_fix_stops_it():
    """skip_single_replica_all_reduce: the TensorFlow optimizer's private _all_reduce_sum_gradients(grads_and_vars)
    still leaks one gradient-registry entry per fit of a new model, and the replaced method leaks none. When
    Keras stops leaking (the first assertion fails), the fix can go."""
    import keras

    from estimators.compat.tensorflow import gradient_registry_size

    method = keras.optimizers.SGD(0.01)._all_reduce_sum_gradients
    assert list(inspect.signature(method).parameters) == ["grads_and_vars"]
    _fit_fresh_model(fix=True)  # one-off tracing of the first fit
    before = gradient_registry_size()
    for _ in range(2):
        _fit_fresh_model(fix=False)
    assert gradient_registry_size() - before >= 2, "Keras no longer leaks: skip_single_replica_all_reduce may go"
    before = gradient_registry_size()
    for _ in range(2):
        _fit_fresh_model(fix=True)
    assert gradient_registry_size() == before


def test_keras_fit_makes_iterators_per_epoch_iterators_of_a_dataset_and_each_draws_the_next_order():
    """iterators_per_epoch: the orders a 3-epoch fit trains on are the pipeline's orders 0, k and 2k (k =
    iterators_per_epoch()), and a fit resumed after one epoch on a pipeline that skipped k orders trains on
    orders k and 2k."""
    import keras

    from estimators.common.data_pipeline import array_dataset
    from estimators.compat.keras import iterators_per_epoch

    X = np.arange(8, dtype="float32").reshape(-1, 1)
    pipeline = lambda skip=0: array_dataset((X, X[:, 0]), 8, shuffle=True, seed=3, skip_orders=skip)  # noqa: E731
    dataset = pipeline()
    orders = [next(iter(dataset))[1].numpy().tolist() for _ in range(7)]
    assert len({tuple(o) for o in orders}) == 7  # every new iterator draws another order
    seen = []

    class Seeing(keras.Sequential):
        def train_step(self, data):
            seen.append(data[1].numpy().tolist())
            return super().train_step(data)

    k = iterators_per_epoch()
    model = Seeing([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", run_eagerly=True)
    model.fit(pipeline(), epochs=3, verbose=0, shuffle=False)
    assert seen == [orders[0], orders[k], orders[2 * k]]
    seen.clear()
    model.fit(pipeline(skip=k), epochs=3, initial_epoch=1, verbose=0, shuffle=False)
    assert seen == [orders[k], orders[2 * k]]


def test_tensorflow_gradient_registry_counts_each_traced_custom_gradient():
    """gradient_registry_size: len(tensorflow.python.framework.ops._gradient_registry._registry), one more per
    tf.custom_gradient traced in a graph."""
    import tensorflow as tf

    from estimators.compat.tensorflow import gradient_registry_size

    @tf.custom_gradient
    def identity(x):
        return tf.identity(x), lambda dy: dy

    before = gradient_registry_size()
    tf.function(identity).get_concrete_function(tf.TensorSpec([2], tf.float32))
    assert gradient_registry_size() == before + 1


# ---- scikeras ----------------------------------------------------------------------------------------------


def _probe(model_fn):
    """A scikeras regressor with FitSteps whose ``_train`` records what scikeras' fit hands over."""
    from scikeras.wrappers import KerasRegressor

    from estimators.compat.scikeras import FitSteps

    class Probe(FitSteps, KerasRegressor):
        def _keras_build_fn(self):
            return model_fn()

        def _train(self, X, y, sample_weight, epochs, initial_epoch):
            self.calls_ = [*getattr(self, "calls_", []), (X, y, sample_weight, epochs, initial_epoch)]

    return Probe(epochs=3, verbose=0)


def _dense():
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    return model


def test_scikeras_fit_and_partial_fit_train_in_the_private_fit_keras_model():
    """FitSteps._fit_keras_model: scikeras' fit and partial_fit end in BaseWrapper._fit_keras_model(X, y,
    sample_weight, warm_start, epochs, initial_epoch) with the validated, encoded rows (zero weights dropped)."""
    from scikeras.wrappers import BaseWrapper

    assert list(inspect.signature(BaseWrapper._fit_keras_model).parameters) == [
        "self", "X", "y", "sample_weight", "warm_start", "epochs", "initial_epoch", "kwargs"]
    X, y = np.arange(8, dtype="float32").reshape(4, 2), [0.5, 1.5, 2.5, 3.5]
    est = _probe(_dense).fit(X, y, sample_weight=np.array([1.0, 0.0, 2.0, 1.0]))
    (rows, targets, weights, epochs, initial_epoch), = est.calls_
    assert isinstance(rows, np.ndarray) and rows.shape == (3, 2) and list(targets) == [0.5, 2.5, 3.5]
    assert list(weights) == [1.0, 2.0, 1.0] and (epochs, initial_epoch) == (3, 0)
    est.partial_fit(X, y)
    assert est.calls_[-1][3:] == (1, 0)  # one epoch, from the current one (no history recorded here)


def test_scikeras_checks_the_models_outputs_in_a_private_method_skipped_for_a_subclassed_model():
    """FitSteps._check_model_compatibility: scikeras compares len(model.outputs) with the targets before
    training (a mismatch is a ValueError); a subclassed model, which has no outputs, skips it."""
    import keras

    def two_outputs():
        inputs = keras.Input((2,))
        model = keras.Model(inputs, [keras.layers.Dense(1)(inputs), keras.layers.Dense(1)(inputs)])
        model.compile(loss="mse", optimizer="sgd")
        return model

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    def subclassed():
        model = Subclassed()
        model.compile(loss="mse", optimizer="sgd")
        return model

    X, y = np.ones((4, 2), dtype="float32"), np.ones(4)
    with pytest.raises(ValueError, match="has 2 outputs"):
        _probe(two_outputs).fit(X, y)
    assert getattr(subclassed(), "outputs", None) is None
    assert len(_probe(subclassed).fit(X, y).calls_) == 1


def test_scikeras_validates_after_a_fit_in_a_private_method_that_refuses_another_dtype():
    """FitSteps._validate_data and check_after_fit: BaseWrapper._validate_data(X, y, reset, y_numeric) refuses,
    after a float32 fit, a float64 X; with FitSteps it passes (values unchanged) and the shape checks stay."""
    from scikeras.wrappers import BaseWrapper, KerasRegressor

    from estimators.compat.scikeras import check_after_fit

    assert list(inspect.signature(BaseWrapper._validate_data).parameters) == ["self", "X", "y", "reset", "y_numeric"]
    X, y = np.ones((4, 2), dtype="float32"), np.ones(4, dtype="float32")
    plain = KerasRegressor(model=_dense, epochs=1, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match="is not safe"):
        plain._validate_data(X.astype("float64"), reset=False)
    est = _probe(_dense).fit(X, y)
    rows, _ = check_after_fit(est, np.full((3, 2), 0.1, dtype="float64"))
    assert rows.dtype == np.float64 and rows[0, 0] == 0.1
    with pytest.raises(ValueError, match="X has 3 features"):
        check_after_fit(est, np.ones((2, 3)))
    with pytest.raises(ValueError, match="dimensions"):
        check_after_fit(est, np.ones((2, 2, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, targets = check_after_fit(est, X, y)
    assert targets.dtype == np.float32
