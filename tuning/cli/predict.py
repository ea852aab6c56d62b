"""Command line: ``python -m tuning.predict MODEL input.csv [-o predictions.csv] [--proba]``.

MODEL is an export directory (``exports/<study>``) or an MLflow model URI (``runs:/<id>/model``,
``models:/<name>/<version>``). The input is a CSV (or TSV with ``--sep``) or Parquet file with the feature
columns by name (extra columns are kept in the output and ignored by the model). The output is the input
columns plus ``prediction`` (and, with ``--proba``, one ``proba_<class>`` column per class of a
classifier), as CSV or Parquet by the output's suffix, or CSV on standard output.

Exit codes: 0 success, 2 unreadable input, missing columns or a model that cannot be loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["load_any", "main", "predict_frame", "read_input"]

_SEPARATORS = {"whitespace": r"\s+", "tab": "\t", "comma": ",", "semicolon": ";"}


class PredictError(Exception):
    """A user-side problem (file, columns, model location)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuning.predict", description="Predict on a table with an exported model.")
    p.add_argument("model", help="export directory (with pipeline.joblib) or MLflow model URI")
    p.add_argument("input", help="CSV / TSV / Parquet file of raw rows")
    p.add_argument("-o", "--output", help="where to write (.csv or .parquet); default: CSV on standard output")
    p.add_argument("--proba", action="store_true", help="add per-class probability columns (classifiers)")
    p.add_argument("--sep", default=",", help="input separator: a character, 'tab' or 'whitespace' (default ',')")
    p.add_argument("--no-header", action="store_true", help="the input's first row is data (columns 0, 1, ...)")
    return p.parse_args(argv)


def read_input(path: str | Path, sep: str = ",", header: bool = True) -> Any:
    """The rows to predict on, as pandas reads them."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise PredictError(f"input file not found: '{path}'")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=_SEPARATORS.get(sep, sep), header=0 if header else None)
    except Exception as exc:
        raise PredictError(f"cannot read '{path}': {exc}") from exc
    frame.columns = [str(c) for c in frame.columns]
    return frame


def load_any(model: str) -> Any:
    """The fitted pipeline from an export directory or an MLflow model URI."""
    from tuning.export.shipped_code import ShippedCodeError

    path = Path(model)
    if path.is_dir() and (path / "pipeline.joblib").is_file():
        from tuning.export.files import load_model

        try:
            return load_model(path)
        except ShippedCodeError as exc:  # a shipped code file changed since the export: not imported
            raise PredictError(str(exc)) from None
    if path.exists() and not (path / "MLmodel").is_file():
        raise PredictError(f"'{model}' is neither an export directory (no pipeline.joblib) nor an MLflow model")
    try:
        from tuning.export.mlflow_model import load_verified

        return load_verified(model)
    except ShippedCodeError as exc:
        raise PredictError(str(exc)) from None
    except Exception as exc:
        raise PredictError(f"cannot load the model '{model}': {exc}") from exc


def predict_frame(pipeline: Any, frame: Any, proba: bool = False) -> Any:
    """``frame`` plus a ``prediction`` column (and ``proba_<class>`` columns when asked)."""
    import numpy as np

    try:
        out = frame.copy()
        out["prediction"] = pipeline.predict(frame)
        if proba:
            if not hasattr(pipeline, "predict_proba"):
                raise PredictError("--proba: the model is a regressor; it predicts no class probabilities")
            probabilities = np.asarray(pipeline.predict_proba(frame))
            for i, label in enumerate(pipeline.classes_):
                out[f"proba_{label}"] = probabilities[:, i]
    except PredictError:
        raise
    except ValueError as exc:  # missing columns, wrong shape ...
        raise PredictError(str(exc)) from exc
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        frame = read_input(args.input, args.sep, not args.no_header)
        from tuning.parallel.process import configure_study_process

        configure_study_process(start_tensorflow=True)
        out = predict_frame(load_any(args.model), frame, args.proba)
        if args.output is None:
            out.to_csv(sys.stdout, index=False)
        elif str(args.output).lower().endswith((".parquet", ".pq")):
            out.to_parquet(args.output, index=False)
        else:
            out.to_csv(args.output, index=False)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        print(f"{len(out)} predictions written to {args.output}", file=sys.stderr)
    return 0
