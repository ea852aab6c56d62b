"""Shared test set-up: quiet TensorFlow, and one migrated MLflow database to copy per test."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The settings of a study process (oneDNN off before TensorFlow loads, quiet libraries, heap freezing),
# whichever test module imports TensorFlow first; subprocesses of the tests inherit the environment, so a
# seeded fit is the same in both.
from tuning.parallel.process import configure_study_process  # noqa: E402

configure_study_process()


@pytest.fixture(scope="session", autouse=True)
def mlflow_template_db(tmp_path_factory):
    """Create (and migrate) an empty MLflow SQLite store once; tests copy it instead of migrating anew.

    Creating a fresh store runs MLflow's schema migrations, which costs seconds per test.
    """
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    os.environ["TUNING_TEST_MLFLOW_TEMPLATE"] = str(path)
    return path
