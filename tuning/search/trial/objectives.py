"""The objectives a study may have besides its metric (``search.objectives``), measured on a complete trial's
fitted pipeline (its preprocessing and model, as the export would ship it) on the raw validation rows:

* ``n_params``: the Keras model's ``count_params()``;
* ``model_bytes``: the size of the pipeline as ``joblib.dump`` writes it (what ``pipeline.joblib`` holds);
* ``latency_ms``: the median milliseconds of ``predict`` on one row (batch 1), over up to ``ROWS_B1``
  validation rows one after the other, after ``WARMUP`` calls; ``latency_ms_b256`` (measured with it, logged,
  never an objective): the median of ``REPEATS_B256`` predictions of 256 rows, per row.

Measured in the trial's own process, so trials run side by side (``--workers``) share the cores.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

__all__ = ["BATCH", "LATENCY_B256", "ObjectiveMeter"]

BATCH = 256
LATENCY_B256 = "latency_ms_b256"
WARMUP = 3  # calls before timing: the first builds the float64 inference copy
ROWS_B1 = 50  # single-row predictions timed (distinct validation rows)
REPEATS_B256 = 7  # batch predictions timed


def _rows(X: Any, start: int, stop: int) -> Any:
    return X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]


def _median_ms(call, repeats: int) -> float:
    times = []
    for i in range(repeats):
        began = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - began)
    return float(np.median(times) * 1000.0)


class ObjectiveMeter:
    """Measures ``names`` (of n_params, model_bytes, latency_ms) of a fitted estimator inside the pipeline
    the export would ship: ``preprocessing`` (the fitted scaler, or None) then the estimator, predicting on
    ``X_valid`` (raw validation rows). It pickles, for runners shipped to other processes."""

    def __init__(self, names: list[str], preprocessing: Any, X_valid: Any) -> None:
        self.names, self.preprocessing, self.X_valid = list(names), preprocessing, X_valid

    def pipeline(self, estimator: Any) -> Pipeline:
        steps = [("preprocessing", self.preprocessing)] if self.preprocessing is not None else []
        return Pipeline([*steps, ("model", estimator)])

    def measure(self, estimator: Any) -> dict[str, float]:
        """The measures of ``estimator`` (fitted): each of ``names``, and ``latency_ms_b256`` with ``latency_ms``."""
        out: dict[str, float] = {}
        pipeline = self.pipeline(estimator)
        if "n_params" in self.names:
            out["n_params"] = float(estimator.model_.count_params())
        if "model_bytes" in self.names:
            import joblib

            buffer = io.BytesIO()
            joblib.dump(pipeline, buffer)
            out["model_bytes"] = float(buffer.getbuffer().nbytes)
        if "latency_ms" in self.names:
            out.update(self.latency(pipeline))
        return out

    def latency(self, pipeline: Pipeline) -> dict[str, float]:
        """Median ms per row of ``pipeline.predict`` at batch 1 (``latency_ms``) and batch 256."""
        X, n = self.X_valid, len(self.X_valid)
        for i in range(WARMUP):
            pipeline.predict(_rows(X, i % n, i % n + 1))
        single = _median_ms(lambda i: pipeline.predict(_rows(X, i % n, i % n + 1)), min(ROWS_B1, n))
        batch = _rows(X, 0, min(BATCH, n))
        pipeline.predict(batch)
        per_row = _median_ms(lambda i: pipeline.predict(batch), REPEATS_B256) / len(batch)
        return {"latency_ms": single, LATENCY_B256: per_row}
