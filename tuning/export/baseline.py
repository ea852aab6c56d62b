"""One baseline beside the exported network: scikit-learn's HistGradientBoosting, defaults, on the same rows.

It learns from the study's training and validation rows after the study's own preprocessing (the exported
pipeline's first step) and is scored on the test rows with the same metrics as the export, so the summary
shows at once whether the network was worth it. Its fit time is measured too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tuning.export.files import make_pipeline, test_metrics

MODEL_NAME = "HistGradientBoosting"
UNTABULAR = ("images", "sequences")  #: shapes whose columns are pixels or word ids: no baseline
#: the widest input the baseline is fitted on: columns after preprocessing, times the classes beyond two
#: (boosting fits one tree per class and iteration: 784 pixels of 10 classes take minutes, not seconds)
MAX_WIDTH = 2000


@dataclass
class Baseline:
    """The baseline's test scores (by metric name) and its fit time in seconds."""

    test: dict[str, float] = field(default_factory=dict)
    fit_s: float = 0.0
    model: str = MODEL_NAME


def fit_baseline(runner, split, seed: int = 0) -> Baseline | None:
    """HistGradientBoosting (defaults, ``random_state=seed``) on ``runner``'s preprocessed training and
    validation rows, scored on ``split``'s test rows; None for inputs that are not a table's columns
    (``dataset.shape``: images, word-id sequences) or are wider than :data:`MAX_WIDTH` (flat pixels)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if split.input_step is not None:  # dataset.shape images / sequences: pixels or word ids, no table
        return None
    d = runner.data
    X = np.concatenate([np.asarray(d.X_train), np.asarray(d.X_valid)])
    y = np.concatenate([np.asarray(d.y_train), np.asarray(d.y_valid)])
    n_classes = len(np.unique(y)) if runner.task != "regression" else 1
    if X.ndim != 2 or X.shape[1] * (n_classes if n_classes > 2 else 1) > MAX_WIDTH:
        return None
    cls = HistGradientBoostingRegressor if runner.task == "regression" else HistGradientBoostingClassifier
    started = time.perf_counter()
    model = cls(random_state=seed).fit(X, y)
    fit_s = time.perf_counter() - started
    pipeline = make_pipeline(d.scaler, model)
    return Baseline(test_metrics(pipeline, split.X_test, split.y_test, runner.metric, split.task), fit_s)
