"""Pictures of a study, drawn from plain trial records: no training, no MLflow, no backend.

Static pictures are matplotlib ``Figure`` objects made without pyplot: nothing is registered globally,
so a figure is freed like any other object, nothing depends on (or changes) the process's matplotlib
backend, and ``savefig`` renders PNG through Agg. Each study picture comes as a :class:`Chart` that
holds the figure *and the data it plots* (what tests and ``data.json`` read), or a note saying why it
was skipped.

Parameter importances (fANOVA) and the interactive plotly extras come from Optuna, run on an in-memory
Optuna study rebuilt from the records (:func:`optuna_study`), so both backends get the same pictures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from tuning.config import CategoricalParam, IntParam
from tuning.records import COMPLETE, FAILED, KILLED, PRUNED, TrialRecord, better
from tuning.space import Space, to_optuna_distributions

MIN_TRIALS_FOR_IMPORTANCE = 2
TOP_K = 5
TRAIN_COLOR, VALID_COLOR, BEST_COLOR = "C0", "C1", "C3"


@dataclass
class Chart:
    """One picture of a study: its figure and the data drawn, or a note saying why there is none."""

    name: str
    title: str
    caption: str
    figure: Figure | None = None
    data: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


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
    if scale != "log":
        return
    axis = ax.xaxis if which == "x" else ax.yaxis

    def minor(value: float, _pos: int | None = None) -> str:
        low, high = sorted(axis.get_view_interval())
        if low <= 0 or math.log10(high / low) > 2:
            return ""
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        return f"{value:g}" if round(mantissa, 6) in (2, 3, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def _objective_label(metric: str, direction: str) -> str:
    return f"validation {metric} ({'lower' if direction == 'minimize' else 'higher'} is better)"


# ---------------------------------------------------------------------------------- optimization history


def history_series(records: Sequence[TrialRecord], direction: str) -> dict[str, list]:
    """What the optimization history draws: one point per finished trial, best so far, pruned and failed."""
    done = finished(records)
    best_so_far: list[float] = []
    best: float | None = None
    for record in done:
        if better(record.value, best, direction):
            best = record.value
        best_so_far.append(best)
    return {
        "trials": [r.number for r in done],
        "values": [r.value for r in done],
        "best_so_far": best_so_far,
        "pruned": sorted(r.number for r in records if r.state == PRUNED),
        "failed": sorted(r.number for r in records if r.state in (FAILED, KILLED)),
    }


def optimization_history(records: Sequence[TrialRecord], direction: str, metric: str) -> Chart:
    """Objective of every finished trial, the best-so-far line, pruned and failed trials along the bottom."""
    series = history_series(records, direction)
    chart = Chart("optimization_history", "Optimization history",
                  "Validation objective of each finished trial and the best so far; pruned (grey) and "
                  "failed (red) trials are marked along the bottom.", data=series)
    if not records:
        chart.note = "no trial has run yet"
        return chart
    fig = _new_figure(7, 4)
    ax = fig.add_subplot()
    ax.scatter(series["trials"], series["values"], color=TRAIN_COLOR, zorder=3, gid="complete",
               label=f"complete ({len(series['trials'])})")
    if series["trials"]:
        ax.step(series["trials"], series["best_so_far"], where="post", color=BEST_COLOR, gid="best_so_far",
                label="best so far")
    bottom = ax.get_xaxis_transform()  # x in trial numbers, y in axes fractions
    for key, marker, color in (("pruned", "v", "0.55"), ("failed", "x", BEST_COLOR)):
        if series[key]:
            ax.scatter(series[key], [0.03] * len(series[key]), transform=bottom, marker=marker, color=color,
                       gid=key, label=f"{key} ({len(series[key])})", clip_on=False)
    set_scale(ax, "y", value_scale(series["values"]))
    ax.set(xlabel="trial", ylabel=_objective_label(metric, direction), title=chart.title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    chart.figure = fig
    return chart


# ---------------------------------------------------------------------------------- Optuna study + fANOVA


def _create_trial(record: TrialRecord | None, distributions: dict[str, Any]):
    """An Optuna FrozenTrial for a record: complete, pruned, or failed (also for a missing number)."""
    import optuna

    state = optuna.trial.TrialState
    if record is not None and set(record.params) >= set(distributions):
        params = {k: record.params[k] for k in distributions}
        kind = {COMPLETE: state.COMPLETE, PRUNED: state.PRUNED}.get(record.state, state.FAIL)
        if kind == state.COMPLETE and not record.finished:
            kind = state.FAIL
        try:
            return optuna.trial.create_trial(params=params, distributions=distributions, state=kind,
                                             value=record.value if kind == state.COMPLETE else None)
        except ValueError:  # a value outside today's space (the space changed since)
            pass
    return optuna.trial.create_trial(state=state.FAIL)


def optuna_study(records: Sequence[TrialRecord], space: Space, direction: str):
    """An in-memory Optuna study holding the records, numbered as they are (gaps become failed trials)."""
    import optuna

    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=0))
    distributions = to_optuna_distributions(space)
    by_number = {r.number: r for r in records}
    for number in range(max(by_number, default=-1) + 1):
        study.add_trial(_create_trial(by_number.get(number), distributions))
    return study


def param_importances(study) -> dict[str, float]:
    """fANOVA importance of each hyperparameter (summing to 1), most important first."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    return {name: float(value) for name, value in importances.items()}


