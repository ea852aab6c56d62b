"""Reading files as shipped: separators, headerless files, NA markers, ARFF, IDX, npz; task inference and
the sanity checks that run before any training."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuning.config.schema import DatasetConfig
from tuning.data.readers import read_image_files, read_imdb_npz
from tuning.data.sources import infer_task, load_dataset
from tuning.errors import DataError

ARFF = """% a tiny ARFF file
@relation pets
@attribute size numeric
@attribute colour {red, green, blue}
@attribute label {cat, dog}
@data
"""


def numbers(n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4))


def test_whitespace_separated_headerless_file_with_target_by_index(tmp_path: Path):
    path = tmp_path / "data.txt"
    values = numbers()
    path.write_text("\n".join("   ".join(f"{v: .7e}" for v in row) for row in values) + "\n")
    split = load_dataset(DatasetConfig(source="csv", path=str(path), sep="whitespace", header=False, target=3))
    assert split.feature_names == ["0", "1", "2"] and split.task == "regression"
    y = np.sort(np.concatenate([split.y_train, split.y_valid, split.y_test]))
    np.testing.assert_allclose(y, np.sort(values[:, 3]).astype(np.float32), rtol=1e-6)


def test_single_column_parse_names_the_separator_key(tmp_path: Path):
    path = tmp_path / "data.txt"
    path.write_text("\n".join("  ".join(str(v) for v in row) for row in numbers()) + "\n")
    with pytest.raises(DataError, match="single column.*set dataset.sep: whitespace.*dataset.header: false"):
        load_dataset(DatasetConfig(source="csv", path=str(path), target="0"))
    semi = tmp_path / "semi.csv"
    pd.DataFrame(numbers(), columns=list("abcd")).to_csv(semi, sep=";", index=False)
    with pytest.raises(DataError, match="set dataset.sep: ';'"):
        load_dataset(DatasetConfig(source="csv", path=str(semi), target="d"))
    assert load_dataset(DatasetConfig(source="csv", path=str(semi), sep=";", target="d")).n_features == 3


def test_first_row_of_data_names_the_header_key(tmp_path: Path):
    path = tmp_path / "data.csv"
    pd.DataFrame(numbers()).to_csv(path, index=False, header=False)
    with pytest.raises(DataError, match="looks like data.*dataset.header: false"):
        load_dataset(DatasetConfig(source="csv", path=str(path), target="3"))
    with pytest.raises(DataError, match="column '7' not found.*numbered 0 to 3"):
        load_dataset(DatasetConfig(source="csv", path=str(path), header=False, target=7))


def test_na_markers_tsv_and_column_choice(tmp_path: Path):
    frame = pd.DataFrame(numbers(), columns=["a", "b", "c", "y"]).round(3).astype(str)
    frame.loc[2, "a"] = "?"
    path = tmp_path / "t.tsv"
    frame.to_csv(path, sep="\t", index=False)
    split = load_dataset(DatasetConfig(source="csv", path=str(path), sep="tab", na_values=["?"], target="y"))
    X = pd.concat([split.X_train, split.X_valid, split.X_test])
    assert X["a"].dtype == np.float64 and X["a"].isna().sum() == 1
    assert load_dataset(DatasetConfig(source="csv", path=str(path), sep="tab", na_values=["?"], target="y",
                                      drop=["b"])).feature_names == ["a", "c"]
    assert load_dataset(DatasetConfig(source="csv", path=str(path), sep="tab", na_values=["?"], target="y",
                                      keep=["c"])).feature_names == ["c"]
    with pytest.raises(DataError, match=r"dataset.drop: column\(s\) 'bb' not found.*did you mean 'b'"):
        load_dataset(DatasetConfig(source="csv", path=str(path), sep="tab", target="y", drop=["bb"]))


def test_arff_nominal_values_are_text(tmp_path: Path):
    rng = np.random.default_rng(0)
    rows = [f"{rng.normal():.3f},{rng.choice(['red', 'green', 'blue'])},{rng.choice(['cat', 'dog'])}"
            for _ in range(40)]
    rows[0] = "1.0,?,cat"
    path = tmp_path / "pets.arff"
    path.write_text(ARFF + "\n".join(rows) + "\n")
    split = load_dataset(DatasetConfig(source="arff", path=str(path), target="label"))
    assert split.task == "binary" and split.classes == ["cat", "dog"]
    X = pd.concat([split.X_train, split.X_valid, split.X_test])
    assert set(X["colour"].dropna()) <= {"red", "green", "blue"} and X["colour"].isna().sum() == 1


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">II", 2049, len(array)) if array.ndim == 1 else struct.pack(">IIII", 2051, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_idx_folder_file_and_npz(tmp_path: Path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8), np.arange(60, dtype=np.uint8) % 10
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    x, y = read_image_files(tmp_path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    x, y = read_image_files(tmp_path / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    np.savez(tmp_path / "mnist.npz", x_train=images[:40], y_train=labels[:40], x_test=images[40:], y_test=labels[40:])
    x, y = read_image_files(tmp_path / "mnist.npz")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    split = load_dataset(DatasetConfig(source="fashion_mnist", path=str(tmp_path)))
    assert split.n_features == 784 and float(split.X_train.max()) <= 1.0


def test_imdb_npz_layouts(tmp_path: Path):
    reviews = [np.array([1, 5, 7]), np.array([1, 9]), np.array([1, 4, 4, 8])]
    flat = tmp_path / "flat.npz"
    np.savez(flat, x_train_flat=np.concatenate(reviews[:2]), x_train_lengths=[3, 2], y_train=[0, 1],
             x_test_flat=reviews[2], x_test_lengths=[4], y_test=[1])
    got, y = read_imdb_npz(flat, num_words=10)
    assert [r.tolist() for r in got] == [r.tolist() for r in reviews] and y.tolist() == [0, 1, 1]
    raw = np.empty(2, dtype=object)
    raw[0], raw[1] = [2, 10], [3]
    keras_file = tmp_path / "imdb.npz"
    np.savez(keras_file, x_train=raw, y_train=[0, 1], x_test=raw[:1], y_test=[1])
    got, _ = read_imdb_npz(keras_file, num_words=10)
    assert got[0].tolist() == [1, 5, 2] and got[1].tolist() == [1, 6]  # start 1, shifted by 3, 13 -> oov 2


@pytest.mark.parametrize(("values", "task"), [
    ([50, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160], "regression"),  # cereal calories: a quantity
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "multiclass"),
    ([1, 2], "binary"),
    ([0.5, 1.5, 2.0], "regression"),
    (["a", "b", "c"], "multiclass"),
])  # fmt: skip
def test_task_inference(values, task):
    assert infer_task(pd.Series(values * 3, name="y")) == task


def test_inferred_task_and_dropped_rows_are_noted(tmp_path: Path):
    frame = pd.DataFrame({"x": np.arange(40.0), "y": np.arange(40) * 10})
    frame.loc[[3, 4], "y"] = np.nan
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    split = load_dataset(DatasetConfig(source="csv", path=str(path), target="y"))
    assert split.task == "regression"
    assert any("dropped 2 row(s)" in n for n in split.notes)
    assert any("task: regression" in n and "dataset.task" in n for n in split.notes)


def test_class_missing_from_the_training_rows_is_refused(tmp_path: Path):
    frame = pd.DataFrame({"x": np.arange(40.0), "y": ["a", "b"] * 19 + ["c", "c"]})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="'c' \\(2 rows\\).*at least 3 rows"):
        load_dataset(DatasetConfig(source="csv", path=str(path), target="y"))


def test_shared_imdb_npz_loads_offline():
    import os

    root = Path(__file__).resolve().parents[1]
    path = Path(os.environ.get("TUNING_SHARED_DATA", root.parent / "shared" / "data")) / "imdb" / \
        "imdb_keras_numwords500_nopickle.npz"
    if not path.is_file():
        pytest.skip(f"shared IMDB file not found: {path}")
    split = load_dataset(DatasetConfig(source="imdb", path=str(path), num_words=500, max_rows=200))
    assert split.n_features == 500 and split.task == "binary" and sum(len(p) for p in (
        split.y_train, split.y_valid, split.y_test)) == 200
    assert set(np.unique(split.X_train)) <= {0.0, 1.0} and split.X_train.sum(axis=1).min() > 0
