"""Read data files as they are shipped: CSV/TSV (any separator, with or without header), Parquet, ARFF,
MNIST-style IDX files and Keras ``.npz`` files. Problems become a :class:`DataError` naming the key to set."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuning.config.schema import DatasetConfig
from tuning.errors import DataError

__all__ = ["read_idx", "read_image_files", "read_imdb_npz", "read_table"]

_SEPARATORS = {"whitespace": r"\s+", "tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " "}
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def read_table(cfg: DatasetConfig) -> pd.DataFrame:
    """The file `cfg.path` as a DataFrame, column names as strings."""
    path = Path(str(cfg.path))
    try:
        if cfg.source == "csv":
            frame = _read_csv(path, cfg)
        elif cfg.source == "arff":
            frame = _read_arff(path)
        else:
            frame = pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise DataError(f"dataset.path: file not found: '{path}'") from exc
    except DataError:
        raise
    except Exception as exc:  # parser errors, bad parquet, missing engine...
        raise DataError(f"cannot read {cfg.source} file '{path}': {exc}") from exc
    frame.columns = [str(c) for c in frame.columns]
    if cfg.source == "csv":
        _check_layout(frame, path, cfg)
    return frame


def _read_csv(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    sep = _SEPARATORS.get(cfg.sep, cfg.sep) if cfg.sep is not None else ","
    return pd.read_csv(path, sep=sep, header=0 if cfg.header else None, na_values=cfg.na_values,
                       skipinitialspace=True)


def _check_layout(frame: pd.DataFrame, path: Path, cfg: DatasetConfig) -> None:
    """Refuse the two classic misreadings: everything in one column, and a data row taken as the header."""
    if frame.shape[1] == 1:
        first = str(frame.columns[0]) if cfg.header else str(frame.iloc[0, 0])
        guess = ("whitespace" if re.search(r"\S\s+\S", first.strip()) else
                 "';'" if ";" in first else "tab" if "\t" in first else "'|'" if "|" in first else None)
        hint = f"set dataset.sep: {guess}" if guess else "set dataset.sep to the file's separator"
        raise DataError(
            f"'{path}' parsed into a single column (first line: {first[:80]!r}); it is probably not "
            f"separated by {cfg.sep or ','!r}: {hint}"
            + ("" if not cfg.header or not _looks_numeric(first.split()) else " (and dataset.header: false)")
        )
    if cfg.header and _looks_numeric(list(frame.columns)):
        raise DataError(
            f"the first row of '{path}' looks like data, not column names ({', '.join(list(frame.columns)[:4])}"
            " ...): set dataset.header: false (columns are then named 0, 1, 2 ...; give dataset.target as an index)"
        )


def _looks_numeric(names: list[Any]) -> bool:
    names = [str(n) for n in names]
    return bool(names) and all(_NUMBER.match(n.split(".")[0] if n.count(".") > 1 else n) for n in names)


def _read_arff(path: Path) -> pd.DataFrame:
    """ARFF via scipy.io.arff: nominal values decoded to str, '?' (missing) as NaN."""
    from scipy.io import arff

    data, meta = arff.loadarff(str(path))
    frame = pd.DataFrame(data)
    for name, kind in zip(meta.names(), meta.types(), strict=True):
        if kind == "nominal":
            values = [v.decode() if isinstance(v, bytes) else v for v in frame[name]]
            frame[name] = pd.Series(values, index=frame.index, dtype=object).replace("?", np.nan)
    return frame


# ----------------------------------------------------------------------------------------- Keras files


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"'{path}' is not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _idx_pairs(folder: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for part in ("train", "t10k"):
        images = sorted(folder.glob(f"{part}-images*idx3-ubyte*"))
        labels = sorted(folder.glob(f"{part}-labels*idx1-ubyte*"))
        if images and labels:
            pairs.append((images[0], labels[0]))
    return pairs


def read_image_files(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from a Keras ``.npz`` (x_train, y_train, x_test, y_test), a folder of IDX files
    (train-* and/or t10k-*), or one IDX images file whose labels file sits beside it."""
    if path.suffix == ".npz":
        with np.load(path) as data:
            parts = [(data[f"x_{p}"], data[f"y_{p}"]) for p in ("train", "test") if f"x_{p}" in data]
    elif path.is_dir():
        parts = [(read_idx(i), read_idx(lab)) for i, lab in _idx_pairs(path)]
    else:
        labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        if labels == path or not labels.exists():
            raise DataError(f"dataset.path: no labels file beside '{path}' (expected '{labels.name}')")
        parts = [(read_idx(path), read_idx(labels))]
    if not parts:
        raise DataError(f"dataset.path: no *-images-idx3-ubyte / *-labels-idx1-ubyte pair (or .npz) in '{path}'")
    images = np.concatenate([x for x, _ in parts])
    return images, np.concatenate([y for _, y in parts]).astype(np.int64)


def read_imdb_npz(path: Path, num_words: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Reviews (word-index arrays) and labels from an ``.npz``: either flat arrays ``x_*_flat`` +
    ``x_*_lengths`` (already Keras word indices), or Keras' own imdb.npz (raw indices: shifted by 3, each
    review starting with 1, words beyond ``num_words`` as 2, as ``keras.datasets.imdb.load_data`` does)."""
    if path.suffix != ".npz":
        raise DataError(f"dataset.path: imdb reads an .npz file, not '{path.name}'")
    reviews: list[np.ndarray] = []
    labels = []
    with np.load(path, allow_pickle=False) as data:
        flat = "x_train_flat" in data
        for part in ("train", "test"):
            if flat:
                cuts = np.cumsum(data[f"x_{part}_lengths"])[:-1]
                reviews += np.split(data[f"x_{part}_flat"].astype(np.int64), cuts)
                labels.append(data[f"y_{part}"])
    if not flat:
        with np.load(path, allow_pickle=True) as data:
            for part in ("train", "test"):
                for review in data[f"x_{part}"]:
                    words = np.asarray([1, *(np.asarray(review, dtype=np.int64) + 3)])
                    reviews.append(np.where(words < num_words, words, 2))
                labels.append(data[f"y_{part}"])
    return reviews, np.concatenate(labels).astype(np.int64)
