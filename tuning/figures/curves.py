"""Learning-curve pictures: training vs validation loss per epoch, for one trial or the best few.

:class:`LearningCurvePainter` draws the per-trial picture the tracker logs to MLflow;
:func:`best_curve_chart` and :func:`top_curves_chart` are the report's learning-curve charts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tuning.figures.chart import (
    TRAIN_COLOR,
    VALID_COLOR,
    Chart,
    fmt,
    new_figure,
    ranked,
    set_scale,
    value_scale,
)
from tuning.records import TrialRecord

TOP_K = 5


def _curve_scale(series: Sequence[Sequence[float]]) -> str:
    return value_scale([v for values in series for v in values])


def _draw_losses(ax, history: dict[str, list[float]], legend: bool = True) -> None:
    """Training and validation loss per epoch, the best validation epoch marked."""
    for key, label, color in (("loss", "training", TRAIN_COLOR), ("val_loss", "validation", VALID_COLOR)):
        values = history.get(key) or []
        if values:
            ax.plot(range(1, len(values) + 1), values, color=color, label=f"{label} loss", gid=key)
    val = history.get("val_loss") or []
    finite = [(v, i) for i, v in enumerate(val, start=1) if math.isfinite(v)]
    if finite:
        best, epoch = min(finite)
        ax.axvline(epoch, color="0.5", ls=":", lw=1)
        ax.plot([epoch], [best], "o", color=VALID_COLOR, ms=5)
    set_scale(ax, "y", _curve_scale([history.get("loss") or [], val]))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize="small")


def _extra_metrics(history: dict[str, list[float]]) -> list[str]:
    """Validation curves beside the loss: the study's metric (``valid_<metric>``, what the pruner ranks on) and
    the compiled metrics Keras logged (``val_accuracy`` ...)."""
    return [k for k in history if (k.startswith("valid_") or (k.startswith("val_") and k != "val_loss")) and history[k]]


def _metric_name(curve: str) -> str:
    """``valid_mse`` -> ``mse``, ``val_accuracy`` -> ``accuracy``."""
    return curve.split("_", 1)[1]


def _training_curve(curve: str) -> str | None:
    """The training curve beside a validation one (Keras' ``accuracy`` for ``val_accuracy``); the study's
    metric has none."""
    return None if curve.startswith("valid_") else _metric_name(curve)


def learning_curve_figure(history: dict[str, list[float]], title: str = "", *, size: tuple[float, float] = (6.5, 3.8),
                          dpi: int = 100) -> Figure | None:
    """Training vs validation loss per epoch (plus other validation metrics beside it); None without a loss."""
    return LearningCurvePainter(size, dpi).figure(history, title)


class LearningCurvePainter:
    """The learning-curve picture (:func:`learning_curve_figure`), drawn for many trials.

    One figure per layout (losses only; losses + the validation metrics Keras logged) is built once and
    updated in place for every trial, with fixed margins instead of a constrained-layout pass: one draw
    per picture instead of two, no figure or axes creation (about 3x cheaper). Not thread-safe: one
    painter per thread (the tracker's writer thread owns one).
    """

    def __init__(self, size: tuple[float, float] = (5.0, 3.2), dpi: int = 80):
        self.size, self.dpi = size, dpi
        self._layouts: dict[tuple, dict[str, Any]] = {}

    def figure(self, history: dict[str, list[float]], title: str = "") -> Figure | None:
        """The reused figure, redrawn for ``history`` (None without a loss); valid until the next call."""
        if not history.get("loss"):
            return None
        extras = _extra_metrics(history)
        key = tuple((name, bool(_training_curve(name) and history.get(_training_curve(name)))) for name in extras)
        parts = self._layouts.get(key) or self._layouts.setdefault(key, self._build(key))
        loss_ax = parts["axes"][0]
        for name, line in parts["losses"].items():
            values = history.get(name) or []
            line.set_data(range(1, len(values) + 1), values)
            line.set_visible(bool(values))
        val = history.get("val_loss") or []
        finite = [(v, i) for i, v in enumerate(val, start=1) if math.isfinite(v)]
        if finite:
            best, epoch = min(finite)
            parts["best_epoch"].set_xdata([epoch, epoch])
            parts["best_point"].set_data([epoch], [best])
        parts["best_epoch"].set_visible(bool(finite))
        parts["best_point"].set_visible(bool(finite))
        set_scale(loss_ax, "y", _curve_scale([history.get("loss") or [], val]))
        visible = [line for line in parts["losses"].values() if line.get_visible()]
        loss_ax.legend(handles=visible, fontsize="small")
        for (name, has_training), lines in zip(key, parts["extras"], strict=True):
            series = ([history[_training_curve(name)]] if has_training else []) + [history[name]]
            for line, values in zip(lines, series, strict=True):
                line.set_data(range(1, len(values) + 1), values)
        for ax in parts["axes"]:
            ax.relim(visible_only=True)
            ax.autoscale_view()
        parts["title"].set_text(title)
        return parts["figure"]

    def _build(self, key: tuple) -> dict[str, Any]:
        width = self.size[0] * (1.7 if key else 1)
        fig = Figure(figsize=(width, self.size[1]), dpi=self.dpi)
        axes = fig.subplots(1, 2 if key else 1, squeeze=False).ravel()
        # Room for tick labels, axis labels and the title (what constrained layout would find, fixed).
        fig.subplots_adjust(left=0.8 / width, right=1 - 0.15 / width, bottom=0.5 / self.size[1],
                            top=1 - 0.4 / self.size[1], wspace=0.3)
        ax = axes[0]
        losses = {key_: ax.plot([], [], color=color, label=f"{label} loss", gid=key_)[0]
                  for key_, label, color in (("loss", "training", TRAIN_COLOR), ("val_loss", "validation", VALID_COLOR))}
        best_epoch = ax.axvline(1, color="0.5", ls=":", lw=1)
        (best_point,) = ax.plot([], [], "o", color=VALID_COLOR, ms=5)
        ax.set(xlabel="epoch", ylabel="loss")
        extras = []
        if key:
            for i, (name, has_training) in enumerate(key):
                short = _metric_name(name)
                lines = []
                if has_training:
                    lines += axes[1].plot([], [], color=f"C{2 * i}", ls="--", label=f"training {short}")
                lines += axes[1].plot([], [], color=f"C{2 * i + 1}", label=f"validation {short}")
                extras.append(lines)
            axes[1].set(xlabel="epoch", ylabel=", ".join(_metric_name(name) for name, _ in key))
            axes[1].legend(fontsize="small")
        for each in axes:
            each.xaxis.set_major_locator(MaxNLocator(integer=True))
            each.grid(alpha=0.3)
        return {"figure": fig, "axes": list(axes), "losses": losses, "best_epoch": best_epoch,
                "best_point": best_point, "extras": extras, "title": fig.suptitle("", fontsize="medium")}


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())


def best_curve_chart(records: Sequence[TrialRecord], direction: str, metric: str) -> Chart:
    """The best trial's learning curves."""
    chart = Chart("best_learning_curve", "Learning curves of the best trial",
                  "Training vs validation loss per epoch of the best trial; the dotted line marks the epoch "
                  "with the lowest validation loss.")
    best = next((r for r in ranked(records, direction) if r.history.get("loss")), None)
    if best is None:
        chart.note = "no complete trial with recorded curves yet"
        return chart
    chart.data = {"trial": best.number, "value": best.value, "history": best.history}
    names = [k for k, values in best.history.items() if values]
    chart.table = [{"epoch": epoch, **{k: best.history[k][epoch - 1] for k in names if epoch <= len(best.history[k])}}
                   for epoch in range(1, max(len(best.history[k]) for k in names) + 1)]
    chart.caption += f" Trial {best.number}: {_params_text(best.params)}."
    chart.figure = learning_curve_figure(best.history, f"best trial {best.number}: validation {metric} = {fmt(best.value)}")
    return chart


def top_curves_chart(records: Sequence[TrialRecord], direction: str, metric: str, k: int = TOP_K) -> Chart:
    """Training vs validation loss of the ``k`` best trials side by side, on a shared scale."""
    top = [r for r in ranked(records, direction) if r.history.get("loss")][:k]
    chart = Chart("top_learning_curves", f"Learning curves of the top {len(top) or k} trials",
                  "Training (blue) vs validation (orange) loss per epoch of the best trials, best first, on one "
                  "shared loss scale.")
    if not top:
        chart.note = "no complete trial with recorded curves yet"
        return chart
    chart.data = {"trials": [r.number for r in top], "values": [r.value for r in top]}
    chart.table = [{"rank": rank, "trial": r.number, f"validation {metric}": r.value, "epochs": len(r.history["loss"])}
                   for rank, r in enumerate(top, start=1)]
    fig = new_figure(max(5.0, 3.1 * len(top)), 3.5)
    axes = fig.subplots(1, len(top), sharey=True, squeeze=False).ravel()
    scale = _curve_scale([r.history.get(key) or [] for r in top for key in ("loss", "val_loss")])
    for rank, (ax, record) in enumerate(zip(axes, top, strict=True), start=1):
        _draw_losses(ax, record.history, legend=rank == 1)
        set_scale(ax, "y", scale)
        ax.set_title(f"#{rank}: trial {record.number}\n{metric} = {fmt(record.value)}", fontsize="small")
    axes[0].set_ylabel("loss")
    chart.figure = fig
    return chart
