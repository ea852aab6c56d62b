"""A split prepared for training: the preprocessing fitted on the training rows only and applied to the
training and validation rows (the arrays every trial trains and is validated on), and whether regression
trials train on a standardised target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from tuning.config.sections import PreprocessingConfig
from tuning.data.preprocessing import build_preprocessor
from tuning.data.shaped import input_columns
from tuning.data.sources import DatasetSplit
from tuning.errors import DataError

__all__ = ["PreparedData", "target_needs_scaling"]


@dataclass
class PreparedData:
    """The split after preprocessing: fitted on train only, applied to train and valid (float32 arrays).

    ``scaler`` is the fitted preprocessing pipeline (raw rows -> network input; the first step of the
    exported pipeline), also reachable as ``preprocessing``; ``notes`` say which columns it dropped.
    ``standardize_target`` says whether regression trials train on standardised y.
    """

    scaler: Any
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    notes: list[str] = field(default_factory=list)
    standardize_target: bool = False
    #: ``model.inputs`` as the estimator's ``inputs``: input name -> indices of the preprocessed features
    inputs: dict[str, list[int]] | None = None

    @property
    def preprocessing(self) -> Any:
        return self.scaler

    @classmethod
    def from_split(cls, split: DatasetSplit, preprocessing: PreprocessingConfig | str,
                   inputs: dict[str, list[Any]] | None = None) -> PreparedData:
        """``inputs``: the study's ``model.inputs`` (raw columns by Keras input name), resolved against the
        preprocessed features (:func:`tuning.data.shaped.input_columns`)."""
        if isinstance(preprocessing, str):  # the scaling name alone
            preprocessing = PreprocessingConfig(scaling=preprocessing)
        if split.input_step is not None:  # images / token sequences: reshaped or padded, never imputed or scaled
            pipeline, notes = clone(split.input_step), []
        else:
            try:
                pipeline, notes = build_preprocessor(split.frame("train"), preprocessing, keep=split.keep)
            except ValueError as exc:
                raise DataError(f"preprocessing of '{split.name}': {exc}") from exc
        X_train = pipeline.fit_transform(split.X_train)
        standardize = split.task == "regression" and target_needs_scaling(split.y_train, preprocessing.target_scaling)
        mapped = None
        if inputs:
            try:
                mapped = input_columns(inputs, pipeline, split.feature_names)
            except ValueError as exc:
                raise DataError(f"model.{exc}") from exc
        return cls(pipeline, X_train, split.y_train, pipeline.transform(split.X_valid), split.y_valid, notes,
                   standardize, mapped)


def target_needs_scaling(y: np.ndarray, mode: str) -> bool:
    """``target_scaling``: standard -> yes; none -> no; auto -> when y's mean or spread is far from 0 / 1."""
    if mode != "auto":
        return mode == "standard"
    y = np.asarray(y, dtype=np.float64)
    mean, std = float(np.mean(y)), float(np.std(y))
    return abs(mean) > 3 or not 0.3 <= std <= 3
