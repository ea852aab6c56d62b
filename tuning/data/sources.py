"""Load a study's data set and split it, seeded, into train / validation / test.

The split is the classic recipe: first `test_size` of the rows go to test, then `valid_size` of the remaining
train part goes to validation, both with ``random_state=seed`` (and stratified for classification by default).

Sources:

* scikit-learn: california_housing (downloaded once into the scikit-learn cache, ``$SCIKIT_LEARN_DATA``
  or ``~/scikit_learn_data``), diabetes, digits, breast_cancer, iris, wine (shipped with scikit-learn).
* Keras: mnist, fashion_mnist (train and test joined, flattened to 784 pixels scaled to [0, 1]) and imdb
  (multi-hot vectors over the ``num_words`` most frequent words). Keras caches them in
  ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``) and downloads them when missing.
  With ``dataset.path``, they are read from local files instead (IDX files or an ``.npz``, see
  :mod:`tuning.data.readers`).
* csv / parquet / arff files (:mod:`tuning.data.readers`): ``target`` names the label column (or its index in a
  headerless file); the other columns (or ``keep``, minus ``drop``) are the features, kept raw, with their
  types and missing values: encoding them is the job of the fitted pipeline (:mod:`tuning.data.preprocessing`).
  Rows whose target is missing are dropped (a note says how many). When the study gives no task, it is
  inferred from the target (a note says so).

Data that cannot train a model (too few rows, a constant target, a class too small to reach the training
rows) is refused here, before any training, as a :class:`DataError` naming the study key.
"""

import difflib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tuning.config.schema import BUILTIN_TASKS, DatasetConfig
from tuning.data.checks import MAX_CLASSES, check_class_sizes, check_rows, check_task, infer_task
from tuning.data.readers import read_image_files, read_imdb_npz, read_table
from tuning.errors import DataError

__all__ = ["MAX_CLASSES", "DatasetSplit", "infer_task", "load_dataset"]

_ARRAYS = ("X_train", "y_train", "X_valid", "y_valid", "X_test", "y_test")
_KERAS_FILES = {
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
    "imdb": "imdb.npz",
}


@dataclass
class DatasetSplit:
    """The three parts of a data set: y float32 (regression) or the labels (classification).

    X is raw: a pandas DataFrame with the file's own columns and types for tables, a float32 2-D array for
    the built-in sources. ``notes`` are what the user should be told (inferred task, dropped rows);
    ``keep`` the columns the study chose explicitly (never dropped as ID-like).
    """

    name: str
    task: str
    X_train: np.ndarray | pd.DataFrame
    y_train: np.ndarray
    X_valid: np.ndarray | pd.DataFrame
    y_valid: np.ndarray
    X_test: np.ndarray | pd.DataFrame
    y_test: np.ndarray
    feature_names: list[str] = field(default_factory=list)
    classes: list[Any] | None = None
    notes: list[str] = field(default_factory=list)
    keep: list[str] | None = None
    #: with ``dataset.shape`` images / sequences: the unfitted step that replaces the tabular preprocessing
    #: (:mod:`tuning.data.shaped`); None for tables
    input_step: Any = None
    #: with ``dataset.shape: sequences``: the vocabulary size (ids 0 to vocab_size - 1)
    vocab_size: int | None = None

    def frame(self, part: str = "train") -> pd.DataFrame:
        """X of ``part`` (train / valid / test) as a DataFrame with the feature names."""
        X = getattr(self, f"X_{part}")
        return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=self.feature_names)

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
            value = getattr(self, name)
            if isinstance(value, pd.DataFrame):
                sha.update(f"{name}|{list(value.columns)}|{[str(t) for t in value.dtypes]}|".encode())
                sha.update(pd.util.hash_pandas_object(value, index=False).to_numpy().tobytes())
                continue
            array = np.ascontiguousarray(value)
            sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            if array.dtype == object:
                sha.update(repr(array.tolist()).encode())
            else:
                sha.update(array.tobytes())
        return sha.hexdigest()


@dataclass
class _Raw:
    X: np.ndarray | pd.DataFrame
    y: np.ndarray
    feature_names: list[str]
    task: str
    name: str
    notes: list[str] = field(default_factory=list)
    input_step: Any = None
    vocab_size: int | None = None


def load_dataset(cfg: DatasetConfig) -> DatasetSplit:
    """Load the data set `cfg` names, subsample it (`max_rows`), check it and split it train / valid / test."""
    raw = _LOADERS[cfg.source](cfg)
    X, y = _subsample(raw.X, raw.y, cfg.max_rows, cfg.seed)
    task = raw.task
    stratify = cfg.stratify if cfg.stratify is not None else task != "regression"
    if stratify and task == "regression":
        raise DataError(
            f"dataset.stratify: the target of '{raw.name}' is continuous (regression); cannot stratify"
        )
    check_rows(len(y), cfg, raw.name)
    if task != "regression":
        check_class_sizes(y, cfg, raw.name, stratify)
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
    if classes is not None:
        absent = [c for c in classes if c not in set(np.unique(y_train).tolist())]
        if absent:
            raise DataError(
                f"dataset.target: class(es) {', '.join(map(repr, absent))} of '{raw.name}' got no training row in "
                "the split; give them more rows, drop them, or set dataset.stratify: true"
            )
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
        notes=raw.notes,
        keep=cfg.keep,
        input_step=raw.input_step,
        vocab_size=raw.vocab_size,
    )


