"""The MLflow model's input side: raw example rows and a column schema that raw rows pass."""

from __future__ import annotations

from typing import Any

__all__ = ["column_schema", "feature_types", "raw_example"]


def raw_example(pipeline, X: Any):
    """The first rows of ``X`` as a DataFrame with the original feature names (numbers as float64)."""
    import numpy as np
    import pandas as pd

    columns, used = None, None
    first = pipeline.steps[0][1] if pipeline.steps else None
    inner = getattr(first, "steps", None)
    if inner:  # the preprocessing pipeline: its first step knows the raw column names and those it uses
        columns = getattr(inner[0][1], "columns", None)
        used = list(getattr(inner[0][1], "kinds", None) or {}) or None
    elif first is not None:  # images / token sequences (tuning.data.shaped): their flat columns' names
        columns = getattr(first, "columns", None)
    frame = X.iloc[:5].copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X)[:5], columns=columns)
    frame.columns = [str(c) for c in frame.columns]
    positional = isinstance(X, pd.DataFrame) and X.attrs.get("positional_names")
    if used is not None:  # columns the pipeline drops (ID-like) are not asked for
        frame = frame[[c for c in frame.columns if c in used]]
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            frame[name] = col.astype(np.float64)
        elif not pd.api.types.is_datetime64_any_dtype(col):
            frame[name] = col.astype(object).where(col.notna(), None).map(lambda v: v if v is None else str(v))
    if positional:  # a headerless file: pandas reads its columns as 0, 1, 2 ... (ints), so name them so
        frame.columns = [int(c) for c in frame.columns]
    return frame


def column_schema(frame):
    """An MLflow input schema: one column spec per raw column.

    Numbers are declared ``Any``: MLflow's type check refuses int64 for a ``double`` column and float64 for a
    ``long`` one, yet pandas reads an integer column as int64, or as float64 once a value is missing; the
    pipeline's first step casts them (``feature_types`` gives the training types). Text is ``string``,
    dates ``datetime``.
    """
    import pandas as pd
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import AnyType

    specs = []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col):
            kind = AnyType()
        elif pd.api.types.is_datetime64_any_dtype(col):
            kind = DataType.datetime
        else:
            kind = DataType.string
        specs.append(ColSpec(kind, name))
    return Schema(specs)


def feature_types(X: Any) -> dict[str, str]:
    """Column name -> pandas dtype of the training rows (for the model's metadata)."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return {str(c): str(t) for c, t in X.dtypes.items()}
    return {}
