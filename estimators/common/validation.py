"""The validation set after every epoch, through one traced forward pass.

``model.fit(validation_data=...)`` runs Keras' ``evaluate`` after each epoch: a ``tf.data`` pass that logs
``val_loss`` and the compiled metrics and throws the network's outputs away. A study needs those outputs
too (to score its own metric on the validation rows after every epoch: ``tuning.search.trial.epoch_scoring``),
and predicting the rows a second time would cost as much again. :class:`ValidationPass` does both from one
pass: it runs the network once over the validation rows, computes ``val_loss`` as Keras' ``test_step`` does
(``Model.compute_loss``: the compiled loss and the model's own losses) and the compiled metrics
(``Model.compute_metrics``), writes them into the epoch's logs for the callbacks after it (early stopping,
the schedule, Keras' ``History``), as Keras' own ``LearningRateScheduler`` writes ``learning_rate``, and keeps
the outputs (:attr:`ValidationPass.outputs`) for the callbacks that listen (:class:`ValidationListener`).
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np

from estimators.common.inference import PREDICT_CHUNK

__all__ = ["ValidationListener", "ValidationPass"]


class ValidationPass(keras.callbacks.Callback):
    """``val_loss`` and ``val_<metric>`` of the compiled metrics on ``(x, y)`` (network inputs, encoded
    targets) after every epoch, from one forward pass whose outputs stay in :attr:`outputs`. Goes first
    among a fit's callbacks."""

    def __init__(self, x: Any, y: np.ndarray) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.outputs: np.ndarray | None = None  # the last epoch's outputs on the validation rows (float32)
        self._step = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._step, self.outputs = None, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        outputs, loss, metrics = self.evaluate()
        self.outputs = outputs
        logs["val_loss"] = loss
        logs.update({f"val_{name}": value for name, value in metrics.items() if name != "loss"})

    def evaluate(self) -> tuple[np.ndarray, float, dict[str, float]]:
        """The outputs, the loss and the compiled metrics on the validation rows, as Keras' ``evaluate``
        computes them (the loss a mean over the rows of chunks of ``PREDICT_CHUNK``)."""
        import tensorflow as tf

        model = self.model
        if self._step is None:
            takes_training = "training" in inspect.signature(model.compute_loss).parameters

            def step(x, y):
                y_pred = model(x, training=False)
                kwargs = {"training": False} if takes_training else {}
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, **kwargs)
                model.compute_metrics(x, y, y_pred)
                return y_pred, loss

            self._step = tf.function(step, reduce_retracing=True)
        model.reset_metrics()  # the epoch's training logs are taken already (Keras' evaluate resets them too)
        n = _rows(self.x)
        outputs, total = [], 0.0
        for start in range(0, max(n, 1), PREDICT_CHUNK):
            x, y = _chunk(self.x, start), self.y[start:start + PREDICT_CHUNK]
            y_pred, loss = self._step(x, tf.constant(y))
            outputs.append(np.asarray(y_pred))
            total += float(loss) * _rows(x)
        metrics = {name: float(np.asarray(value)) for name, value in model.get_metrics_result().items()}
        return (np.concatenate(outputs) if len(outputs) > 1 else outputs[0]), total / max(n, 1), metrics


class ValidationListener(keras.callbacks.Callback):
    """A callback handed its fit's :class:`ValidationPass` (``validation``, set by the estimator's ``fit``
    before training starts; None when the fit has no validation set): its ``on_epoch_end`` runs after the
    pass, so ``validation.outputs`` are that epoch's."""

    validation: ValidationPass | None = None


def _rows(x: Any) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _chunk(x: Any, start: int) -> Any:
    import tensorflow as tf

    if isinstance(x, dict):
        return {name: tf.constant(a[start:start + PREDICT_CHUNK]) for name, a in x.items()}
    return tf.constant(x[start:start + PREDICT_CHUNK])
