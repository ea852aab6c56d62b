"""The fitted preprocessing: raw frames with NaN, strings, unseen categories, ID columns, dates, booleans."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from tuning.config.schema import PreprocessingConfig
from tuning.data.preprocessing import build_preprocessor, column_kinds


def frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({
        "age": rng.integers(18, 80, size=n),
        "income": rng.normal(50_000, 10_000, size=n),
        "city": rng.choice(["paris", "lyon", "nice"], size=n),
        "rare": ["common"] * (n - 2) + ["odd1", "odd2"],
        "member": rng.choice([True, False], size=n),
        "joined": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "customer_id": [f"C{i:05d}" for i in range(n)],
    })  # fmt: skip
    out.loc[3, "income"] = np.nan
    out.loc[4, "city"] = None
    return out


def fitted(data: pd.DataFrame, **cfg):
    pipeline, notes = build_preprocessor(data, PreprocessingConfig(**cfg))
    return pipeline.fit(data), notes


def test_column_kinds():
    kinds = column_kinds(frame())
    assert kinds["numeric"] == ["age", "income"] and kinds["boolean"] == ["member"]
    assert kinds["datetime"] == ["joined"] and kinds["categorical"] == ["city", "rare"]
    assert kinds["id_like"] == ["customer_id"]


def test_output_is_float32_without_nan_and_scaled_on_train_rows():
    data = frame()
    pipeline, notes = fitted(data)
    X = pipeline.transform(data)
    assert X.dtype == np.float32 and not np.isnan(X).any()
    # age, income, member, 5 date parts; city: 3 + the rare "missing" group; rare: common + the rare group
    assert X.shape == (60, 2 + 1 + 5 + 4 + 2)
    np.testing.assert_allclose(X[:, 0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(X[:, 0].std(), 1, rtol=1e-3)
    assert any("customer_id" in note for note in notes)


def test_unseen_category_nan_and_extra_columns_at_predict_time():
    data = frame()
    pipeline, _ = fitted(data)
    rows = data.head(3).copy()
    rows["city"] = rows["city"].astype(object)
    rows.loc[0, "city"] = "berlin"  # never seen
    rows.loc[1, "age"] = np.nan  # pandas would read this int column as float64
    rows["unrelated"] = 1
    X = pipeline.transform(rows[rows.columns[::-1]])  # columns by name, any order
    assert X.shape[0] == 3 and not np.isnan(X).any()
    original = pipeline.transform(data.head(3))
    np.testing.assert_array_equal(X[2], original[2])  # an untouched row: same numbers whatever the column order
    assert not np.array_equal(X[0], original[0]) and not np.array_equal(X[1], original[1])
    np.testing.assert_allclose(X[1, 0], pipeline.transform(data.assign(age=data["age"].median()).head(2))[1, 0])


def test_missing_column_is_refused_by_name():
    data = frame()
    pipeline, _ = fitted(data)
    with pytest.raises(ValueError, match="lacks 1 feature column.*: income"):
        pipeline.transform(data.drop(columns=["income"]))
    pipeline.transform(data.drop(columns=["customer_id"]))  # the dropped ID column is not needed


def test_numeric_arrays_of_any_dtype():
    rng = np.random.default_rng(1)
    data = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    pipeline, _ = fitted(data, scaling="minmax")
    expected = pipeline.transform(data)
    np.testing.assert_allclose(pipeline.transform(data.to_numpy(np.float64)), expected)
    ints = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    np.testing.assert_allclose(pipeline.transform(ints.to_numpy(np.int32)), pipeline.transform(ints))
    with pytest.raises(ValueError, match="2-D array of 3 columns"):
        pipeline.transform(np.zeros((2, 4)))


def test_missing_indicator_and_infrequent_grouping():
    data = frame()
    plain, _ = fitted(data)
    with_indicator, _ = fitted(data, missing_indicator=True)
    assert with_indicator.transform(data).shape[1] == plain.transform(data).shape[1] + 1  # income had a NaN
    encoder = plain.named_steps["encode"].named_transformers_["categorical"].named_steps["onehot"]
    assert encoder.infrequent_categories_[1].tolist() == ["odd1", "odd2"]


def test_keep_uses_an_id_like_column():
    data = frame()
    pipeline, notes = build_preprocessor(data, PreprocessingConfig(), keep=["customer_id"])
    assert not notes
    assert "customer_id" in pipeline.named_steps["columns"].kinds


def test_fitted_preprocessing_pickles_and_quantile_adapts_to_small_tables():
    data = frame(30)
    pipeline, _ = fitted(data, scaling="quantile")
    clone = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_array_equal(clone.transform(data), pipeline.transform(data))


def test_time_spans_are_refused():
    data = pd.DataFrame({"wait": pd.to_timedelta(np.arange(30), unit="s"), "x": np.arange(30.0)})
    with pytest.raises(ValueError, match="time-span feature columns wait"):
        build_preprocessor(data, PreprocessingConfig())
