"""Data loading and the seeded train / valid / test split (no training, no network)."""

import gzip
import os
import struct
import sys
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tuning.config.schema import DatasetConfig
from tuning.data.sources import DatasetSplit, load_dataset
from tuning.errors import DataError, StudyConfigError


def sizes(split: DatasetSplit) -> tuple[int, int, int]:
    return len(split.y_train), len(split.y_valid), len(split.y_test)


def assert_same(a: DatasetSplit, b: DatasetSplit) -> None:
    for name in ("X_train", "y_train", "X_valid", "y_valid", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.digest() == b.digest()


@pytest.mark.parametrize(
    ("source", "task", "expected", "n_features"),
    [
        ("diabetes", "regression", (248, 83, 111), 10),  # 442 rows
        ("iris", "multiclass", (84, 28, 38), 4),  # 150 rows
        ("breast_cancer", "binary", (319, 107, 143), 30),  # 569 rows
    ],
)
def test_builtin_split_sizes(source: str, task: str, expected: tuple[int, int, int], n_features: int) -> None:
    split = load_dataset(DatasetConfig(source=source))
    assert split.task == task and split.name == source
    assert sizes(split) == expected
    assert split.X_train.dtype == np.float32 and split.X_train.ndim == 2
    assert split.n_features == n_features == len(split.feature_names)
    assert split.shapes["X_valid"] == (expected[1], n_features)
    if task == "regression":
        assert split.y_train.dtype == np.float32 and split.classes is None
    else:
        assert split.y_train.dtype == np.int64 and split.classes == sorted(set(split.y_train.tolist()))


def test_split_matches_classic_recipe() -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True)
    X_full, X_test, y_full, y_test = train_test_split(X, y, test_size=0.25, random_state=42)
    X_train, X_valid, y_train, y_valid = train_test_split(X_full, y_full, test_size=0.25, random_state=42)
    split = load_dataset(DatasetConfig(source="diabetes"))
    np.testing.assert_array_equal(split.X_train, X_train.astype(np.float32))
    np.testing.assert_array_equal(split.y_valid, y_valid.astype(np.float32))
    np.testing.assert_array_equal(split.X_test, X_test.astype(np.float32))


@pytest.mark.parametrize("source", ["diabetes", "iris", "breast_cancer"])
def test_reproducible(source: str) -> None:
    a = load_dataset(DatasetConfig(source=source, seed=3))
    assert_same(a, load_dataset(DatasetConfig(source=source, seed=3)))
    b = load_dataset(DatasetConfig(source=source, seed=4))
    assert not np.array_equal(a.X_train, b.X_train)
    assert a.digest() != b.digest()


def test_stratify_keeps_class_proportions() -> None:
    split = load_dataset(DatasetConfig(source="breast_cancer"))
    overall = np.mean(np.concatenate([split.y_train, split.y_valid, split.y_test]))
    for y in (split.y_train, split.y_valid, split.y_test):
        assert abs(np.mean(y) - overall) < 0.01
    unstratified = load_dataset(DatasetConfig(source="breast_cancer", stratify=False, seed=0))
    assert sizes(unstratified) == sizes(split)


def test_stratify_refused_for_regression() -> None:
    with pytest.raises(ValueError, match="stratified splits need a classification task"):
        DatasetConfig(source="diabetes", stratify=True)


def test_max_rows() -> None:
    split = load_dataset(DatasetConfig(source="digits", max_rows=200, seed=1))
    assert sum(sizes(split)) == 200
    assert_same(split, load_dataset(DatasetConfig(source="digits", max_rows=200, seed=1)))
    wine = load_dataset(DatasetConfig(source="wine", max_rows=10_000))  # more rows than there are
    assert sum(sizes(wine)) == 178


# ----------------------------------------------------------------------------------------------- tables


