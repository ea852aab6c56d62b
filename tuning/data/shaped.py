"""Network inputs beyond one flat table: images, token sequences, and columns split among named inputs.

* ``dataset.shape: images`` (mnist, fashion_mnist): :class:`ToImages` replaces the tabular preprocessing. It
  takes the rows as the flat source gives them, 784 pixels in [0, 1] (a DataFrame with the columns
  ``pixel_0`` ... ``pixel_783`` by name, or an array of 784 columns; arrays already shaped ``(n, 28, 28)`` or
  ``(n, 28, 28, 1)`` pass too) and gives float32 images ``(n, 28, 28)``, or ``(n, 28, 28, 1)`` with
  ``channels``. No imputing or scaling: the pixels are already in [0, 1].
* ``dataset.shape: sequences`` (imdb): :class:`PadSequences` takes the reviews as word-index sequences: a
  list of sequences of any lengths, or a table / array of padded rows (columns ``token_0`` ... by name, any
  width; missing cells are padding) and gives int32 rows of ``max_length`` ids: padded with 0 after the
  review, cut after ``max_length`` words, ids at or above ``vocab_size`` replaced by 2 (Keras' out-of-vocabulary
  id), as the study's training rows are.
* ``model.inputs`` (:func:`input_columns`): each Keras input name with the columns it takes, by name (or
  0-based position) among the raw feature columns; the columns the tabular preprocessing makes of them (the
  column itself for a number, its one-hot columns for a category, its date parts) become the estimator's
  ``inputs``: indices of the preprocessed features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["OOV_ID", "PadSequences", "ToImages", "input_columns", "pad_sequences", "preprocessed_names"]

#: the id Keras' imdb loader gives words outside the vocabulary
OOV_ID = 2


class ToImages(TransformerMixin, BaseEstimator):
    """Flat pixel rows -> float32 images ``(n, height, width[, 1])`` (see the module docstring)."""

    def __init__(self, height: int = 28, width: int = 28, channels: bool = False, columns: list[str] | None = None):
        self.height = height
        self.width = width
        self.channels = channels
        self.columns = columns

    def fit(self, X: Any, y: Any = None) -> ToImages:
        self.n_features_in_ = self.height * self.width
        return self

    def transform(self, X: Any) -> np.ndarray:
        n_pixels = self.height * self.width
        if isinstance(X, pd.DataFrame):
            names = list(self.columns or [])
            X = X.rename(columns=str)
            missing = [c for c in names if c not in X.columns]
            if names and not missing:
                X = X[names]
            elif X.shape[1] != n_pixels:
                raise ValueError(f"the input lacks {len(missing)} pixel column(s) the model was trained on: "
                                 f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
            X = X.to_numpy(dtype=np.float32)
        array = np.asarray(X, dtype=np.float32)
        if array.ndim == 1 and array.size == n_pixels:
            array = array.reshape(1, -1)
        if array.ndim < 2 or int(np.prod(array.shape[1:])) != n_pixels:
            raise ValueError(f"expected rows of {n_pixels} pixels ({self.height} x {self.width}, flat or as images); "
                             f"got an array of shape {array.shape}")
        shape = (self.height, self.width, 1) if self.channels else (self.height, self.width)
        return array.reshape((len(array), *shape))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.columns or [f"pixel_{i}" for i in range(self.height * self.width)], dtype=object)


def pad_sequences(sequences: Any, max_length: int, vocab_size: int | None = None) -> np.ndarray:
    """Word-index sequences (a list of any lengths, or padded rows; NaN is padding) as an int32 array of
    ``max_length`` columns: 0 after the sequence, cut after ``max_length``, ids >= ``vocab_size`` -> 2."""
    if isinstance(sequences, pd.DataFrame):
        sequences = sequences.to_numpy(dtype=np.float64)
    if isinstance(sequences, np.ndarray) and sequences.dtype != object:
        rows = sequences.reshape(1, -1) if sequences.ndim == 1 else sequences
        if rows.ndim != 2:
            raise ValueError(f"expected word-index sequences (a list of them, or rows of ids); got shape {rows.shape}")
        rows = [row[~np.isnan(row)] if row.dtype.kind == "f" else row for row in rows]
    else:
        rows = list(sequences)
        if rows and np.isscalar(rows[0]):  # one sequence alone
            rows = [rows]
    out = np.zeros((len(rows), max_length), dtype=np.int32)
    for i, row in enumerate(rows):
        ids = np.asarray(row, dtype=np.float64).ravel()[:max_length]
        if ids.size and (np.any(ids < 0) or np.any(ids != np.round(ids))):
            raise ValueError(f"row {i}: word indices must be integers >= 0")
        ids = ids.astype(np.int64)
        if vocab_size is not None:
            ids = np.where(ids < vocab_size, ids, OOV_ID)
        out[i, : ids.size] = ids
    return out


class PadSequences(TransformerMixin, BaseEstimator):
    """Word-index sequences -> int32 rows of ``max_length`` ids (see the module docstring)."""

    def __init__(self, max_length: int = 256, vocab_size: int | None = None, columns: list[str] | None = None):
        self.max_length = max_length
        self.vocab_size = vocab_size
        self.columns = columns

    def fit(self, X: Any, y: Any = None) -> PadSequences:
        self.n_features_in_ = self.max_length
        return self

    def transform(self, X: Any) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            X = X.rename(columns=str)
            names = [c for c in (self.columns or []) if c in X.columns]
            if names:  # the token columns by name, in order; other columns (a label) are ignored
                X = X[sorted(names, key=list(self.columns or []).index)]
        return pad_sequences(X, int(self.max_length), self.vocab_size)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.columns or [f"token_{i}" for i in range(self.max_length)], dtype=object)


def preprocessed_names(pipeline: Any, raw_columns: list[str]) -> list[tuple[str, str]]:
    """The tabular preprocessing's output columns, each as (its name, the raw column it comes from)."""
    columns_step = pipeline.steps[0][1]
    kinds = dict(columns_step.kinds or {})
    encode = dict(pipeline.steps).get("encode")
    if encode is None:  # numbers only: imputer (optional missing indicators) and scaler keep the order
        names = [(c, c) for c in kinds]
        imputer = dict(pipeline.steps).get("impute")
        indicator = getattr(imputer, "indicator_", None)
        if indicator is not None:
            names += [(f"missingindicator_{list(kinds)[i]}", list(kinds)[i]) for i in indicator.features_]
        return names
    out = []
    for name in encode.get_feature_names_out():
        part, _, column = str(name).partition("__")
        if part == "categorical":
            source = next((c for c in kinds if kinds[c] == "categorical" and column.startswith(f"{c}_")), column)
        elif column.startswith("missingindicator_"):
            source = column[len("missingindicator_"):]
        else:
            source = next((c for c in kinds if kinds[c] == "datetime" and column.startswith(f"{c}_")), column)
        out.append((column, source))
    return out