def _complete_count(study) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def importance_chart(study, metric: str) -> Chart:
    """Horizontal bars of the fANOVA importances (needs at least two complete trials)."""
    n = _complete_count(study)
    chart = Chart("param_importances", "Hyperparameter importances",
                  f"Share of the variance of the validation {metric} explained by each hyperparameter "
                  f"(fANOVA over {n} complete trials).")
    if n < MIN_TRIALS_FOR_IMPORTANCE:
        chart.note = f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials, have {n}"
        return chart
    try:
        importances = param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        chart.note = f"could not be computed: {exc}"
        return chart
    if not importances or not all(math.isfinite(v) for v in importances.values()):
        chart.note = "could not be computed (no hyperparameter varies, or every trial scored the same)"
        return chart
    chart.data = {"importances": importances}
    names = list(importances)[::-1]
    values = [importances[k] for k in names]
    fig = _new_figure(6.5, 1.2 + 0.45 * len(names))
    ax = fig.add_subplot()
    bars = ax.barh(names, values, color=TRAIN_COLOR)
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize="small")
    ax.set(xlim=(0, max(1.0, max(values) * 1.15)), xlabel="importance (fANOVA)", title=chart.title)
    ax.grid(axis="x", alpha=0.3)
    chart.figure = fig
    return chart


# ------------------------------------------------------------------------------ parallel coordinates, slices


def _position(spec: Any, value: Any) -> float | None:
    """Where ``value`` sits on its parameter's axis, 0 (low / first choice) to 1 (high / last choice)."""
    if isinstance(spec, CategoricalParam):
        if value not in spec.choices:
            return None
        return spec.choices.index(value) / (len(spec.choices) - 1) if len(spec.choices) > 1 else 0.5
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    low, high, value = float(spec.low), float(spec.high), float(value)
    if spec.log:
        low, high, value = math.log(low), math.log(high), math.log(max(value, 1e-300))
    return 0.5 if high == low else (value - low) / (high - low)


def _axis_ticks(spec: Any) -> list[tuple[float, str]]:
    """Labels along a parameter's axis: every choice, or the range's ends and middle."""
    if isinstance(spec, CategoricalParam):
        return [(p, fmt(c)) for c in spec.choices if (p := _position(spec, c)) is not None]
    middle = math.sqrt(spec.low * spec.high) if spec.log else (spec.low + spec.high) / 2
    if isinstance(spec, IntParam):
        middle = round(middle)
    return [(_position(spec, v), fmt(v)) for v in (spec.low, middle, spec.high)]


def _objective_norm(values: Sequence[float]) -> Normalize:
    low, high = min(values), max(values)
    if value_scale(values) == "log":
        return LogNorm(low, high)
    return Normalize(low, high if high > low else low + 1)


def _cmap(direction: str):
    """Best trials darkest: viridis runs dark to light, so reverse it when maximising."""
    return matplotlib.colormaps["viridis" if direction == "minimize" else "viridis_r"]


