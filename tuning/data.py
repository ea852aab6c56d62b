"""Load a study's data set and split it, seeded, into train / validation / test.

The split is the classic recipe: first `test_size` of the rows go to test, then `valid_size` of the remaining
train part goes to validation, both with ``random_state=seed`` (and stratified for classification by default).

Sources:

* scikit-learn: california_housing (downloaded once into the scikit-learn cache, ``$SCIKIT_LEARN_DATA``
  or ``~/scikit_learn_data``), diabetes, digits, breast_cancer, iris, wine (shipped with scikit-learn).
* Keras: mnist, fashion_mnist (train and test joined, flattened to 784 pixels scaled to [0, 1]) and imdb
  (multi-hot vectors over the ``num_words`` most frequent words). Keras caches them in
  ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``) and downloads them when missing.
* csv / parquet files: ``target`` names the label column; every other column is a feature. Non-numeric
  feature columns are one-hot encoded (``pandas.get_dummies``, one 0/1 column per value, named
  ``<column>_<value>``). Rows whose target is missing are dropped; missing feature values are an error
  (nothing is imputed silently). When the study gives no task, it is inferred from the target.
"""

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tuning.config import BUILTIN_TASKS, DatasetConfig
from tuning.errors import DataError

__all__ = ["MAX_CLASSES", "DatasetSplit", "infer_task", "load_dataset"]

#: An integer or string target with at most this many distinct values is taken as classification.
MAX_CLASSES = 50
_ARRAYS = ("X_train", "y_train", "X_valid", "y_valid", "X_test", "y_test")
_KERAS_FILES = {
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
    "imdb": "imdb.npz",
}