def _subsample_indices(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded sample of `max_rows` rows, or None when all rows are kept."""
    if max_rows is None or max_rows >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def _subsample(X: Any, y: np.ndarray, max_rows: int | None, seed: int) -> tuple[Any, np.ndarray]:
    index = _subsample_indices(len(y), max_rows, seed)
    if index is None:
        return X, y
    return (X.iloc[index].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[index]), y[index]


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
    """Where Keras caches data sets, as ``keras.utils.get_file`` documents it: ``$KERAS_HOME/datasets``,
    default ``~/.keras/datasets``."""
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
    if cfg.path:
        images, y = read_image_files(Path(cfg.path))
    else:
        (x_train, y_train), (x_test, y_test) = _keras_load(cfg.source)
        images = np.concatenate([x_train, x_test])
        y = np.concatenate([y_train, y_test]).astype(np.int64)
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    names = [f"pixel_{i}" for i in range(X.shape[1])]
    step = None
    if cfg.row_shape == "images":  # the rows stay flat pixels; the pipeline's first step makes them images
        from tuning.data.shaped import ToImages

        height, width = images.shape[1:3]
        step = ToImages(int(height), int(width), cfg.channels, names)
    return _Raw(X, y, names, cfg.task or "multiclass", cfg.source, input_step=step)


def _load_imdb(cfg: DatasetConfig) -> _Raw:
    if cfg.path:
        sequences, y = read_imdb_npz(Path(cfg.path), cfg.num_words)
    else:
        (x_train, y_train), (x_test, y_test) = _keras_load("imdb", num_words=cfg.num_words)
        sequences = list(x_train) + list(x_test)
        y = np.concatenate([y_train, y_test]).astype(np.int64)
    index = _subsample_indices(len(y), cfg.max_rows, cfg.seed)  # before the (large) multi-hot matrix
    if index is not None:
        sequences, y = [sequences[i] for i in index], y[index]
    if cfg.row_shape == "sequences":  # word ids, padded / cut to max_length; the pipeline pads new rows alike
        from tuning.data.shaped import PadSequences, pad_sequences

        length = cfg.sequence_length
        names = [f"token_{i}" for i in range(length)]
        X = pad_sequences(sequences, length, cfg.num_words)
        return _Raw(X, y, names, cfg.task or "binary", "imdb", input_step=PadSequences(length, cfg.num_words, names),
                    vocab_size=cfg.num_words)
    X = np.zeros((len(sequences), cfg.num_words), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        words = np.asarray(sequence, dtype=np.int64)
        X[row, words[(words >= 0) & (words < cfg.num_words)]] = 1.0
    names = [f"word_{i}" for i in range(cfg.num_words)]
    return _Raw(X, y, names, cfg.task or "binary", "imdb")


# ---------------------------------------------------------------------------------------- csv/parquet/arff


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _target_column(frame: pd.DataFrame, cfg: DatasetConfig, path: Path) -> str:
    target = str(cfg.target)
    if target in frame.columns:
        return target
    columns = list(frame.columns)
    hint = _suggest(target, columns)
    if not cfg.header and target.isdigit():
        hint = f"; the file has {len(columns)} columns, numbered 0 to {len(columns) - 1}"
    shown = ", ".join(columns[:30]) + (" ..." if len(columns) > 30 else "")
    raise DataError(f"dataset.target: column '{target}' not found in '{path}'{hint}; columns: {shown or '(none)'}")


def _feature_columns(frame: pd.DataFrame, cfg: DatasetConfig, path: Path) -> pd.DataFrame:
    """The feature columns the study asks for (`keep`, else all but `drop`), names checked."""
    key, names = ("keep", cfg.keep) if cfg.keep is not None else ("drop", cfg.drop)
    unknown = [n for n in names if n not in frame.columns]
    if unknown:
        hints = "".join(_suggest(n, list(frame.columns)) for n in unknown[:1])
        raise DataError(
            f"dataset.{key}: column(s) {', '.join(map(repr, unknown))} not found among the features of '{path}'"
            f"{hints}; features: {', '.join(list(frame.columns)[:30])}"
        )
    features = frame[list(names)] if cfg.keep is not None else frame.drop(columns=list(names))
    if features.shape[1] == 0:
        raise DataError(f"'{path}' has no feature column left besides the target '{cfg.target}'")
    return features


def _load_table(cfg: DatasetConfig) -> _Raw:
    path = Path(str(cfg.path))
    frame = read_table(cfg)
    target = _target_column(frame, cfg, path)
    notes = []
    n_missing = int(frame[target].isna().sum())
    if n_missing:
        notes.append(f"dropped {n_missing} row(s) of '{path.name}' with no value in the target '{target}'")
        frame = frame.loc[frame[target].notna()].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"'{path}' has no row with a value in the target column '{target}'")
    y = frame[target]
    features = _feature_columns(frame.drop(columns=[target]), cfg, path)
    task = cfg.task or infer_task(y)
    if cfg.task is None:
        notes.append(f"task: {task} (inferred from the target '{target}', {y.nunique()} distinct values); "
                     "set dataset.task to change it")
    check_task(y, task, f"'{path}'")
    if task == "regression" or pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        labels = y.to_numpy(dtype=np.float64)
        labels = labels if task == "regression" else labels.astype(np.int64)
    elif pd.api.types.is_bool_dtype(y):
        labels = y.to_numpy(dtype=bool)
    else:
        labels = y.astype(str).to_numpy(dtype=str)
    if not cfg.header:  # pandas names a headerless file's columns 0, 1, 2 ...: the MLflow signature does too
        features.attrs["positional_names"] = True
    return _Raw(features, _labels(labels, task), [str(c) for c in features.columns], task, path.name, notes)


_LOADERS = {
    **{source: _load_sklearn for source in
       ("california_housing", "diabetes", "digits", "breast_cancer", "iris", "wine")},
    "mnist": _load_images,
    "fashion_mnist": _load_images,
    "imdb": _load_imdb,
    "csv": _load_table,
    "parquet": _load_table,
    "arff": _load_table,
}  # fmt: skip