def parallel_coordinates(records: Sequence[TrialRecord], space: Space, direction: str, metric: str) -> Chart:
    """One line per complete trial across every hyperparameter's axis and the objective's, best on top."""
    chart = Chart("parallel_coordinates", "Parallel coordinates",
                  "Each line is a complete trial through its hyperparameter values (search range from bottom "
                  f"to top) and its validation {metric}; darker is better and the best trial is red.")
    done = [r for r in ranked(records, direction) if all(_position(s, r.params.get(k)) is not None
                                                         for k, s in space.items())]
    if not done:
        chart.note = "no complete trial yet"
        return chart
    names = list(space)
    values = [r.value for r in done]
    norm, cmap = _objective_norm(values), _cmap(direction)
    chart.data = {"axes": names + [metric],
                  "lines": [{"trial": r.number, "params": {k: r.params[k] for k in names}, "value": r.value}
                            for r in done]}
    fig = _new_figure(max(6.0, 1.6 * (len(names) + 1)), 4.2)
    ax = fig.add_subplot()
    xs = list(range(len(names) + 1))
    for rank, record in reversed(list(enumerate(done))):  # worst first, so the best is drawn on top
        ys = [_position(space[k], record.params[k]) for k in names] + [float(norm(record.value))]
        best = rank == 0
        ax.plot(xs, ys, color=BEST_COLOR if best else cmap(norm(record.value)), lw=2.5 if best else 1.2,
                alpha=1.0 if best else 0.75, zorder=3 if best else 2)
    for x, name in enumerate(names):
        ax.axvline(x, color="0.3", lw=0.8)
        for pos, label in _axis_ticks(space[name]):
            ax.text(x + 0.04, pos, label, fontsize="x-small", va="center", color="0.25")
    ax.axvline(xs[-1], color="0.3", lw=0.8)
    for pos in (0.0, 0.5, 1.0):
        ax.text(xs[-1] + 0.04, pos, fmt(float(norm.inverse(pos))), fontsize="x-small", va="center", color="0.25")
    ax.set(xticks=xs, xlim=(-0.1, xs[-1] + 0.5), ylim=(-0.05, 1.05), yticks=[], title=chart.title)
    ax.set_xticklabels(names + [metric])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=f"validation {metric}", pad=0.01)
    chart.figure = fig
    return chart


def slice_series(records: Sequence[TrialRecord], space: Space) -> dict[str, dict[str, list]]:
    """Per hyperparameter: the values tried by complete trials, their objective and trial numbers."""
    done = finished(records)
    return {name: {"x": [r.params[name] for r in done if name in r.params],
                   "y": [r.value for r in done if name in r.params],
                   "trials": [r.number for r in done if name in r.params]} for name in space}


def _slice_axis(ax, spec: Any, xs: list[Any]) -> list[float]:
    """Set up one slice's x axis (log or categorical) and return the plotted x positions."""
    if isinstance(spec, CategoricalParam):
        ax.set_xticks(range(len(spec.choices)), [fmt(c) for c in spec.choices])
        ax.set_xlim(-0.5, len(spec.choices) - 0.5)
        return [spec.choices.index(x) if x in spec.choices else np.nan for x in xs]
    values = [float(x) for x in xs if isinstance(x, int | float) and not isinstance(x, bool)]
    low, high = min([spec.low, *values]), max([spec.high, *values])  # a value out of range stays visible
    if spec.log:
        set_scale(ax, "x", "log")
        ax.set_xlim(low / 1.1, high * 1.1)
    else:
        pad = (high - low) * 0.03 or 0.5
        ax.set_xlim(low - pad, high + pad)
        ax.xaxis.set_major_locator(MaxNLocator(integer=isinstance(spec, IntParam)))
    return [float(x) if isinstance(x, int | float) and not isinstance(x, bool) else np.nan for x in xs]