def table(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "size": rng.normal(size=n),
        "color": rng.choice(["red", "green", "blue"], size=n),
        "rooms": rng.integers(1, 5, size=n),
        "label": rng.choice(["cat", "dog"], size=n),
        "price": rng.normal(100, 10, size=n),
    })  # fmt: skip


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_table_with_string_features_and_labels(tmp_path: Path, source: str) -> None:
    frame = table().drop(columns=["price"])
    path = tmp_path / f"pets.{source}"
    frame.to_csv(path, index=False) if source == "csv" else frame.to_parquet(path)
    split = load_dataset(DatasetConfig(source=source, path=str(path), target="label"))
    assert split.task == "binary" and split.classes == ["cat", "dog"]
    assert split.name == path.name
    assert split.y_train.dtype.kind == "U" and set(split.y_train) <= {"cat", "dog"}
    assert split.feature_names == ["size", "color", "rooms"]  # raw columns: encoding is the pipeline's job
    assert isinstance(split.X_train, pd.DataFrame) and list(split.X_train.columns) == ["size", "color", "rooms"]
    assert set(split.X_train["color"]) <= {"red", "green", "blue"}
    assert sum(sizes(split)) == 80
    assert (
        split.digest() == load_dataset(DatasetConfig(source=source, path=str(path), target="label")).digest()
    )


