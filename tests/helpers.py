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
    from tuning.tracking.tracker import MlflowTracker

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)
        patch.setattr(MlflowTracker, "log_model", lambda *args, **kwargs: None)
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
