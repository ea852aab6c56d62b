"""MLflow internals: the SQL store's engine, and putting back an unset global tracking URI."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import mlflow
from mlflow import MlflowClient


def sql_engine(client: MlflowClient) -> Any | None:
    """The SQLAlchemy engine of ``client``'s SQL store (one per tracking URI in a process), or None for any
    other store (a server, files)."""
    # Why internal: MLflow keeps its store behind MlflowClient._tracking_client.store (a SqlAlchemyStore for
    # a database URI, its engine as ``engine``); no public API hands out the engine, which we need to set
    # SQLite's ``synchronous`` on its connections (tuning.parallel.sqlite.relax_sync).
    try:
        return client._tracking_client.store.engine
    except Exception:
        return None


@contextlib.contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI set to ``uri`` for the block (``mlflow.sklearn.log_model`` logs there and
    takes no URI), then put back as it was: unset stays unset, so a later study without a URI still gets
    MLflow's default; the ``MLFLOW_TRACKING_URI`` variable (which ``set_tracking_uri`` also sets) too."""
    if mlflow.get_tracking_uri() == uri:
        yield
        return
    previous = mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None
    variable = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        # Why beyond the documented API: set_tracking_uri documents a str or Path; None is how MLflow
        # (its private _use_tracking_uri) goes back to "unset", and no public function does.
        mlflow.set_tracking_uri(previous)
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable
