"""The ``dataset:`` section of a study file: which data to load and how to split it.

Also the names of the data sources a study can give, which of them read local files, and the task of each
built-in data set. Imported (and re-exported) by `tuning.config.schema`.
"""

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails

from tuning.config.validation import Float, Int
from tuning.config.validation import StrictModel as _Model
from tuning.config.validation import error as _error
from tuning.config.validation import raise_errors as _raise_errors

__all__ = ["BUILTIN_TASKS", "FILE_SOURCES", "KERAS_FILE_SOURCES", "SHAPES", "DatasetConfig", "Source", "Task"]

Task = Literal["regression", "binary", "multiclass"]
Source = Literal[
    "california_housing", "diabetes", "digits", "breast_cancer", "iris", "wine",
    "mnist", "fashion_mnist", "imdb", "csv", "parquet", "arff",
]  # fmt: skip

FILE_SOURCES: tuple[str, ...] = ("csv", "parquet", "arff")
#: Built-in sources that can also read local files (``dataset.path``) instead of the Keras cache.
KERAS_FILE_SOURCES: tuple[str, ...] = ("mnist", "fashion_mnist", "imdb")
#: Task of each built-in data set (csv/parquet tasks are inferred from the target at load time).
BUILTIN_TASKS: dict[str, str] = {
    "california_housing": "regression",
    "diabetes": "regression",
    "breast_cancer": "binary",
    "imdb": "binary",
    "digits": "multiclass",
    "iris": "multiclass",
    "wine": "multiclass",
    "mnist": "multiclass",
    "fashion_mnist": "multiclass",
}


#: ``dataset.shape``: what one row is, by source (the first is the default); ``images`` and ``sequences``
#: feed a user's model (``model.build``), not our MLP, which takes flat rows
SHAPES: dict[str, tuple[str, ...]] = {
    "mnist": ("flat", "images"),
    "fashion_mnist": ("flat", "images"),
    "imdb": ("multi_hot", "sequences"),
}
#: the shapes that only a user's model takes
SHAPED = ("images", "sequences")
DEFAULT_MAX_LENGTH = 256


class DatasetConfig(_Model):
    """Which data to load and how to split it (test, then validation out of the remaining train part)."""

    source: Source
    path: str | None = None
    target: str | Int | None = None  # a column name, or its 0-based index when `header: false`
    task: Task | None = None
    test_size: Float = Field(0.25, gt=0, lt=1)
    valid_size: Float = Field(0.25, gt=0, lt=1)
    seed: Int = 42
    stratify: bool | None = None
    max_rows: Int | None = Field(None, gt=0)
    num_words: Int = Field(1000, gt=0)
    # mnist / fashion_mnist: flat (784 pixels) | images (28 x 28); imdb: multi_hot | sequences (word ids)
    shape: Literal["flat", "multi_hot", "images", "sequences"] | None = None
    max_length: Int | None = Field(None, gt=0)  # shape sequences: ids per review (padded / cut), default 256
    channels: bool = False  # shape images: (28, 28, 1) instead of (28, 28)
    # csv: column separator; `whitespace` = any run of spaces/tabs, `tab` = a tab; default ","
    sep: str | None = None
    header: bool = True  # csv: false = the first row is data; columns are then named 0, 1, 2 ...
    na_values: list[str] | None = None  # csv: extra strings that mean "missing" (e.g. ["?", "-"])
    drop: list[str | Int] = Field(default_factory=list)  # feature columns to leave out
    keep: list[str | Int] | None = None  # the only feature columns to use (overrides ID-column dropping)

    @property
    def is_file(self) -> bool:
        """True for csv/parquet/arff sources."""
        return self.source in FILE_SOURCES

    @field_validator("target")
    @classmethod
    def _target_text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @field_validator("drop", "keep")
    @classmethod
    def _names_text(cls, value: Any) -> Any:
        return None if value is None else [str(v) for v in value]

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "DatasetConfig":
        errors: list[InitErrorDetails] = []
        if self.path is not None and (self.is_file or self.source in KERAS_FILE_SOURCES):
            self.path = _resolve_data_path(self.path, (info.context or {}).get("base_dir"))
            found = Path(self.path)
            if not (found.is_file() or (self.source not in ("csv", "arff") and found.is_dir())):
                errors.append(_error(
                    ("path",),
                    f"data file not found: '{self.path}' (a relative path is looked up next to the study "
                    "file, then in the current directory)",
                    self.path,
                ))  # fmt: skip
        if self.is_file:
            if self.path is None:
                errors.append(_error(("path",), f"required when source is '{self.source}'", None))
            if self.target is None:
                errors.append(_error(("target",), f"required when source is '{self.source}'", None))
        else:
            keys = ("target", "drop", "keep") + (() if self.source in KERAS_FILE_SOURCES else ("path",))
            for key in keys:
                if getattr(self, key):
                    errors.append(_error(
                        (key,), f"only used with source csv, parquet or arff, not '{self.source}'", getattr(self, key)
                    ))  # fmt: skip
            known = BUILTIN_TASKS[self.source]
            if self.task is None:
                self.task = known  # type: ignore[assignment]
            elif self.task != known:
                errors.append(_error(
                    ("task",), f"'{self.source}' is a {known} data set; task '{self.task}' does not fit", self.task
                ))  # fmt: skip
        for key in ("sep", "na_values"):
            if getattr(self, key) is not None and self.source != "csv":
                errors.append(_error((key,), "only used with source csv", getattr(self, key)))
        if not self.header and self.source != "csv":
            errors.append(_error(("header",), "only used with source csv", False))
        if self.keep is not None and self.drop:
            errors.append(_error(("drop",), "give either keep or drop, not both", self.drop))
        if self.stratify and self.task == "regression":
            errors.append(_error(("stratify",), "stratified splits need a classification task", True))
        default_words = type(self).model_fields["num_words"].default
        if "num_words" in self.model_fields_set and self.source != "imdb" and self.num_words != default_words:
            errors.append(_error(("num_words",), "only used with source imdb", self.num_words))
        errors.extend(self._shape_errors())
        _raise_errors("DatasetConfig", errors)
        return self

    def _shape_errors(self) -> list[InitErrorDetails]:
        errors = []
        allowed = SHAPES.get(self.source, ())
        if self.shape is not None and self.shape not in allowed:
            sources = ", ".join(f"{k} ({' | '.join(v)})" for k, v in SHAPES.items())
            which = (f"'{self.source}' takes shape {' or '.join(allowed)}" if allowed else
                     f"'{self.source}' rows are tables: shape is only for {sources}")
            errors.append(_error(("shape",), f"shape '{self.shape}' does not fit: {which}", self.shape))
        if self.max_length is not None and self.shape != "sequences":
            errors.append(_error(("max_length",), "only used with shape: sequences (imdb)", self.max_length))
        if self.channels and self.shape != "images":
            errors.append(_error(("channels",), "only used with shape: images (mnist, fashion_mnist)", True))
        return errors

    @property
    def row_shape(self) -> str:
        """What one row is: ``flat`` (a table), ``multi_hot``, ``images`` or ``sequences``."""
        return self.shape or SHAPES.get(self.source, ("flat",))[0]

    @property
    def sequence_length(self) -> int:
        return int(self.max_length or DEFAULT_MAX_LENGTH)


def _resolve_data_path(path: str, base_dir: Path | None) -> str:
    """Expand `~`; a relative path is taken next to the study file if it exists there, else as given (CWD)."""
    expanded = Path(os.path.expanduser(path))
    if not expanded.is_absolute() and base_dir is not None and (base_dir / expanded).exists():
        return str(base_dir / expanded)
    return str(expanded)