@dataclass
class DatasetSplit:
    """The three parts of a data set: X float32 2-D; y float32 (regression) or the labels (classification)."""

    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str] = field(default_factory=list)
    classes: list[Any] | None = None

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each array, by name."""
        return {name: tuple(getattr(self, name).shape) for name in _ARRAYS}

    @property
    def n_features(self) -> int:
        """Number of input columns."""
        return int(self.X_train.shape[1])

    def digest(self) -> str:
        """sha256 of the six arrays (dtype, shape and bytes), stable across runs and machines."""
        sha = hashlib.sha256()
        for name in _ARRAYS:
            array = np.ascontiguousarray(getattr(self, name))
            sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            if array.dtype == object:
                sha.update(repr(array.tolist()).encode())
            else:
                sha.update(array.tobytes())
        return sha.hexdigest()


@dataclass
class _Raw:
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    task: str
    name: str


def load_dataset(cfg: DatasetConfig) -> DatasetSplit:
    """Load the data set `cfg` names, subsample it (`max_rows`) and split it train / valid / test."""
    raw = _LOADERS[cfg.source](cfg)
    X, y = _subsample(raw.X, raw.y, cfg.max_rows, cfg.seed)
    task = raw.task
    stratify = cfg.stratify if cfg.stratify is not None else task != "regression"
    if stratify and task == "regression":
        raise DataError(
            f"dataset.stratify: the target of '{raw.name}' is continuous (regression); cannot stratify"
        )
    try:
        X_full, X_test, y_full, y_test = train_test_split(
            X, y, test_size=cfg.test_size, random_state=cfg.seed, stratify=y if stratify else None
        )
        X_train, X_valid, y_train, y_valid = train_test_split(
            X_full,
            y_full,
            test_size=cfg.valid_size,
            random_state=cfg.seed,
            stratify=y_full if stratify else None,
        )
    except ValueError as exc:
        raise DataError(
            f"cannot split '{raw.name}' ({len(y)} rows) with test_size={cfg.test_size}, "
            f"valid_size={cfg.valid_size}{', stratified' if stratify else ''}: {exc}"
        ) from exc
    classes = None if task == "regression" else np.unique(y).tolist()
    return DatasetSplit(
        name=raw.name,
        task=task,
        X_train=X_train,
        y_train=y_train,
        X_valid=X_valid,
        y_valid=y_valid,
        X_test=X_test,
        y_test=y_test,
        feature_names=raw.feature_names,
        classes=classes,
    )


def _subsample_indices(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded sample of `max_rows` rows, or None when all rows are kept."""
    if max_rows is None or max_rows >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def _subsample(
    X: np.ndarray, y: np.ndarray, max_rows: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    index = _subsample_indices(len(y), max_rows, seed)
    return (X, y) if index is None else (X[index], y[index])


def _labels(y: np.ndarray, task: str) -> np.ndarray:
    """float32 targets for regression; integer labels as int64, other labels (strings, bools) as they are."""
    if task == "regression":
        return np.asarray(y, dtype=np.float32)
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    return y


# ------------------------------------------------------------------------------------------ scikit-learn


def _load_sklearn(cfg: DatasetConfig) -> _Raw:
    from sklearn import datasets

    if cfg.source == "california_housing":
        try:
            bunch = datasets.fetch_california_housing()
        except Exception as exc:
            home = os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data"))
            raise DataError(
                f"cannot load california_housing: {exc}. scikit-learn looks for its cache in {home} "
                "(cal_housing_py3.pkz) and downloads the data when it is missing: set SCIKIT_LEARN_DATA to a "
                "folder holding the scikit-learn cache, or allow downloading"
            ) from exc
    else:
        bunch = getattr(datasets, f"load_{cfg.source}")()
    task = cfg.task or BUILTIN_TASKS[cfg.source]
    X = np.asarray(bunch.data, dtype=np.float32)
    return _Raw(
        X, _labels(np.asarray(bunch.target), task), [str(n) for n in bunch.feature_names], task, cfg.source
    )


# ------------------------------------------------------------------------------------------------- Keras


def _keras_datasets_dir() -> str:
    """Where Keras caches data sets (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``)."""
    try:
        from keras.src.backend.config import keras_home

        home = keras_home()
    except Exception:  # private API: fall back to what Keras documents
        home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    return os.path.join(os.path.expanduser(home), "datasets")


def _keras_load(name: str, **kwargs: Any) -> Any:
    """Call ``keras.datasets.<name>.load_data`` (the real loader), turning failures into a DataError."""
    try:
        import keras
    except ImportError as exc:
        raise DataError(f"the '{name}' data set needs Keras (and TensorFlow) installed: {exc}") from exc
    try:
        return getattr(keras.datasets, name).load_data(**kwargs)
    except Exception as exc:
        raise DataError(
            f"cannot load the Keras data set '{name}': {exc}. Keras keeps it in {_keras_datasets_dir()} "
            f"(expected file: {_KERAS_FILES[name]}) and downloads it when missing; set KERAS_HOME to a folder "
            "whose datasets/ subfolder holds the files, or allow downloading"
        ) from exc


def _load_images(cfg: DatasetConfig) -> _Raw:
    (x_train, y_train), (x_test, y_test) = _keras_load(cfg.source)
    images = np.concatenate([x_train, x_test])
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    names = [f"pixel_{i}" for i in range(X.shape[1])]
    return _Raw(X, y, names, cfg.task or "multiclass", cfg.source)


def _load_imdb(cfg: DatasetConfig) -> _Raw:
    (x_train, y_train), (x_test, y_test) = _keras_load("imdb", num_words=cfg.num_words)
    sequences = list(x_train) + list(x_test)
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    index = _subsample_indices(len(y), cfg.max_rows, cfg.seed)  # before the (large) multi-hot matrix
    if index is not None:
        sequences, y = [sequences[i] for i in index], y[index]
    X = np.zeros((len(sequences), cfg.num_words), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        words = np.asarray(sequence, dtype=np.int64)
        X[row, words[(words >= 0) & (words < cfg.num_words)]] = 1.0
    names = [f"word_{i}" for i in range(cfg.num_words)]
    return _Raw(X, y, names, cfg.task or "binary", "imdb")


# -------------------------------------------------------------------------------------------- csv/parquet


def infer_task(y: pd.Series) -> str:
    """Task from a target column: non-integer numbers -> regression; 2 values -> binary; integers or strings
    with at most MAX_CLASSES distinct values -> multiclass; more integers -> regression (strings: multiclass)."""
    n_values = y.nunique()
    if n_values < 2:
        raise DataError(f"target '{y.name}' has a single value; there is nothing to learn")
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        values = y.to_numpy(dtype=np.float64)
        if not np.all(np.mod(values, 1) == 0):
            return "regression"
        if n_values == 2:
            return "binary"
        return "multiclass" if n_values <= MAX_CLASSES else "regression"
    return "binary" if n_values == 2 else "multiclass"


def _check_task(y: pd.Series, task: str, source: str) -> None:
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    n_values = y.nunique()
    if task == "regression" and not numeric:
        raise DataError(f"dataset.task is regression but the target '{y.name}' of {source} is not numeric")
    if task != "regression":
        if numeric and not np.all(np.mod(y.to_numpy(dtype=np.float64), 1) == 0):
            raise DataError(f"dataset.task is {task} but the target '{y.name}' has non-integer numbers")
        if task == "binary" and n_values != 2:
            raise DataError(
                f"dataset.task is binary but the target '{y.name}' has {n_values} distinct values"
            )
        if n_values < 2:
            raise DataError(f"target '{y.name}' has a single value; there is nothing to learn")


def _load_table(cfg: DatasetConfig) -> _Raw:
    path = Path(str(cfg.path))
    try:
        frame = pd.read_csv(path) if cfg.source == "csv" else pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise DataError(f"dataset.path: file not found: '{path}'") from exc
    except Exception as exc:  # parser errors, bad parquet, missing engine...
        raise DataError(f"cannot read {cfg.source} file '{path}': {exc}") from exc
    target = str(cfg.target)
    columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise DataError(
            f"dataset.target: column '{target}' not found in '{path}'; columns: {', '.join(columns) or '(none)'}"
        )
    frame = frame.loc[frame[target].notna()]
    if frame.empty:
        raise DataError(f"'{path}' has no row with a value in the target column '{target}'")
    y = frame[target]
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"'{path}' has no feature column besides the target '{target}'")
    missing = features.isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        listed = ", ".join(f"{col} ({n} rows)" for col, n in missing.items())
        raise DataError(
            f"missing values in feature columns of '{path}': {listed}; fill or drop them before tuning "
            "(no imputation is done)"
        )
    dates = [str(c) for c in features.columns if pd.api.types.is_datetime64_any_dtype(features[c])
             or pd.api.types.is_timedelta64_dtype(features[c])]  # fmt: skip
    if dates:
        raise DataError(
            f"date/time feature columns in '{path}': {', '.join(dates)}; convert them to numbers first"
        )
    categorical = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if categorical:
        features = pd.get_dummies(features, columns=categorical, dtype=np.float32)
    task = cfg.task or infer_task(y)
    _check_task(y, task, f"'{path}'")
    X = features.to_numpy(dtype=np.float32)
    if task == "regression" or pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        labels = y.to_numpy(dtype=np.float64)
        labels = labels if task == "regression" else labels.astype(np.int64)
    elif pd.api.types.is_bool_dtype(y):
        labels = y.to_numpy(dtype=bool)
    else:
        labels = y.astype(str).to_numpy(dtype=str)
    return _Raw(X, _labels(labels, task), [str(c) for c in features.columns], task, path.name)


_LOADERS = {
    **{source: _load_sklearn for source in
       ("california_housing", "diabetes", "digits", "breast_cancer", "iris", "wine")},
    "mnist": _load_images,
    "fashion_mnist": _load_images,
    "imdb": _load_imdb,
    "csv": _load_table,
    "parquet": _load_table,
}  # fmt: skip
