"""Checkpoints inside a fit, so that a fit killed at epoch 80 of 100 goes on from its last checkpoint.

:class:`FitCheckpoint` is a Keras callback the caller hands to ``fit(callbacks=[...])``. Every ``every_epochs``
epochs or ``every_s`` seconds (whichever comes first, at the end of an epoch) it writes one file: the model's
variables (weights, and the state of its seeded dropout layers' random generators), the optimizer's
variables (its step count, learning rate, moments), the epochs done, the fit's per-epoch logs, the state of
early stopping (patience counter, best value and epoch, best weights) and of a plateau schedule, and the
caller's own JSON state (``extra``: a trial's curves). The file is written beside its final name and renamed
over it, so a process killed while writing leaves the previous checkpoint whole.

A fit given a :class:`FitCheckpoint` holding a :class:`FitState` (``read_checkpoint``) resumes it: the
estimator starts Keras' epoch loop at ``epochs`` done, skips that many reshuffles of its seeded training
pipeline, and the callback puts the variables and the callbacks' state back as training begins. With a seed,
the resumed fit ends with the weights of an uninterrupted one (CPU kernels are deterministic here).

``keras.callbacks.BackupAndRestore`` was not taken: it keeps the weights and the epoch but not early
stopping's or a schedule's state, nor the logs of the epochs before, it resumes through a private attribute
of the model, and it writes two files one after the other (a kill between them leaves them inconsistent).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

__all__ = ["CheckpointMismatch", "FitCheckpoint", "FitState", "read_checkpoint", "remove_checkpoint",
           "with_checkpoint", "write_checkpoint"]

FORMAT = 1


class CheckpointMismatch(Exception):
    """A checkpoint that does not fit the model being trained (another network, a model not built before
    its first batch): the fit cannot resume from it."""


@dataclass
class FitState:
    """What a checkpoint holds (see the module docstring)."""

    epochs: int
    variables: list[np.ndarray]
    optimizer: list[np.ndarray]
    best_weights: list[np.ndarray] | None = None
    callbacks: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def write_checkpoint(path: str | os.PathLike, state: FitState) -> None:
    """``state`` into ``path`` (an ``.npz``), atomically: written beside it, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "epochs": state.epochs, "callbacks": state.callbacks, "history": state.history,
            "extra": state.extra, "best_weights": state.best_weights is not None}
    arrays = {f"v{i}": a for i, a in enumerate(state.variables)}
    arrays.update({f"o{i}": a for i, a in enumerate(state.optimizer)})
    arrays.update({f"b{i}": a for i, a in enumerate(state.best_weights or [])})
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as out:
            np.savez(out, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_checkpoint(path: str | os.PathLike) -> FitState | None:
    """The checkpoint in ``path``; None when there is none, or it cannot be read (another format)."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                return None

            def series(prefix: str) -> list[np.ndarray]:
                return [data[f"{prefix}{i}"] for i in range(sum(k[0] == prefix and k[1:].isdigit() for k in data.files))]

            return FitState(int(meta["epochs"]), series("v"), series("o"),
                            series("b") if meta["best_weights"] else None, meta["callbacks"], meta["history"],
                            meta["extra"])
    except (OSError, ValueError, KeyError, EOFError):
        return None


def remove_checkpoint(path: str | os.PathLike) -> None:
    """Remove ``path`` (and its folder, once empty); nothing when there is none."""
    path = Path(path)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:  # other trials' checkpoints are there, or the folder is gone
        pass


# The state of the callbacks our estimators train with: what each resets when training begins.
_STATE = {"EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
          "ReduceLROnPlateau": ("wait", "best", "cooldown_counter")}


class FitCheckpoint(keras.callbacks.Callback):
    """Write a checkpoint of the fit to ``path`` every ``every_epochs`` epochs or ``every_s`` seconds (None:
    not on that count); with ``resume``, continue the fit it holds. ``extra()``: the caller's JSON state,
    stored with each checkpoint. The estimator's ``fit`` finds it among its callbacks, puts it last and hands
    it its early stopping and schedule (:meth:`bind`)."""

    def __init__(self, path: str | os.PathLike, every_epochs: int | None = None, every_s: float | None = None,
                 extra: Callable[[], dict[str, Any]] | None = None, resume: FitState | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.every_epochs, self.every_s = every_epochs, every_s
        self.extra = extra or dict
        self.resume = resume
        self.watched: dict[str, Any] = {}
        self.epochs: int | None = None
        self.history: dict[str, list[float]] = {}
        self.saved = 0  # checkpoints written by this fit
        self.save_s = 0.0  # the time they took
        self._last_epoch, self._last_time = 0, time.monotonic()

    @property
    def start_epoch(self) -> int:
        """The epochs done before this fit (0 without a checkpoint to resume)."""
        return self.resume.epochs if self.resume is not None else 0

    @property
    def prior_history(self) -> dict[str, list[float]]:
        """The per-epoch logs of the epochs done before this fit."""
        return {key: list(values) for key, values in (self.resume.history if self.resume else {}).items()}

    def with_prior_history(self, history: dict[str, list[float]]) -> dict[str, list[float]]:
        """``history`` (a resumed fit's per-epoch logs) after those of the epochs done before it."""
        prior = self.prior_history
        return {key: prior.get(key, []) + list(history.get(key, [])) for key in {**prior, **history}}

    def bind(self, epochs: int, *callbacks: keras.callbacks.Callback | None) -> None:
        """The fit's length and the callbacks whose state a checkpoint keeps (early stopping, a schedule)."""
        self.epochs = int(epochs)
        self.watched = {type(cb).__name__: cb for cb in callbacks if cb is not None and type(cb).__name__ in _STATE}

    # ---- resume ------------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        self.history = self.prior_history
        self._last_epoch, self._last_time = self.start_epoch, time.monotonic()
        if self.resume is not None:
            self.restore(self.resume)

    def restore(self, state: FitState) -> None:
        """Put ``state``'s variables and callback state back (after the callbacks reset theirs)."""
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built and model.trainable_variables:
            optimizer.build(model.trainable_variables)  # its variables exist before its first step
        _assign(model.variables, state.variables, "model")
        if optimizer is not None:
            _assign(optimizer.variables, state.optimizer, "optimizer")
        for name, callback in self.watched.items():
            for attribute, value in state.callbacks.get(name, {}).items():
                setattr(callback, attribute, value)
            if name == "EarlyStopping" and getattr(callback, "restore_best_weights", False):
                callback.best_weights = [np.array(w) for w in state.best_weights] if state.best_weights else None

    # ---- save ----------------------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        done = epoch + 1
        if self.model.stop_training or (self.epochs is not None and done >= self.epochs):
            return  # the fit ends with this epoch: nothing to resume
        due = self.every_epochs is not None and done - self._last_epoch >= self.every_epochs
        due = due or (self.every_s is not None and time.monotonic() - self._last_time >= self.every_s)
        if due:
            self.save(done)

    def save(self, epochs: int) -> None:
        """Write the checkpoint after ``epochs`` epochs."""
        started = time.perf_counter()
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        stopper = self.watched.get("EarlyStopping")
        best = getattr(stopper, "best_weights", None)
        state = FitState(
            epochs=epochs,
            variables=[np.asarray(keras.ops.convert_to_numpy(v)) for v in model.variables],
            optimizer=[np.asarray(keras.ops.convert_to_numpy(v)) for v in (optimizer.variables if optimizer else [])],
            best_weights=[np.asarray(w) for w in best] if best is not None else None,
            callbacks={name: {a: _plain(getattr(cb, a, None)) for a in _STATE[name]}
                       for name, cb in self.watched.items()},
            history=self.history,
            extra=self.extra(),
        )
        write_checkpoint(self.path, state)
        self.saved += 1
        self.save_s += time.perf_counter() - started
        self._last_epoch, self._last_time = epochs, time.monotonic()


def with_checkpoint(callbacks: list[Any], epochs: int, *watched: Any) -> tuple[list[Any], FitCheckpoint | None]:
    """A fit's extra ``callbacks`` with its :class:`FitCheckpoint` (if any) last, so that it stores the state
    the others reached, bound to the fit's ``epochs`` and the ``watched`` callbacks; and that checkpoint."""
    found = [cb for cb in callbacks if isinstance(cb, FitCheckpoint)]
    if not found:
        return list(callbacks), None
    checkpoint = found[0]
    checkpoint.bind(epochs, *watched)
    return [cb for cb in callbacks if cb is not checkpoint] + [checkpoint], checkpoint


def _assign(variables: list[Any], values: list[np.ndarray], what: str) -> None:
    if len(variables) != len(values) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values, strict=True)):
        raise CheckpointMismatch(f"the checkpoint's {what} variables ({len(values)}) do not fit the {what} "
                                 f"being trained ({len(variables)})")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _plain(value: Any) -> Any:
    """A callback attribute as JSON (NumPy scalars as Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value
