"""Export the refitted best model: a pipeline that predicts on raw rows, plus its metadata.

The export directory holds ``pipeline.joblib`` (preprocessing + estimator, the thing to load),
``model.keras`` (the bare Keras network; for an ensemble ``model_1.keras``, ``model_2.keras``, ... in the
order of ``best_params.json``'s ``ensemble.members``), ``preprocessing.joblib``, ``best_params.json`` and
``metrics.json``. When the model is a user's own (``KerasModelRegressor`` / ``KerasModelClassifier``, or an
ensemble of them) the factory's source file travels too: ``code/<module>.py`` and ``code.json`` (see
:mod:`tuning.export.shipped_code`). ``load_model(dir)`` imports that code, then returns the pipeline, in any
process and working directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
from sklearn.pipeline import Pipeline

from tuning.export.shipped_code import import_shipped_code, ship_code
from tuning.search import metrics as metric_fns

PIPELINE_FILE = "pipeline.joblib"


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
    """Write the export files; return their paths by role."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "pipeline": out_dir / PIPELINE_FILE,
        "keras": out_dir / "model.keras",
        "preprocessing": out_dir / "preprocessing.joblib",
        "best_params": out_dir / "best_params.json",
        "metrics": out_dir / "metrics.json",
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
    """
    import_shipped_code(export_dir)
    return joblib.load(Path(export_dir) / PIPELINE_FILE)