def input_columns(mapping: dict[str, list[Any]], pipeline: Any, raw_columns: list[str]) -> dict[str, list[int]]:
    """``model.inputs`` as indices of the preprocessed features: each listed raw column (a name, or an int:
    the column of that name in a headerless file, else the 0-based position among the feature columns)
    selects every preprocessed column made from it. A column that is not a feature raises ValueError."""
    raw_columns = [str(c) for c in raw_columns]
    names = preprocessed_names(pipeline, raw_columns)
    out: dict[str, list[int]] = {}
    for input_name, columns in mapping.items():
        indices: list[int] = []
        for column in columns:
            key = str(column)
            if key not in raw_columns and isinstance(column, int) and 0 <= column < len(raw_columns):
                key = raw_columns[column]
            found = [i for i, (name, source) in enumerate(names) if source == key and not name.startswith(
                "missingindicator_")] or [i for i, (name, _) in enumerate(names) if name == key]
            if not found:
                shown = ", ".join(raw_columns[:30]) + (" ..." if len(raw_columns) > 30 else "")
                why = "is not a feature column (or was dropped)" if key not in raw_columns else "was dropped"
                raise ValueError(f"inputs.{input_name}: column {column!r} {why}; feature columns: {shown}")
            indices += [i for i in found if i not in indices]
        out[input_name] = indices
    return out
