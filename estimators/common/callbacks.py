"""Keras callbacks made fresh for every fit, so no state leaks from one trial to the next."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np


class EpochReporter(keras.callbacks.Callback):
    """Call ``fn(epoch, logs)`` after every epoch (pruning, live tracking, progress)."""

    def __init__(self, fn: Callable[[int, dict], None]) -> None:
        super().__init__()
        self.fn = fn

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.fn(epoch, dict(logs or {}))


class StopOnInvalidLoss(keras.callbacks.Callback):
    """``keras.callbacks.TerminateOnNaN`` without its print: stop training at the first batch log whose loss
    is NaN or infinite (the epoch still ends; the fit's history then ends with that loss)."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.model.stop_training = True


def early_stopping(monitor: str, patience: int, min_delta: float, restore_best_weights: bool):
    """A new ``keras.callbacks.EarlyStopping`` (never reuse one across fits)."""
    return keras.callbacks.EarlyStopping(
        monitor=monitor,
        patience=patience,
        min_delta=min_delta,
        restore_best_weights=restore_best_weights,
        verbose=0,
    )


def lr_schedule(name: str, learning_rate: float, epochs: int, patience: int, monitor: str):
    """A new learning-rate callback for schedule ``name`` (None for ``constant``).

    ``plateau`` halves the rate after ``patience // 2`` epochs (at least 1) without improvement of ``monitor``
    (so it acts before early stopping gives up); ``cosine`` sets epoch ``e``'s rate to
    ``learning_rate * (1 + cos(pi * e / epochs)) / 2``.
    """
    name = name.lower()
    if name == "constant":
        return None
    if name == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=max(1, patience // 2),
                                                 min_lr=learning_rate * 1e-3, verbose=0)
    if name == "cosine":
        return keras.callbacks.LearningRateScheduler(
            lambda epoch: learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs)), verbose=0)
    raise ValueError(f"lr_schedule must be one of ('constant', 'plateau', 'cosine'), got {name!r}")


def replay_learning_rates(rates: list[float]):
    """A callback setting epoch ``e``'s rate to ``rates[e]`` (the last one after the list): a fit's
    recorded rates, replayed by a fit that has no validation set to drive its own schedule."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: float(rates[min(epoch, len(rates) - 1)]), verbose=0)
