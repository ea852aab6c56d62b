"""One trial of a stack (``search.stack``): its Optuna trial, parameters and estimator settings, and once in a
stack its record and its early-stopping / plateau state, decided per member by Keras' callbacks' rules
(:mod:`tuning.search.schedulers.stacking` trains the stack); the widths a stack pads its members to."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from estimators.common.hyperparams import layer_widths
from tuning.compat.optuna import TrialHeartbeat
from tuning.records import TrialRecord

__all__ = ["SHARED", "Member", "padded_width"]

#: the estimator settings every member of one stack shares
SHARED = ("n_hidden", "batch_size", "activation", "numeric_embedding", "n_frequencies", "embedding_dim")
_PLATEAU_MIN_DELTA = 1e-4  # keras.callbacks.ReduceLROnPlateau's default, as estimators.common.callbacks uses it


def padded_width(width: int) -> int:
    """The width a stack's hidden layer is padded to: the next of 8, 12, 16, 24, 32, 48, 64, 96, 128, ...
    (at most 1.5 times the widest member), so that later stacks of the same depth fit the models already
    compiled and refills of somewhat wider trials fit too."""
    size = 8
    while size < width:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


@dataclass(eq=False)
class Member:
    """One asked trial: its Optuna trial, parameters and estimator settings; once in a stack, its record
    and its early-stopping / plateau state (Keras' callbacks' rules, per member)."""

    trial: optuna.Trial
    params: dict[str, Any]
    estimator: Any  # unfitted, with the trial's parameters: its settings, and the model it becomes
    heartbeat: TrialHeartbeat
    record: TrialRecord | None = None
    reported: list[float] = field(default_factory=list)
    on_epoch: Any = None
    started: float = 0.0
    epoch: int = 0
    best: float = math.inf
    best_epoch: int = -1
    best_weights: list[np.ndarray] | None = None
    wait: int = 0
    plateau_best: float = math.inf
    plateau_wait: int = 0

    def setting(self, name: str) -> Any:
        return getattr(self.estimator, name)

    @property
    def key(self) -> tuple:
        return tuple(self.setting(name) for name in SHARED)

    @property
    def widths(self) -> list[int]:
        return layer_widths(int(self.setting("n_hidden")), self.setting("n_neurons"))

    @property
    def config(self) -> dict[str, Any]:
        """The member's own settings in the stack (``estimators.stacked.model.MEMBER_KEYS``)."""
        return {"n_neurons": self.setting("n_neurons"), "learning_rate": float(self.setting("learning_rate")),
                "dropout": float(self.setting("dropout") or 0.0),
                "frequency_scale": float(self.setting("frequency_scale"))}

    @property
    def embedding(self) -> dict[str, int] | None:
        """The periodic embedding's shape the stack shares (``estimators.stacked.model.EMBEDDING_KEYS``), or None."""
        if str(self.setting("numeric_embedding")).lower() != "periodic":
            return None
        return {"n_frequencies": int(self.setting("n_frequencies")), "embedding_dim": int(self.setting("embedding_dim"))}

    def early_stop(self, value: float, weights) -> bool:
        """``keras.callbacks.EarlyStopping.on_epoch_end`` for this member: whether it stops now."""
        if not self.setting("early_stopping"):
            return False
        restore = bool(self.setting("restore_best_weights"))
        if restore and self.best_weights is None:
            self.best_weights, self.best_epoch = weights(), self.epoch
        self.wait += 1
        if value + abs(float(self.setting("min_delta"))) < self.best:  # as Keras: NaN never improves
            self.best, self.best_epoch, self.wait = value, self.epoch, 0
            if restore:
                self.best_weights = weights()
            return False
        return self.wait >= int(self.setting("patience")) and self.epoch > 0

    def plateau(self, value: float, learning_rate: float) -> float | None:
        """``keras.callbacks.ReduceLROnPlateau`` as ``estimators.common.callbacks.lr_schedule('plateau')`` makes it:
        the member's new learning rate, or None."""
        if value < self.plateau_best - _PLATEAU_MIN_DELTA:
            self.plateau_best, self.plateau_wait = value, 0
            return None
        self.plateau_wait += 1
        if self.plateau_wait < max(1, int(self.setting("patience")) // 2):
            return None
        self.plateau_wait = 0
        min_lr = float(self.setting("learning_rate")) * 1e-3
        if learning_rate > np.float32(min_lr):
            return max(learning_rate * 0.5, min_lr)
        return None
