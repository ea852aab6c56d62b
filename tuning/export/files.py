"""Export the refitted best model: a pipeline that predicts on raw rows, plus its metadata.

The export directory holds ``pipeline.joblib`` (preprocessing + estimator, the thing to load),
``model.keras`` (the bare Keras network; for an ensemble ``model_1.keras``, ``model_2.keras``, ... in the
order of ``best_params.json``'s ``ensemble.members``), ``preprocessing.joblib``, ``best_params.json`` and
``metrics.json``. When the model is a user's own (``KerasModelRegressor`` / ``KerasModelClassifier``, or an
ensemble of them) the factory's source file travels too: ``code/<module>.py`` and ``code.json`` (see
:mod:`tuning.export.shipped_code`). ``load_model(dir)`` imports that code, then returns the pipeline, in any
process and working directory.

The export directory is also the study's own folder (its ``optuna.db``, ``recipe.json``, report ...), so an
export replaces only its own files, and all of them: written first into a staging folder inside it
(``.export-*``, same file system), then renamed into place one by one, ``pipeline.joblib`` last, and only
then are the previous export's files that the new one has not (``model_4.keras`` after an ensemble of 3,
``code/`` after a user's model) removed. So a failure while writing leaves the previous export as it was,
each file is replaced whole (a reader never opens a half-written file), and nothing stale lingers; the swap
itself is a few renames, not one: a reader racing it may load files of both exports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import joblib
from sklearn.pipeline import Pipeline

from tuning.export.old_paths import old_module_paths
from tuning.export.results import BEST_FILE, METRICS_FILE
from tuning.export.shipped_code import CODE_DIR, CODE_FILE, import_shipped_code, ship_code
from tuning.search.trial import metrics as metric_fns

PIPELINE_FILE = "pipeline.joblib"
PREPROCESSING_FILE = "preprocessing.joblib"
KERAS_FILE = "model.keras"
STAGING_PREFIX = ".export-"  # the staging folder of an export being written (a killed one's goes next time)
_MEMBER_FILE = re.compile(r"model_\d+\.keras")  # an ensemble member's network
_EXPORT_FILES = {PIPELINE_FILE, PREPROCESSING_FILE, KERAS_FILE, BEST_FILE, METRICS_FILE, CODE_FILE, CODE_DIR}


def is_export_file(name: str) -> bool:
    """Whether ``name`` in an export directory belongs to the export (not to the study: ``optuna.db``, ...)."""
    return name in _EXPORT_FILES or bool(_MEMBER_FILE.fullmatch(name))


def make_pipeline(scaler: Any, estimator: Any) -> Pipeline:
    """A fitted pipeline from a fitted scaler (or None) and a fitted estimator."""
    steps = [("preprocessing", scaler)] if scaler is not None else []
    return Pipeline(steps + [("model", estimator)])


def test_metrics(pipeline: Pipeline, X_test, y_test, metric: str, task: str) -> dict[str, float]:
    """The objective metric and the usual companions on the held-out test set."""
    names = ["mse", "rmse", "mae", "r2"] if task == "regression" else ["accuracy", "log_loss"]
    if metric not in names:
        names.insert(0, metric)
    out = {}
    for name in names:
        try:
            out[name] = metric_fns.score(name, pipeline, X_test, y_test)
        except ValueError:  # e.g. log_loss when the test set lacks a class
            continue
    return out


def export_model(pipeline: Pipeline, out_dir: Path, best: dict[str, Any], metrics: dict[str, float]) -> dict[str, Path]:
    """Write the export files, replacing the previous export's (see the module docstring); return their paths
    by role."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob(STAGING_PREFIX + "*"):  # of an export killed while writing
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        written = _write_export(pipeline, staging, best, metrics)
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {role: out_dir / path.relative_to(staging) for role, path in written.items()}


def _write_export(pipeline: Pipeline, out_dir: Path, best: dict[str, Any], metrics: dict[str, float]) -> dict[str, Path]:
    """Write the export files into ``out_dir`` (an empty folder); return their paths by role."""
    paths = {
        "pipeline": out_dir / PIPELINE_FILE,
        "keras": out_dir / KERAS_FILE,
        "preprocessing": out_dir / PREPROCESSING_FILE,
        "best_params": out_dir / BEST_FILE,
        "metrics": out_dir / METRICS_FILE,
    }
    joblib.dump(pipeline, paths["pipeline"])
    for path in ship_code(pipeline, out_dir):  # a user's factory: its file, for loading in another process
        paths[f"code:{path.relative_to(out_dir).as_posix()}"] = path
    model = pipeline.named_steps["model"]
    if hasattr(model, "estimators_"):  # an ensemble: one Keras file per member, in best_params.json's order
        del paths["keras"]
        for i, member in enumerate(model.estimators_, start=1):
            paths[f"keras_{i}"] = out_dir / f"model_{i}.keras"
            member.model_.save(paths[f"keras_{i}"])
    else:
        model.model_.save(paths["keras"])
    joblib.dump(pipeline.named_steps.get("preprocessing"), paths["preprocessing"])
    paths["best_params"].write_text(json.dumps(best, indent=2, default=str) + "\n")
    paths["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    return paths


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Move the export written in ``staging`` into ``out_dir`` and remove the previous export's files it has
    not: the shipped code first (what ``load_model`` imports before it unpickles), ``pipeline.joblib`` last,
    each file by one rename that replaces the old one. ``code/``, a folder, cannot be replaced by a rename:
    the old one is moved into ``staging`` (removed with it) just before."""
    new = sorted((p.name for p in staging.iterdir()),
                 key=lambda name: (name != CODE_DIR, name == PIPELINE_FILE, name))
    stale = [p for p in out_dir.iterdir() if is_export_file(p.name) and p.name not in new]
    if (out_dir / CODE_DIR).is_dir():
        os.replace(out_dir / CODE_DIR, staging / f"{CODE_DIR}.replaced")
    for name in new:
        os.replace(staging / name, out_dir / name)
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def save_model(model: Any, out_dir: str | Path) -> Path:
    """Export a model you fitted yourself (``RandomizedSearchCV(...).best_estimator_``, a Pipeline whose last
    step is one of our estimators or an ensemble of them, or such an estimator alone) as a study exports
    its best: ``pipeline.joblib``, the Keras file(s) and a user's factory's code, so that
    :func:`load_model` and ``python -m tuning.predict`` load it in any process. Returns ``out_dir``."""
    if isinstance(model, Pipeline):
        steps = model.steps
        before = Pipeline(steps[:-1]) if len(steps) > 2 else (steps[0][1] if len(steps) == 2 else None)
        model = make_pipeline(before, steps[-1][1])
    else:
        model = make_pipeline(None, model)
    export_model(model, Path(out_dir), {}, {})
    return Path(out_dir)


def load_model(export_dir: str | Path) -> Pipeline:
    """The exported pipeline: ``load_model(dir).predict(raw_rows)``.

    ``raw_rows`` is a DataFrame with the training feature columns by name (any numeric dtype, text, missing
    values, unseen categories; extra columns ignored, a missing one refused by name) or a numeric array of
    the feature columns in training order. Predictions are in the target's units / original labels.
    A user's model factory shipped with the export (``code.json``) is imported first, under its own module
    name, unless a module of that name is already imported.
    An export written before the estimators moved into folders loads too (:mod:`tuning.export.old_paths`).
    """
    import_shipped_code(export_dir)
    path = Path(export_dir) / PIPELINE_FILE
    with old_module_paths(path.read_bytes()):
        return joblib.load(path)
