"""Feature preprocessing fitted inside the exported pipeline, so the model predicts on raw rows.

``build_preprocessor(frame, cfg)`` looks at the training frame once and returns an unfitted scikit-learn
pipeline plus notes for the user:

1. :class:`RawFrame` takes a DataFrame (columns matched by name, extra ones ignored, missing ones refused) or
   a 2-D numpy array of the original feature columns, and gives every column the type it had in training:
   numbers as float64, categories as strings (missing stays missing), booleans as 0/1, ISO dates as
   year / month / day / day-of-week / hour numbers.
2. A ``ColumnTransformer``: numbers imputed (median, optional missing indicator) then scaled as
   ``preprocessing.scaling`` says (``robust``: :class:`RobustSmoothClip`); categories imputed (``"missing"``)
   and one-hot encoded, rare ones grouped (``min_frequency``) and unseen ones ignored.
3. The result as a float32 array.

String columns whose values are (nearly) all distinct, such as names or IDs, carry nothing a network can
learn from; they are dropped with a note.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    QuantileTransformer,
    StandardScaler,
)
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

__all__ = ["DATE_PARTS", "RawFrame", "RobustSmoothClip", "build_preprocessor", "column_kinds", "make_scaler"]

#: Numbers taken out of a date/time column, one new column each (``<column>_<part>``).
DATE_PARTS = ("year", "month", "day", "day_of_week", "hour")
#: A string column is ID-like when at least this share of its (non-missing) values are distinct.
ID_SHARE = 0.9
#: ... and it has at least this many values (tiny tables keep their string columns).
ID_MIN_ROWS = 20


class RobustSmoothClip(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """RealMLP's robust scaling with smooth clipping (Holzmüller et al. 2024), per feature.

    Centred on the training median and divided by the interquartile range (``quantile_range``, as
    ``RobustScaler(quantile_range=(25, 75))``); where that range is 0, by half the min-max range, and by 1
    where that is 0 too (a constant column). Then ``z / sqrt(1 + (z / clip) ** 2)``: near ``z`` for small
    values, within +-``clip`` for outliers. Missing values stay missing.
    """

    def __init__(self, quantile_range: tuple[float, float] = (25.0, 75.0), clip: float = 3.0):
        self.quantile_range = quantile_range
        self.clip = clip

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any = None) -> RobustSmoothClip:
        X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan")
        low, high = np.nanpercentile(X, list(self.quantile_range), axis=0)
        half_range = 0.5 * (np.nanmax(X, axis=0) - np.nanmin(X, axis=0))
        self.center_ = np.nanmedian(X, axis=0)
        self.scale_ = np.where(high - low != 0, high - low, np.where(half_range != 0, half_range, 1.0))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan", reset=False)
        z = (X - self.center_) / self.scale_
        return (z / np.hypot(1.0, z / self.clip)).astype(X.dtype, copy=False)  # hypot: no overflow to 0


def make_scaler(kind: str, n_rows: int | None = None) -> Any:
    """The scaler for ``preprocessing.scaling`` (None for ``none``)."""
    if kind == "robust":  # RealMLP's: median / IQR, then smoothly clipped to +-3
        return RobustSmoothClip()
    if kind == "quantile":  # each feature mapped to a standard normal through its train quantiles
        n_quantiles = 1000 if n_rows is None else max(2, min(1000, n_rows))
        return QuantileTransformer(output_distribution="normal", n_quantiles=n_quantiles, random_state=0)
    return {"standard": StandardScaler, "minmax": MinMaxScaler}.get(kind, lambda: None)()


def _is_bool(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col):
        return True
    values = set(col.dropna().unique().tolist())
    return col.dtype == object and bool(values) and values <= {True, False}


def _is_date(col: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(col):
        return True
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return False
    values = col.dropna()
    if values.empty or not all(isinstance(v, str) for v in values.iloc[:50]):
        return False
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    return bool(parsed.notna().mean() >= 0.9)


def column_kinds(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Columns by kind: ``numeric``, ``boolean``, ``datetime``, ``categorical``, ``id_like`` (dropped),
    ``timedelta`` (refused)."""
    kinds: dict[str, list[str]] = {k: [] for k in
                                   ("numeric", "boolean", "datetime", "categorical", "id_like", "timedelta")}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_timedelta64_dtype(col):
            kinds["timedelta"].append(name)
        elif _is_bool(col):
            kinds["boolean"].append(name)
        elif pd.api.types.is_numeric_dtype(col):
            kinds["numeric"].append(name)
        elif _is_date(col):
            kinds["datetime"].append(name)
        else:
            values = col.dropna()
            id_like = len(values) >= ID_MIN_ROWS and values.astype(str).nunique() >= ID_SHARE * len(values)
            kinds["id_like" if id_like else "categorical"].append(name)
    return kinds


