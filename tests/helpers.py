"""Small study configurations for tests: bundled data, few epochs, everything under a temp dir."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from tuning.config.schema import StudyConfig, load_study_dict

BASE: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"source": "diabetes", "test_size": 0.2, "valid_size": 0.25, "seed": 0},
    "recipe": "plain",  # the schema's defaults where a test leaves a key out; tests/test_recipe.py: tables
    "space": {
        "n_hidden": {"type": "int", "low": 0, "high": 2},
        "n_neurons": {"type": "int", "low": 2, "high": 16},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    },
    "preprocessing": {"target_scaling": "standard"},
    "model": {"optimizer": "adam"},
    "search": {"backend": "optuna", "n_trials": 3, "seed": 0, "pruner": "none"},
    "training": {"epochs": 4, "batch_size": 64, "early_stopping": {"patience": 2}},
    "export": {"baseline": False},  # seconds of boosting per study; tests/test_train_on.py checks it
}


def merge(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "space":
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tracking_uri(tmp_path: Path) -> str:
    """A SQLite MLflow store in ``tmp_path``, copied from the session's already-migrated template."""
    db = Path(tmp_path) / "mlflow.db"
    template = os.environ.get("TUNING_TEST_MLFLOW_TEMPLATE")
    if template and not db.exists():
        shutil.copyfile(template, db)
    return f"sqlite:///{db}"


def log_model_in_a_run(uri: str, experiment_id: str, pipeline: Any, rows: Any) -> str:
    """``pipeline`` logged as the study would log it (``tuning.export.mlflow_model.log_model``), in a new
    parent run of ``experiment_id`` in the store at ``uri``; the logged model's URI."""
    from mlflow import MlflowClient

    from tuning.export.mlflow_model import log_model
    from tuning.tracking.tracker import MlflowTracker

    client = MlflowClient(uri)
    tracker = MlflowTracker(uri, client.get_experiment(experiment_id).name, background=False)
    tracker.experiment_id = experiment_id
    tracker.parent_run_id = client.create_run(experiment_id).info.run_id
    log_model(tracker, pipeline, rows, None)
    return client.get_run(tracker.parent_run_id).data.tags["model.uri"]


def study_dict(tmp_path: Path, **changes: Any) -> dict:
    """A tiny study with its MLflow store and output directory inside ``tmp_path``."""
    data = merge(BASE, changes)
    data = merge(data, {
        "mlflow": {"tracking_uri": tracking_uri(tmp_path)},
        "export": {"dir": str(tmp_path / "out")},
    })
    return data


def study_config(tmp_path: Path, **changes: Any) -> StudyConfig:
    return load_study_dict(study_dict(tmp_path, **changes))


def write_study(tmp_path: Path, name: str = "study.yaml", **changes: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(study_dict(tmp_path, **changes), sort_keys=False))
    return path


def run_study_without_model_logging(path: Path, tmp: Path):
    """``run_study(path, quiet=True)`` from ``tmp`` (MLflow's artifact store lands there), skipping the
    MLflow model upload (slow; tested in test_study)."""
    import pytest

    from tuning.study import run_study

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)
        patch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)
        return run_study(path, quiet=True)


def no_pictures(study, out_dir: Path) -> list:
    """Stand-in for ``tuning.report.html.write_pictures``: the report without its charts (slow to draw,
    tested in test_report), so ``report.html`` and its table are still written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return []


def table_cells(table: str, first: str) -> list[str]:
    """The cells of the first markdown table row whose first cell is ``first``."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            return cells
    raise AssertionError(f"no row '{first}' in:\n{table}")


# Runs, in order, in the one process it starts, each of the commands of the JSON list in argv[1] as
# ``python SCRIPT ARGS`` / ``python -m MODULE ARGS`` would (as __main__, with that sys.argv), with the
# environment entries given for it; prints each one's exit code, stdout and error (a traceback) as the JSON
# list of its last line. A failed command does not stop the next.
_ONE_PROCESS = """
import contextlib, io, json, os, runpy, sys, traceback
results = []
for kind, target, args, env in json.loads(sys.argv[1]):
    os.environ.update(env)
    sys.argv = [target, *args]
    out, code, error = io.StringIO(), 0, None
    try:
        with contextlib.redirect_stdout(out):
            if kind == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        code, error = 1, traceback.format_exc()
    results.append({"code": code, "stdout": out.getvalue(), "error": error})
print(json.dumps(results))
"""


def in_one_process(commands: list[tuple], cwd: Path, env: dict, timeout: float = 600) -> list[dict]:
    """Commands that would each start a process, run one after the other in ONE new process (a TensorFlow and
    MLflow start-up saved per command): each ``(kind, target, args, env)`` with ``kind`` ``"script"``
    (``python target *args``) or ``"module"`` (``python -m target *args``) and environment entries set before
    it runs. Returns per command ``{"code", "stdout", "error", "stderr"}`` (stderr: the process's); fails when the process itself fails.

    A command run first starts the process as it would alone; a later one finds what the earlier ones
    imported (a test that needs a module imported first by a command puts that command first)."""
    import json
    import sys

    from tests import warm_python

    runner = Path(cwd) / "_one_process.py"
    runner.write_text(_ONE_PROCESS)
    plan = [[kind, str(target), [str(a) for a in args], dict(extra)] for kind, target, args, extra in commands]
    done = warm_python.run([sys.executable, str(runner), json.dumps(plan)], cwd=cwd, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == len(commands), done.stdout[-3000:]
    for result in results:
        result["stderr"] = done.stderr[-3000:]  # the process's, shared by its commands
    return results