def slice_chart(records: Sequence[TrialRecord], space: Space, direction: str, metric: str) -> Chart:
    """Objective against each hyperparameter on its own, coloured by trial number (later is lighter)."""
    series = slice_series(records, space)
    chart = Chart("slices", "Slice plots",
                  f"Validation {metric} of each complete trial against one hyperparameter at a time; colour is "
                  "the trial number, so a search that narrows in shows light points clustering.", data=series)
    done = finished(records)
    if not done:
        chart.note = "no complete trial yet"
        return chart
    ncols = min(3, len(space))
    nrows = math.ceil(len(space) / ncols)
    fig = _new_figure(3.6 * ncols + 0.8, 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    norm = Normalize(min(r.number for r in done), max(max(r.number for r in done), min(r.number for r in done) + 1))
    scale = value_scale([r.value for r in done])
    for ax, (name, spec) in zip(axes, space.items(), strict=False):
        data = series[name]
        ax.scatter(_slice_axis(ax, spec, data["x"]), data["y"], c=data["trials"], cmap="viridis", norm=norm,
                   edgecolors="0.2", linewidths=0.4, gid=name)
        set_scale(ax, "y", scale)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    for ax in axes[len(space):]:
        ax.set_visible(False)
    for row in range(nrows):
        axes[row * ncols].set_ylabel(f"validation {metric}")
    fig.colorbar(ScalarMappable(norm, "viridis"), ax=list(axes), label="trial", pad=0.01)
    fig.suptitle(chart.title)
    chart.figure = fig
    return chart


# ----------------------------------------------------------------------------------------- learning curves


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
    """Validation metrics other than the loss that Keras logged (``val_accuracy`` ...)."""
    return [k for k in history if k.startswith("val_") and k != "val_loss" and history[k]]


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
        key = tuple((name, bool(history.get(name[len("val_"):]))) for name in extras)
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
            series = ([history[name[len("val_"):]]] if has_training else []) + [history[name]]
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
                short = name[len("val_"):]
                lines = []
                if has_training:
                    lines += axes[1].plot([], [], color=f"C{2 * i}", ls="--", label=f"training {short}")
                lines += axes[1].plot([], [], color=f"C{2 * i + 1}", label=f"validation {short}")
                extras.append(lines)
            axes[1].set(xlabel="epoch", ylabel=", ".join(name[len("val_"):] for name, _ in key))
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
    fig = _new_figure(max(5.0, 3.1 * len(top)), 3.5)
    axes = fig.subplots(1, len(top), sharey=True, squeeze=False).ravel()
    scale = _curve_scale([r.history.get(key) or [] for r in top for key in ("loss", "val_loss")])
    for rank, (ax, record) in enumerate(zip(axes, top, strict=True), start=1):
        _draw_losses(ax, record.history, legend=rank == 1)
        set_scale(ax, "y", scale)
        ax.set_title(f"#{rank}: trial {record.number}\n{metric} = {fmt(record.value)}", fontsize="small")
    axes[0].set_ylabel("loss")
    chart.figure = fig
    return chart


# ------------------------------------------------------------------------------------------------- study


def study_charts(records: Sequence[TrialRecord], space: Space, direction: str, metric: str,
                 study: Any = None) -> list[Chart]:
    """Every picture of a study, in report order (``study``: the in-memory Optuna study, built if None)."""
    study = study if study is not None else optuna_study(records, space, direction)
    return [
        optimization_history(records, direction, metric),
        importance_chart(study, metric),
        parallel_coordinates(records, space, direction, metric),
        slice_chart(records, space, direction, metric),
        best_curve_chart(records, direction, metric),
        top_curves_chart(records, direction, metric),
    ]


def write_interactive(study, out_dir: str | Path) -> dict[str, Path]:
    """Optuna's plotly pictures as HTML files (plotly.js from its CDN), by chart name; skips what cannot be drawn."""
    import optuna.visualization as vis
    from optuna.importance import FanovaImportanceEvaluator

    n = _complete_count(study)
    makers = {
        "optimization_history": (1, vis.plot_optimization_history, {}),
        "param_importances": (MIN_TRIALS_FOR_IMPORTANCE, vis.plot_param_importances,
                              {"evaluator": FanovaImportanceEvaluator(seed=0)}),
        "parallel_coordinates": (1, vis.plot_parallel_coordinate, {}),
        "slices": (1, vis.plot_slice, {}),
    }
    out: dict[str, Path] = {}
    for name, (needed, make, kwargs) in makers.items():
        if n < needed:
            continue
        try:
            figure = make(study, **kwargs)
        except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. fANOVA when every trial scored the same
            continue
        out[name] = Path(out_dir) / f"{name}.html"
        figure.write_html(out[name], include_plotlyjs="cdn", full_html=True)
    return out
