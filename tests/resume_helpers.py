"""Helpers for the resume and distributed tests: tiny study files, the CLI in a subprocess, read-backs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests import warm_python

ROOT = Path(__file__).resolve().parents[1]


def write_study(directory: Path, name: str, **search: Any) -> Path:
    """A tiny diabetes study: fixed-cost trials (no early stopping), ``search`` overrides the search section."""
    epochs = search.pop("epochs", 5)
    study = {
        "name": name,
        "dataset": {"source": "diabetes", "seed": 42},
        "recipe": "plain",  # the schema's defaults (one process, the best trial alone) where a key is left out
        "space": {
            "n_neurons": {"type": "int", "low": 8, "high": 32},
            "learning_rate": {"type": "float", "low": 1.0e-3, "high": 3.0e-3, "log": True},
        },
        "search": {"backend": "optuna", "n_trials": 4, "pruner": "none", "sampler": "random", **search},
        "training": {"epochs": epochs, "batch_size": 32, "early_stopping": {"enabled": False}},
    }
    path = Path(directory) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


@contextmanager
def without_charts() -> Iterator[None]:
    """In this process, the end-of-study report without its PNG charts (slow to draw; test_report draws them)."""
    import pytest

    import tuning.report.html

    def no_pictures(study: Any, out_dir: Path) -> list:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return []

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tuning.report.html, "write_pictures", no_pictures)
        yield


def mlflow_db(directory: Path, name: str = "mlflow.db") -> Path:
    """A migrated MLflow SQLite store: a copy of the session's template (conftest) when there is one."""
    target = Path(directory) / name
    template = os.environ.get("TUNING_TEST_MLFLOW_TEMPLATE")
    if template and Path(template).exists():
        shutil.copy(template, target)
    return target


def cli_env() -> dict[str, str]:
    """Environment of a CLI subprocess: quiet TensorFlow, this checkout importable, fast model logging
    (MLflow's pip-requirement inference imports TensorFlow again in a subprocess: capped, it falls back to
    the default requirements, which these tests do not look at)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(TF_CPP_MIN_LOG_LEVEL="3", MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT="1", PYTHONUNBUFFERED="1")
    return env


def cli(study: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tuning.run", str(study), "--quiet", *args]


def start(cmd: list[str], cwd: Path, log: Path) -> warm_python.WarmProcess:
    """The CLI in the background (started warm: tests/warm_python.py), output to ``log``."""
    return warm_python.popen(cmd, cwd=cwd, env=cli_env(), stdout=log)


def run(cmd: list[str], cwd: Path, log: Path, timeout: float = 300) -> int:
    """The CLI to completion; its exit code (the log is printed by a failing assertion's caller)."""
    proc = start(cmd, cwd, log)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.2,
             alive: warm_python.WarmProcess | None = None) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` or if ``alive`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"the process exited ({alive.returncode}) before {what}")
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def _sqlite_storage_ready(path: Path) -> bool:
    """True once the study's process has created the Optuna tables and stamped their version.

    Opening the storage before that would race its creator to create them (a UNIQUE constraint error on
    alembic_version in one of the two processes), so a poller reads the file read-only until then.
    """
    import sqlite3

    if not path.exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM alembic_version").fetchone()[0] > 0
    except sqlite3.Error:  # no table yet, or locked by the creator
        return False


def load_trials(storage: str, name: str) -> list[Any]:
    """The stored Optuna trials of study ``name`` ([] while it does not exist yet)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if storage.startswith("sqlite:///") and not _sqlite_storage_ready(Path(storage[len("sqlite:///"):])):
        return []
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


def mlflow_runs(tracking_uri: str, experiment: str) -> tuple[list[Any], list[Any]]:
    """(parent runs, trial runs) of an experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("tuning.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("tuning.role") == "trial"]
    return parents, trials


def check_one_run_per_trial(trials: list[Any], runs: list[Any], parent_id: str) -> dict[int, Any]:
    """Exactly one MLflow run per (non-surplus) Optuna trial, all children of ``parent_id``, none RUNNING; a
    trial resumed from the checkpoint of earlier attempts has their run (tag ``trial.resumed_from``)."""
    resumed = {int(n) for r in runs for n in r.data.tags.get("trial.resumed_from", "").split()}
    wanted = {t.number for t in trials if "surplus" not in t.user_attrs} - resumed
    numbers = Counter(int(r.data.tags["trial.number"]) for r in runs)
    assert set(numbers) == wanted, (sorted(numbers), sorted(wanted))
    assert max(numbers.values()) == 1, numbers
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent_id}
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    return {int(r.data.tags["trial.number"]): r for r in runs}