def test_table_task_inference(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    assert load_dataset(DatasetConfig(source="csv", path=str(path), target="price")).task == "regression"
    reg = load_dataset(DatasetConfig(source="csv", path=str(path), target="price"))
    assert reg.y_train.dtype == np.float32 and reg.classes is None
    rooms = load_dataset(DatasetConfig(source="csv", path=str(path), target="rooms"))
    assert rooms.task == "multiclass" and rooms.classes == [1, 2, 3, 4] and rooms.y_train.dtype == np.int64
    color = load_dataset(DatasetConfig(source="csv", path=str(path), target="color"))
    assert color.task == "multiclass" and color.classes == ["blue", "green", "red"]
    as_reg = load_dataset(DatasetConfig(source="csv", path=str(path), target="rooms", task="regression"))
    assert as_reg.task == "regression" and as_reg.y_train.dtype == np.float32
    with pytest.raises(DataError, match="target 'label' of .* is not numeric"):
        load_dataset(DatasetConfig(source="csv", path=str(path), target="label", task="regression"))
    with pytest.raises(DataError, match="binary but the target 'rooms' has 4 distinct values"):
        load_dataset(DatasetConfig(source="csv", path=str(path), target="rooms", task="binary"))


@pytest.mark.parametrize(("target", "task", "classes"), [
    ([1.0, 2.0, 3.0, 4.0], "multiclass", [1, 2, 3, 4]),  # integer-valued floats are labels
    ([True, False], "binary", [False, True]),
    ([0, 5], "binary", [0, 5]),
    ([10, 20, 30, 40], "regression", None),  # integers with gaps: a quantity
    (list(range(21)), "regression", None),  # more than MAX_CLASSES consecutive integers
    ([0.25, 1.5, 2.0], "regression", None),
])  # fmt: skip
def test_inferred_task_of_a_table_target(tmp_path: Path, target: list[Any], task: str, classes: Any) -> None:
    frame = table(84).assign(y=(target * 84)[:84])
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    split = load_dataset(DatasetConfig(source="parquet", path=str(path), target="y"))
    assert split.task == task and split.classes == classes
    note = f"task: {task} (inferred from the target 'y', {len(set(target))} distinct values)"
    assert any(n.startswith(note) for n in split.notes), split.notes


@pytest.mark.parametrize("task", [None, "regression"])
def test_infinite_target_is_refused(tmp_path: Path, task: str | None) -> None:
    path = tmp_path / "t.parquet"
    table().assign(price=lambda f: f["price"].where(f.index != 7, np.inf)).to_parquet(path)
    with pytest.raises(DataError, match="target 'price' has 1 infinite value"):
        load_dataset(DatasetConfig(source="parquet", path=str(path), target="price", task=task))


def test_missing_target_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    with pytest.raises(
        DataError, match="column 'prize' not found .*; columns: size, color, rooms, label, price"
    ):
        load_dataset(DatasetConfig(source="csv", path=str(path), target="prize"))


def test_missing_values(tmp_path: Path) -> None:
    frame = table()
    frame.loc[[1, 2], "price"] = np.nan  # target missing: rows dropped
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    split = load_dataset(DatasetConfig(source="csv", path=str(path), target="price"))
    assert sum(sizes(split)) == 78
    assert split.notes[0] == "dropped 2 row(s) of 't.csv' with no value in the target 'price'"
    frame.loc[[5], "size"] = np.nan
    frame.loc[[6, 7], "color"] = None
    frame.to_csv(path, index=False)
    split = load_dataset(DatasetConfig(source="csv", path=str(path), target="price"))  # imputed by the pipeline
    X = pd.concat([split.X_train, split.X_valid, split.X_test])
    assert X["size"].isna().sum() == 1 and X["color"].isna().sum() == 2


def test_table_max_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table(n=400).to_parquet(path)
    cfg = DatasetConfig(source="parquet", path=str(path), target="label", max_rows=100)
    split = load_dataset(cfg)
    assert sum(sizes(split)) == 100
    assert_same(split, load_dataset(cfg))


def test_dataset_path_checked_by_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data file not found"):
        DatasetConfig(source="csv", path=str(tmp_path / "none.csv"), target="y")
    with pytest.raises(StudyConfigError):
        from tuning.config.schema import load_study_dict

        load_study_dict({"name": "x", "dataset": {"source": "csv", "path": "none.csv", "target": "y"},
                         "space": {"epochs": {"type": "int", "low": 1, "high": 2}}})  # fmt: skip


# ------------------------------------------------------------------------------------ California housing


def test_california_housing_from_cache() -> None:
    home = os.environ.get("SCIKIT_LEARN_DATA")
    if not home or not (Path(home).expanduser() / "cal_housing_py3.pkz").is_file():
        pytest.skip("SCIKIT_LEARN_DATA is not set to a folder holding cal_housing_py3.pkz (no download here)")
    split = load_dataset(DatasetConfig(source="california_housing"))
    assert sizes(split) == (11_610, 3_870, 5_160)
    assert split.task == "regression" and split.n_features == 8


def test_california_housing_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn.datasets

    def offline(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(sklearn.datasets, "fetch_california_housing", offline)
    with pytest.raises(DataError, match="set SCIKIT_LEARN_DATA to a folder holding the scikit-learn cache"):
        load_dataset(DatasetConfig(source="california_housing"))


# ---------------------------------------------------------------------------------------- Keras datasets


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A KERAS_HOME with an empty datasets/ folder, that the real keras loaders read from.

    keras 3 reads KERAS_HOME once, when `keras.src.backend.config` is imported (module global `_KERAS_DIR`,
    returned by `keras_home()`, which `get_file` uses when it gets no `cache_dir`, as the dataset loaders do).
    So the variable is set before the import, and, since another test may have imported keras already, the
    module global is patched too.
    """
    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    imported_before = "keras" in sys.modules
    monkeypatch.setenv("KERAS_HOME", str(home))
    import keras.src.backend.config as keras_config

    if not imported_before:
        assert keras_config.keras_home() == str(home)  # taken from the environment at import time
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    return home


@pytest.fixture
def skip_hash_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """mnist.npz and imdb.npz are fetched with `file_hash` (the real files' sha256): `get_file` checks a cached
    file against it and, on a mismatch, downloads it again (and deletes it when that fails offline). Tiny
    fixtures cannot match, so only `validate_file` is stubbed; the cache lookup under KERAS_HOME, the npz
    reading (imdb's restricted unpickler) and num_words handling all run for real."""
    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(file_utils, "validate_file", lambda *args, **kwargs: True)


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10


def test_mnist(keras_home: Path, skip_hash_check: None) -> None:
    (x_train, y_train), (x_test, y_test) = images(60, 0), images(20, 1)
    np.savez(
        keras_home / "datasets" / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
    )
    split = load_dataset(DatasetConfig(source="mnist"))
    assert split.task == "multiclass" and split.classes == list(range(10))
    assert sizes(split) == (45, 15, 20) and split.n_features == 784
    assert split.X_train.dtype == np.float32 and 0.0 <= split.X_train.min() and split.X_train.max() <= 1.0
    all_x = np.concatenate([split.X_train, split.X_valid, split.X_test])
    expected = np.concatenate([x_train, x_test]).reshape(80, 784).astype(np.float32) / 255
    assert sorted(map(bytes, all_x)) == sorted(map(bytes, expected))  # same rows, shuffled by the split


def write_idx(path: Path, array: np.ndarray) -> None:
    header = (
        struct.pack(">II", 2049, len(array)) if array.ndim == 1 else struct.pack(">IIII", 2051, *array.shape)
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_fashion_mnist(keras_home: Path) -> None:
    # keras reads four gzipped IDX files from datasets/fashion-mnist/ and checks no hash for them
    folder = keras_home / "datasets" / "fashion-mnist"
    folder.mkdir()
    (x_train, y_train), (x_test, y_test) = images(40, 2), images(20, 3)
    write_idx(folder / "train-images-idx3-ubyte.gz", x_train)
    write_idx(folder / "train-labels-idx1-ubyte.gz", y_train)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", x_test)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_test)
    split = load_dataset(DatasetConfig(source="fashion_mnist"))
    assert split.name == "fashion_mnist" and split.task == "multiclass"
    assert sum(sizes(split)) == 60 and split.X_test.shape[1] == 784
    assert np.bincount(np.concatenate([split.y_train, split.y_valid, split.y_test])).tolist() == [6] * 10


def test_imdb(keras_home: Path, skip_hash_check: None) -> None:
    rng = np.random.default_rng(0)

    def reviews(n: int) -> np.ndarray:  # ragged word-index lists, stored like the real file (object arrays)
        out = np.empty(n, dtype=object)
        for i in range(n):
            out[i] = [*rng.integers(1, 40, size=rng.integers(3, 12)).tolist(), 30]
        return out

    x_train, x_test = reviews(30), reviews(30)
    labels = np.arange(30) % 2
    np.savez(
        keras_home / "datasets" / "imdb.npz", x_train=x_train, y_train=labels, x_test=x_test, y_test=labels
    )
    split = load_dataset(DatasetConfig(source="imdb", num_words=20))
    assert split.task == "binary" and split.classes == [0, 1]
    assert sizes(split) == (33, 12, 15) and split.feature_names[:2] == ["word_0", "word_1"]
    X = np.concatenate([split.X_train, split.X_valid, split.X_test])
    assert X.shape == (60, 20) and set(np.unique(X)) == {0.0, 1.0}
    assert np.all(X[:, 1] == 1)  # keras puts start_char=1 first in every review
    assert np.all(X[:, 2] == 1)  # word 30 (+ index_from 3) is >= num_words: oov_char=2
    small = load_dataset(DatasetConfig(source="imdb", num_words=20, max_rows=20))
    assert sum(sizes(small)) == 20


def test_keras_dataset_unavailable(keras_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras.src.utils.file_utils as file_utils

    def offline(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)  # the cache is empty: keras tries to download
    with pytest.raises(DataError) as info:
        load_dataset(DatasetConfig(source="mnist"))
    message = str(info.value)
    assert "cannot load the Keras data set 'mnist'" in message
    assert str(keras_home / "datasets") in message and "mnist.npz" in message and "KERAS_HOME" in message


def test_california_sized_table_split(tmp_path: Path) -> None:
    # same row count as California housing (20,640): the recipe gives 11,610 / 3,870 / 5,160
    rng = np.random.default_rng(0)
    path = tmp_path / "big.parquet"
    pd.DataFrame({"x": rng.normal(size=20_640), "y": rng.normal(size=20_640)}).to_parquet(path)
    split = load_dataset(DatasetConfig(source="parquet", path=str(path), target="y"))
    assert sizes(split) == (11_610, 3_870, 5_160)