def _as_strings(col: pd.Series) -> pd.Series:
    """Category values as str (bytes decoded), missing values as NaN."""
    def text(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return np.nan
        return v.decode() if isinstance(v, bytes) else str(v)

    return pd.Series([text(v) for v in col.to_numpy(dtype=object)], index=col.index, dtype=object)


class RawFrame(TransformerMixin, BaseEstimator):
    """Raw rows -> a DataFrame with the training columns and types (see the module docstring).

    ``columns`` are the original feature names; ``kinds`` maps each used column to numeric, boolean,
    datetime or categorical (others are dropped).
    """

    def __init__(self, columns: list[str] | None = None, kinds: dict[str, str] | None = None,
                 as_array: bool = False):
        self.columns = columns
        self.kinds = kinds
        self.as_array = as_array  # all used columns numeric: hand on a float array (no per-column frame)

    def fit(self, X: Any, y: Any = None) -> RawFrame:
        self.n_features_in_ = len(self.columns or [])
        return self

    def _frame(self, X: Any) -> pd.DataFrame:
        columns = list(self.columns or [])
        if isinstance(X, pd.DataFrame):
            X = X.rename(columns=str)
            missing = [c for c in columns if c not in X.columns and (self.kinds or {}).get(c)]
            if missing:
                raise ValueError(
                    f"the input lacks {len(missing)} feature column(s) the model was trained on: "
                    f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}"
                )
            return X.reindex(columns=columns)
        array = np.asarray(X)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[1] != len(columns):
            raise ValueError(
                f"expected a DataFrame with the columns {', '.join(columns[:10])}{' ...' if len(columns) > 10 else ''}"
                f" or a 2-D array of {len(columns)} columns; got an array of shape {array.shape}"
            )
        return pd.DataFrame(array, columns=columns)

    def transform(self, X: Any) -> pd.DataFrame | np.ndarray:
        if self.as_array:
            return self._array(X)
        frame = self._frame(X)
        out: dict[str, pd.Series] = {}
        for name in frame.columns:
            kind = (self.kinds or {}).get(name)
            col = frame[name]
            if kind == "numeric":
                out[name] = pd.to_numeric(col, errors="coerce").astype(np.float64)
            elif kind == "boolean":
                text = _as_strings(col).str.lower()
                out[name] = text.map({"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0})
            elif kind == "datetime":
                when = pd.to_datetime(col, errors="coerce", format="ISO8601") if not \
                    pd.api.types.is_datetime64_any_dtype(col) else col
                for part in DATE_PARTS:
                    out[f"{name}_{part}"] = getattr(when.dt, part).astype(np.float64)
            elif kind == "categorical":
                out[name] = _as_strings(col)
        return pd.DataFrame(out, index=frame.index)

    def _array(self, X: Any) -> np.ndarray:
        used = list(self.kinds or {})
        if isinstance(X, pd.DataFrame):
            frame = self._frame(X)[used]
            return np.column_stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64) for c in used])
        array = np.asarray(self._frame(X).to_numpy() if np.asarray(X).ndim != 2 else X)
        if array.shape[1] != len(self.columns or []):
            self._frame(array)  # the clear error
        if len(used) != array.shape[1]:
            array = array[:, [list(self.columns or []).index(c) for c in used]]
        return array if array.dtype.kind == "f" else array.astype(np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = []
        for name, kind in (self.kinds or {}).items():
            names += [f"{name}_{p}" for p in DATE_PARTS] if kind == "datetime" else [name]
        return np.asarray(names, dtype=object)


def to_float32(X: Any) -> np.ndarray:
    """The network's input type."""
    return np.asarray(X, dtype=np.float32)


def build_preprocessor(
    frame: pd.DataFrame, cfg: Any, keep: list[str] | None = None
) -> tuple[Pipeline, list[str]]:
    """An unfitted preprocessing pipeline for the training ``frame`` and ``cfg`` (the study's
    ``preprocessing`` section), and notes on the columns it drops. Columns in ``keep`` are never dropped
    as ID-like (they are encoded as categories)."""
    frame = frame.rename(columns=str)
    kinds = column_kinds(frame)
    kept = [n for n in kinds["id_like"] if n in (keep or [])]
    kinds["id_like"] = [n for n in kinds["id_like"] if n not in kept]
    kinds["categorical"] += kept
    notes = []
    if kinds["timedelta"]:
        raise ValueError(f"time-span feature columns {', '.join(kinds['timedelta'])}: convert them to numbers "
                         "or list them in dataset.drop")
    if kinds["id_like"]:
        notes.append(f"dropped ID-like column(s) (nearly every value distinct): {', '.join(kinds['id_like'])}; "
                     "list them in dataset.keep to use them")
    kind_of = {name: kind for kind in ("numeric", "boolean", "datetime", "categorical") for name in kinds[kind]}
    kind_of = {name: kind_of[name] for name in frame.columns if name in kind_of}
    if not kind_of:
        raise ValueError("no usable feature column is left (every column was dropped)")
    numeric = [n for n in RawFrame(list(frame.columns), kind_of).get_feature_names_out() if n not in kinds["categorical"]]
    num_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", add_indicator=cfg.missing_indicator, keep_empty_features=True))
    ]
    scaler = make_scaler(cfg.scaling, len(frame))
    if scaler is not None:
        num_steps.append(("scale", scaler))
    if not kinds["categorical"] and all(kind == "numeric" for kind in kind_of.values()):
        steps = [("columns", RawFrame(list(frame.columns), kind_of, as_array=True)), *num_steps,
                 ("float32", FunctionTransformer(to_float32))]
        return Pipeline(steps), notes
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(num_steps), numeric))
    if kinds["categorical"]:
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=cfg.min_frequency,
                                sparse_output=False, dtype=np.float32)
        cat = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")), ("onehot", encoder)])
        transformers.append(("categorical", cat, kinds["categorical"]))
    pipeline = Pipeline([
        ("columns", RawFrame(list(frame.columns), kind_of)),
        ("encode", ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)),
        ("float32", FunctionTransformer(to_float32)),
    ])
    return pipeline, notes
