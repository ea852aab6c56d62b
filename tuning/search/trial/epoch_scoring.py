"""The study's metric after every epoch, from the network's outputs on the validation rows.

The one per-epoch value: the pruner ranks trials on it, a pruned trial keeps the last one reported as its
value (in the study store, MLflow and the report alike), and MLflow logs it per epoch as ``valid_<metric>``.
It is the metric itself, whatever the model was compiled with (any loss, any ``metrics=``, or none):
the network's outputs on the validation rows (the fit's one forward pass over them, which also gives Keras'
``val_loss``: :mod:`estimators.common.validation`), decoded as ``predict`` /
``predict_proba`` decode them (the target's units, class labels, probabilities), scored by the same
scikit-learn scorer as the finished trial (:mod:`tuning.search.trial.metrics`).

Divergence is a result: outputs (or a training loss) that are NaN or infinite stop the trial with a
``FloatingPointError`` that names the epoch (the trial fails with it as its reason).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from estimators.common.validation import ValidationListener
from tuning.search.trial import metrics

__all__ = ["EpochScorer", "check_training_loss", "outputs_value", "valid_key"]

OnEpoch = Callable[[int, dict[str, float]], None]


def valid_key(metric: str) -> str:
    """The per-epoch curve of the study's metric on the validation rows (``valid_mse``)."""
    return f"valid_{metric}"


def check_training_loss(epoch: int, loss: float | None) -> None:
    """Raise FloatingPointError when epoch ``epoch``'s (0-based) training loss is NaN or infinite."""
    if loss is not None and not np.isfinite(loss):
        raise FloatingPointError(f"training loss became NaN or infinite at epoch {epoch + 1} (learning rate too high? "
                       "targets far from unit scale? try preprocessing.target_scaling: standard)")


def outputs_value(metric: str, epoch: int, outputs: np.ndarray, y: np.ndarray, decode: Callable,
                  decode_proba: Callable | None = None, classes: Any = None) -> float:
    """``metric`` of network ``outputs`` on rows whose targets are ``y``: decoded by ``decode`` (to
    ``predict``'s values) or, for a metric of probabilities, ``decode_proba``; FloatingPointError when an
    output is NaN or infinite (at 0-based ``epoch``)."""
    if not np.all(np.isfinite(outputs)):
        raise FloatingPointError(f"validation predictions became NaN or infinite at epoch {epoch + 1}")
    if metric in metrics.PROBABILITY_METRICS:
        return metrics.score_predicted(metric, y, probabilities=decode_proba(outputs), classes=classes)
    return metrics.score_predicted(metric, y, predictions=decode(outputs), classes=classes)


class EpochScorer(ValidationListener):
    """After every epoch of ``estimator``'s fit: ``valid_<metric>`` of the network's outputs on the validation
    rows (the fit's :class:`~estimators.common.validation.ValidationPass`: no second prediction) added to the epoch's
    logs, which go to ``on_epoch(epoch, logs)`` (the trial runner's hook). ``y``: the validation targets."""

    def __init__(self, estimator: Any, y: np.ndarray, metric: str, on_epoch: OnEpoch) -> None:
        super().__init__()
        self.estimator, self.y, self.metric, self.on_epoch = estimator, y, metric, on_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        diverged = None
        try:
            logs[valid_key(self.metric)] = self.value(epoch, logs)
        except FloatingPointError as exc:  # the epoch still counts (its curves); then the trial fails
            diverged = exc
        self.on_epoch(epoch, logs)
        if diverged is not None:
            raise diverged

    def value(self, epoch: int, logs: dict[str, float]) -> float:
        """The metric after epoch ``epoch`` (FloatingPointError when the training diverged)."""
        check_training_loss(epoch, logs.get("loss"))
        if self.validation is None:
            raise ValueError("the per-epoch metric needs a fit with validation_data")
        est = self.estimator
        return outputs_value(self.metric, epoch, self.validation.outputs, self.y, est.predictions_from_outputs,
                             getattr(est, "probabilities_from_outputs", None), getattr(est, "classes_", None))
