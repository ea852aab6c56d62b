"""Pictures of a study, drawn from plain trial records: no training, no MLflow, no backend.

Each study picture comes as a :class:`~tuning.figures.chart.Chart` that holds its one drawing, a matplotlib
figure (made without pyplot, see `tuning.figures.chart`), *and the data it plots* (what tests and
``data.json`` read; as rows, the table the report prints beside the picture), or a note saying why it was
skipped. This module draws the history, importance, parallel-coordinate and
slice charts and puts every chart in report order (:func:`study_charts`); the learning curves come from
`tuning.figures.curves`. The names of both helper modules are importable from here too.

Parameter importances (fANOVA) come from Optuna, run on an in-memory Optuna study rebuilt from the
records (:func:`optuna_study`), so both backends get the same pictures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.ticker import MaxNLocator

from tuning.config.schema import CategoricalParam, FloatParam, IntParam
from tuning.figures.chart import (
    BEST_COLOR,
    TRAIN_COLOR,
    VALID_COLOR,
    Chart,
    finished,
    fmt,
    new_figure,
    ranked,
    save_png,
    set_scale,
    value_scale,
)
from tuning.figures.curves import (
    TOP_K,
    LearningCurvePainter,
    best_curve_chart,
    learning_curve_figure,
    top_curves_chart,
)
from tuning.records import COMPLETE, FAILED, KILLED, PRUNED, TrialRecord, better
from tuning.search.space import Space, flat_space, to_optuna_distributions

__all__ = [
    "BEST_COLOR",
    "MIN_TRIALS_FOR_IMPORTANCE",
    "TOP_K",
    "TRAIN_COLOR",
    "VALID_COLOR",
    "Chart",
    "LearningCurvePainter",
    "best_curve_chart",
    "finished",
    "fmt",
    "history_series",
    "importance_chart",
    "learning_curve_figure",
    "optimization_history",
    "optuna_study",
    "parallel_coordinates",
    "param_importances",
    "ranked",
    "save_png",
    "set_scale",
    "slice_chart",
    "slice_series",
    "study_charts",
    "top_curves_chart",
    "value_scale",
]

MIN_TRIALS_FOR_IMPORTANCE = 2


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
    chart.table = [{"trial": n, f"validation {metric}": v, "best so far": b}
                   for n, v, b in zip(series["trials"], series["values"], series["best_so_far"], strict=True)]
    fig = new_figure(7, 4)
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
    if record is not None and any(k in record.params for k in distributions):
        # a conditional parameter the trial did not draw is left out (never filled in)
        distributions = {k: d for k, d in distributions.items() if k in record.params}
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
    distributions = to_optuna_distributions(plot_space(records, space))
    by_number = {r.number: r for r in records}
    for number in range(max(by_number, default=-1) + 1):
        study.add_trial(_create_trial(by_number.get(number), distributions))
    return study


def plot_space(records: Sequence[TrialRecord], space: Space) -> Space:
    """The names the charts plot, each with its range: the space flattened (``per`` entries as ``<name>_1``
    ..., see :func:`tuning.search.space.flat_space`) to the names some trial drew; a study without a declared
    space (a KerasTuner hypermodel draws its own) gets ranges from the values its trials drew."""
    drawn = {k for r in records for k in r.params}
    if space:
        return {name: spec for name, spec in flat_space(space).items() if name in drawn}
    values: dict[str, list[Any]] = {}
    for record in records:
        for name, value in record.params.items():
            values.setdefault(name, []).append(value)
    out: Space = {}
    for name, seen in values.items():
        numbers = [v for v in seen if isinstance(v, int | float) and not isinstance(v, bool)]
        low, high = (min(numbers), max(numbers)) if numbers else (None, None)
        if len(numbers) < len(seen) or low == high:
            out[name] = CategoricalParam(type="categorical", choices=list(dict.fromkeys(seen)))
        elif all(isinstance(v, int) for v in numbers):
            out[name] = IntParam(type="int", low=low, high=high)
        else:
            out[name] = FloatParam(type="float", low=low, high=high, log=low > 0 and high / low >= 100)
    return out


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
    chart.table = [{"hyperparameter": k, "importance": v} for k, v in importances.items()]
    names = list(importances)[::-1]
    values = [importances[k] for k in names]
    fig = new_figure(6.5, 1.2 + 0.45 * len(names))
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
    common = [k for k in space if all(k in r.params for r in finished(records))]  # conditional ones: not all
    space = {k: space[k] for k in common or space}
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
    chart.table = [{"rank": rank, "trial": r.number, **{k: r.params[k] for k in names}, f"validation {metric}": r.value}
                   for rank, r in enumerate(done, start=1)]
    fig = new_figure(max(6.0, 1.6 * (len(names) + 1)), 4.2)
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
    fig = new_figure(3.6 * ncols + 0.8, 3.0 * nrows)
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


# ------------------------------------------------------------------------------------------------- study


def study_charts(records: Sequence[TrialRecord], space: Space, direction: str, metric: str,
                 study: Any = None) -> list[Chart]:
    """Every picture of a study, in report order (``study``: the in-memory Optuna study, built if None)."""
    study = study if study is not None else optuna_study(records, space, direction)
    space = plot_space(records, space)
    return [
        optimization_history(records, direction, metric),
        importance_chart(study, metric),
        parallel_coordinates(records, space, direction, metric),
        slice_chart(records, space, direction, metric),
        best_curve_chart(records, direction, metric),
        top_curves_chart(records, direction, metric),
    ]
