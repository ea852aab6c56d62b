"""Checks that run on the loaded data before any training: task inference, row and class counts.

Each problem is a :class:`DataError` naming the study key to change; what loading decides on the user's
behalf goes into ``DatasetSplit.notes`` (the study prints them).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import type_of_target

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
    """Task from a target column, as scikit-learn's ``type_of_target`` reads it: ``continuous`` (non-integer
    numbers) -> regression, ``binary`` -> binary, ``multiclass`` -> multiclass, except integers that are not
    consecutive (0, 1, 2 ...) or more than MAX_CLASSES of them: a quantity (counts, amounts) -> regression."""
    _check_usable(y)
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    values = y.to_numpy(dtype=np.float64) if numeric else y.astype(str).to_numpy(dtype=object)
    kind = type_of_target(values, input_name=f"target '{y.name}'", raise_unknown=True)
    if kind == "continuous":
        return "regression"
    if kind == "multiclass" and numeric:
        classes = np.unique(values)
        consecutive = classes[-1] - classes[0] + 1 == len(classes)
        return "multiclass" if consecutive and len(classes) <= MAX_CLASSES else "regression"
    return kind


def _check_usable(y: pd.Series) -> None:
    """A target to learn: not the same value in every row, no infinite number."""
    if y.nunique() < 2:
        raise DataError(
            f"dataset.target: the target '{y.name}' has the same value ({y.iloc[0]!r}) in every row; there is "
            "nothing to learn"
        )
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        infinite = int(np.isinf(y.to_numpy(dtype=np.float64)).sum())
        if infinite:
            raise DataError(f"dataset.target: the target '{y.name}' has {infinite} infinite value(s); drop those rows")


def check_task(y: pd.Series, task: str, source: str) -> None:
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    n_values = y.nunique()
    _check_usable(y)
    if task == "regression" and not numeric:
        raise DataError(f"dataset.task is regression but the target '{y.name}' of {source} is not numeric")
    if task != "regression":
        if numeric and not np.all(np.mod(y.to_numpy(dtype=np.float64), 1) == 0):
            raise DataError(f"dataset.task is {task} but the target '{y.name}' has non-integer numbers")
        if task == "binary" and n_values != 2:
            raise DataError(
                f"dataset.task is binary but the target '{y.name}' has {n_values} distinct values"
            )
