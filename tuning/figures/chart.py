"""The :class:`Chart` record and the matplotlib helpers every study picture shares.

Figures are made without pyplot: nothing is registered globally, so a figure is freed like any other
object, nothing depends on (or changes) the process's matplotlib backend, and ``savefig`` renders PNG
through Agg.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from tuning.records import TrialRecord

TRAIN_COLOR, VALID_COLOR, BEST_COLOR = "C0", "C1", "C3"


@dataclass
class Chart:
    """One picture of a study: its figure and the data drawn, or a note saying why there is none.

    ``table``: what the picture shows as rows (column -> value) for the report to print beside it, so exact
    values can be read (and searched) where the PNG shows shapes.
    """

    name: str
    title: str
    caption: str
    figure: Figure | None = None
    data: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    table: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- helpers


def fmt(value: Any) -> str:
    """A compact number (4 significant digits), or the value as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4g}"


def finished(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Complete trials with a finite objective, by trial number."""
    return sorted((r for r in records if r.finished), key=lambda r: r.number)


def ranked(records: Sequence[TrialRecord], direction: str) -> list[TrialRecord]:
    """Complete trials, best first."""
    return sorted(finished(records), key=lambda r: r.value, reverse=direction == "maximize")


def value_scale(values: Sequence[float], ratio: float = 10.0) -> str:
    """``log`` when positive values span more than ``ratio`` (a poor trial, a first epoch), else ``linear``."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values or min(values) <= 0:
        return "linear"
    return "log" if max(values) / min(values) > ratio else "linear"


def save_png(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=dpi)
    return path


def set_scale(ax, which: str, scale: str) -> None:
    """Linear or log scale on the ``x`` or ``y`` axis; log ticks read as plain numbers (0.01, 0.3, 2).

    On a log axis spanning at most two decades, the 2x, 3x and 5x ticks between decades are labelled too.
    """
    getattr(ax, f"set_{which}scale")(scale)
    if scale == "log":
        plain_log_labels(ax, which)


def plain_log_labels(ax, which: str, minor_decades: float = 2) -> None:
    """Label the log ``x`` or ``y`` axis of ``ax`` as :func:`set_scale` does (on an axis others drew); the
    2x, 3x and 5x ticks only while the axis spans at most ``minor_decades`` decades."""
    axis = ax.xaxis if which == "x" else ax.yaxis

    def minor(value: float, _pos: int | None = None) -> str:
        low, high = sorted(axis.get_view_interval())
        if low <= 0 or math.log10(high / low) > minor_decades:
            return ""
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        return f"{value:g}" if round(mantissa, 6) in (2, 3, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    """An empty figure with constrained layout."""
    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")
