"""Checks that run on the loaded data before any training: task inference, row and class counts.

Each problem is a :class:`DataError` naming the study key to change; what loading decides on the user's
behalf goes into ``DatasetSplit.notes`` (the study prints them).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tuning.config.schema import DatasetConfig
from tuning.errors import DataError

__all__ = ["MAX_CLASSES", "MIN_TRAIN_ROWS", "check_class_sizes", "check_rows", "check_task", "infer_task"]

#: An integer target is taken as class labels only when its values are consecutive (0, 1, 2 ...) and at
#: most this many (else it is a quantity: regression).
MAX_CLASSES = 20
#: The split must leave at least this many training rows (and 2 validation and 2 test rows).
MIN_TRAIN_ROWS = 10


def check_rows(n: int, cfg: DatasetConfig, name: str) -> None:
    """Refuse a split that leaves too few rows to train, stop early and test."""
    n_test = math.ceil(n * cfg.test_size)
    n_valid = math.ceil((n - n_test) * cfg.valid_size)
    n_train = n - n_test - n_valid
    if n_train < MIN_TRAIN_ROWS or n_valid < 2 or n_test < 2:
        raise DataError(
            f"dataset: '{name}' has only {n} rows{' (dataset.max_rows)' if cfg.max_rows == n else ''}; with "
            f"test_size={cfg.test_size} and valid_size={cfg.valid_size} that leaves {n_train} training, "
            f"{n_valid} validation and {n_test} test rows (at least {MIN_TRAIN_ROWS}, 2 and 2 are needed): "
            "use a larger table"
        )


def check_class_sizes(y: np.ndarray, cfg: DatasetConfig, name: str, stratify: bool) -> None:
    """Every class must be able to reach the training, validation and test rows."""
    values, counts = np.unique(y, return_counts=True)
    need = 3 if stratify else 1
    small = [(v, c) for v, c in zip(values.tolist(), counts.tolist(), strict=True) if c < need]
    if small:
        listed = ", ".join(f"{v!r} ({c} row{'s' if c > 1 else ''})" for v, c in small[:10])
        raise DataError(
            f"dataset.target: class(es) too small for the split of '{name}': {listed}; each class needs at least "
            f"{need} rows to reach the training, validation and test rows. Drop or merge these classes, use "
            "more rows (dataset.max_rows), or set dataset.task: regression if the target is a quantity"
        )


def infer_task(y: pd.Series) -> str:
    """Task from a target column: non-integer numbers -> regression; 2 values -> binary; consecutive integers
    (at most MAX_CLASSES of them) or strings -> multiclass; other integers (counts, amounts) -> regression."""
    _check_not_constant(y)
    n_values = y.nunique()
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        values = np.unique(y.to_numpy(dtype=np.float64))
        if not np.all(np.mod(values, 1) == 0):
            return "regression"
        if n_values == 2:
            return "binary"
        consecutive = values[-1] - values[0] + 1 == n_values
        return "multiclass" if consecutive and n_values <= MAX_CLASSES else "regression"
    return "binary" if n_values == 2 else "multiclass"


def _check_not_constant(y: pd.Series) -> None:
    if y.nunique() < 2:
        raise DataError(
            f"dataset.target: the target '{y.name}' has the same value ({y.iloc[0]!r}) in every row; there is "
            "nothing to learn"
        )


def check_task(y: pd.Series, task: str, source: str) -> None:
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    n_values = y.nunique()
    _check_not_constant(y)
    if task == "regression" and not numeric:
        raise DataError(f"dataset.task is regression but the target '{y.name}' of {source} is not numeric")
    if task != "regression":
        if numeric and not np.all(np.mod(y.to_numpy(dtype=np.float64), 1) == 0):
            raise DataError(f"dataset.task is {task} but the target '{y.name}' has non-integer numbers")
        if task == "binary" and n_values != 2:
            raise DataError(
                f"dataset.task is binary but the target '{y.name}' has {n_values} distinct values"
            )
