"""The learning-rate range test (Hands-On ML, ch. 10-11): train once while the learning rate grows
exponentially from ``min_lr`` to ``max_lr``, one step per mini-batch, and read the loss against it.

The network is the study's: its data prepared exactly as a trial's (:class:`~tuning.search.trial.runner.TrialRunner`),
its fixed arguments, and for every tuned hyperparameter but ``learning_rate`` the middle of its range
(the geometric middle of a log range, the first of a categorical's choices). The test stops early once
the smoothed loss exceeds 4x its minimum or the loss stops being finite.

The reading: ``best_lr`` is the rate where the smoothed loss is lowest; ``suggested_lr`` is half of it;
``suggested_bounds`` is a log range from a tenth of the suggestion to three times it (never above
``max_lr``), rounded to two significant digits, to search around it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tuning.config.schema import CategoricalParam, FloatParam, IntParam, StudyConfig
from tuning.data.sources import DatasetSplit, load_dataset
from tuning.errors import StudyError
from tuning.parallel import interrupt

__all__ = ["ExponentialRate", "LRRangeResult", "lr_range_test", "middle_params", "suggest_bounds"]

DIVERGED = 4.0  # stop once the smoothed loss is this many times its minimum
SMOOTHING = 0.9  # weight of the past in the (bias-corrected) exponential moving average of the loss
MIN_STEPS, MAX_STEPS = 100, 1000  # default steps: one epoch of mini-batches, within these limits
BOUNDS_BELOW, BOUNDS_ABOVE = 10.0, 3.0  # suggested_bounds: suggestion / 10 .. suggestion * 3


@dataclass
class LRRangeResult:
    """The curve of a range test and what it suggests (see the module docstring for the rule)."""

    learning_rates: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    best_lr: float
    suggested_lr: float
    suggested_bounds: tuple[float, float]
    min_lr: float
    max_lr: float
    steps: int
    batch_size: int
    stopped: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = asdict(self)
        out["suggested_bounds"] = list(self.suggested_bounds)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LRRangeResult:
        names = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in names}
        values["suggested_bounds"] = tuple(values["suggested_bounds"])
        return cls(**values)

    def plot(self, path: str | Path) -> Path:
        """The loss against the learning rate (log axis), the suggestion and its bounds, as a PNG."""
        from matplotlib.figure import Figure

        from tuning.figures.chart import BEST_COLOR, TRAIN_COLOR

        figure = Figure(figsize=(6.4, 4.0), dpi=100)
        ax = figure.subplots()
        ax.plot(self.learning_rates, self.losses, color=TRAIN_COLOR, alpha=0.3, linewidth=1, label="batch loss")
        ax.plot(self.learning_rates, self.smoothed_losses, color=TRAIN_COLOR, linewidth=2, label="smoothed")
        ax.axvspan(*self.suggested_bounds, color=BEST_COLOR, alpha=0.08, label="suggested bounds")
        ax.axvline(self.suggested_lr, color=BEST_COLOR, linestyle="--",
                   label=f"suggested {self.suggested_lr:.3g}")
        ax.set_xscale("log")
        if self.smoothed_losses:
            lowest = min(min(self.losses), min(self.smoothed_losses))
            top = max(self.smoothed_losses[0], DIVERGED * min(self.smoothed_losses))
            ax.set_ylim(max(0.0, lowest - 0.05 * (top - lowest)), top * 1.05)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title("learning-rate range test")
        ax.grid(True, which="both", alpha=0.2)
        ax.legend(loc="upper left", fontsize="small")
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, format="png")
        return path


# ------------------------------------------------------------------------------------------- the network


def middle(spec: IntParam | FloatParam | CategoricalParam) -> Any:
    """The middle of a space entry: geometric for a log range, on the step grid, first choice of a list."""
    if isinstance(spec, CategoricalParam):
        return spec.choices[0]
    value = math.sqrt(spec.low * spec.high) if spec.log else (spec.low + spec.high) / 2
    if spec.step:
        value = spec.low + spec.step * round((value - spec.low) / spec.step)
    value = min(spec.high, max(spec.low, value))
    return int(round(value)) if isinstance(spec, IntParam) else float(value)


def middle_params(config: StudyConfig) -> dict[str, Any]:
    """The tuned hyperparameters at the middle of their ranges, ``learning_rate`` left out."""
    return {name: middle(spec) for name, spec in config.space.items() if name != "learning_rate"}


def suggest_bounds(suggested_lr: float, max_lr: float) -> tuple[float, float]:
    """suggestion / 10 .. min(suggestion * 3, max_lr), rounded to two significant digits (positive)."""
    low = _round2(suggested_lr / BOUNDS_BELOW)
    high = _round2(min(suggested_lr * BOUNDS_ABOVE, max_lr))
    return low, max(high, low)


def _round2(value: float) -> float:
    return float(f"{value:.2g}")


def default_steps(n_rows: int, batch_size: int) -> int:
    """One epoch of mini-batches, at least MIN_STEPS (small data: a few epochs) and at most MAX_STEPS."""
    return int(min(MAX_STEPS, max(MIN_STEPS, math.ceil(n_rows / batch_size))))


class ExponentialRate(keras.callbacks.Callback):
    """Sets the learning rate of batch i to ``rates[i]`` and records that batch's loss (raw and smoothed);
    stops training when the rates run out, the smoothed loss exceeds DIVERGED x its minimum, or the loss
    is not finite (that batch is not recorded)."""

    def __init__(self, rates: np.ndarray, batch_size: int, n_rows: int, smoothing: float = SMOOTHING) -> None:
        super().__init__()
        self.rates, self.batch_size, self.n_rows, self.smoothing = rates, batch_size, n_rows, smoothing
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.stopped = "max_lr reached"
        self._average = 0.0
        self._rows = 0
        self._total = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._rows, self._total = 0, 0.0  # Keras' batch "loss" is the epoch's running mean

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate = float(self.rates[len(self.losses)])

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        interrupt.check()
        rows = min(self._rows + self.batch_size, self.n_rows)
        total = float((logs or {}).get("loss", math.nan)) * rows  # the mean is weighted by rows, as Keras does
        loss = (total - self._total) / max(rows - self._rows, 1)
        self._rows, self._total = rows, total
        if not math.isfinite(loss):
            self.stopped = "loss not finite"
            self.model.stop_training = True
            return
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** (len(self.losses) + 1))  # bias-corrected
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        if smoothed > DIVERGED * min(self.smoothed):
            self.stopped = f"smoothed loss above {DIVERGED:g}x its minimum"
            self.model.stop_training = True
        elif len(self.losses) >= len(self.rates):
            self.model.stop_training = True


# ------------------------------------------------------------------------------------------------- test


def lr_range_test(config: StudyConfig, split: DatasetSplit | None = None, *, min_lr: float = 1e-5,
                  max_lr: float = 1.0, steps: int | None = None, seed: int | None = None,
                  smoothing: float = SMOOTHING) -> LRRangeResult:
    """Run the range test on the study's training rows (``split``: the study's, loaded when None).

    ``steps`` mini-batches (default: one epoch, 100 to 1000 steps) at learning rates growing
    geometrically from ``min_lr`` to ``max_lr``; ``seed`` (default ``search.seed``) seeds the weights
    and the shuffling, so the same seed gives the same suggestion.
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if steps is not None and steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    from tuning.search.trial.runner import make_runner

    split = split if split is not None else load_dataset(config.dataset)
    runner = make_runner(config, split)
    data = runner.data
    if config.model.factory is not None:  # the rate must reach the optimizer: a factory argument or compile knob
        from tuning.search.trial.preflight import preflight

        preflight(config, split, data, knobs=("learning_rate",))
    params = middle_params(config)
    estimator = runner.make_estimator({**params, "learning_rate": min_lr})
    batch_size, n_rows = int(estimator.batch_size), len(data.X_train)
    steps = steps or default_steps(n_rows, batch_size)
    per_epoch = math.ceil(n_rows / batch_size)
    rates = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    estimator.set_params(epochs=math.ceil(steps / per_epoch), early_stopping=False, validation_fraction=None,
                         steps_per_execution=1)  # batch callbacks run once per execution: one per batch
    if seed is not None:
        estimator.set_params(random_state=seed)
    callback = ExponentialRate(rates, batch_size, n_rows, smoothing)
    try:
        estimator.fit(data.X_train, data.y_train, callbacks=[callback])
    finally:
        keras.backend.clear_session(free_memory=False)  # as after a trial: no global Keras state left
    if not callback.losses:
        raise StudyError(f"learning-rate range test: the training loss was not finite from the first batch "
                         f"(min_lr {min_lr:g}); lower min_lr, or check the targets' scale "
                         "(preprocessing.target_scaling: standard)")
    tried = [float(r) for r in rates[: len(callback.losses)]]
    best_lr = tried[int(np.argmin(callback.smoothed))]
    suggested = best_lr / 2
    return LRRangeResult(
        learning_rates=tried, losses=callback.losses, smoothed_losses=callback.smoothed, best_lr=best_lr,
        suggested_lr=suggested, suggested_bounds=suggest_bounds(suggested, max_lr), min_lr=float(min_lr),
        max_lr=float(max_lr), steps=int(steps), batch_size=batch_size, stopped=callback.stopped,
        params=params,
    )
