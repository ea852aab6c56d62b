"""Pictures of a study, drawn from plain trial records: no training, no MLflow, no backend.

Each study picture comes as a :class:`~tuning.figures.chart.Chart` that holds its one drawing, a matplotlib
figure, *and the data it plots* (what tests and ``data.json`` read; as rows, the table the report prints
beside the picture), or a note saying why it was skipped. :func:`study_charts` puts every chart in report
order. The names of `tuning.figures` this module uses are importable from here too.

Who draws what:

* Optuna (``optuna.visualization.matplotlib``) draws the optimisation history, the parameter importances,
  the parallel coordinates and the slices, from an in-memory Optuna study rebuilt from the records
  (:func:`optuna_study`; both backends get the same pictures).
* Ours on Optuna's history: pruned and failed trials marked along the bottom (Optuna's shows complete
  trials only), and a log objective axis on it and on the slices when values span more than 10x.
* Ours, handed to Optuna: the importances (fANOVA, seeded) computed once, so the bars, the table and
  ``data.json`` show the same numbers.
* Ours alone: the learning curves (`tuning.figures.curves`): Optuna's intermediate-values plot shows the
  values a trial reported to the pruner, not training vs validation loss per epoch.
* Ours always: each chart's data, table and notes (e.g. too few trials), from the records.

Optuna draws through pyplot: its charts run with its ExperimentalWarning and log lines quiet, the style it
sets undone afterwards (``rc_context``), and each figure let go of by pyplot at once, so it is freed like
the figures of `tuning.figures`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np

from tuning.config.schema import CategoricalParam, FloatParam, IntParam
from tuning.figures.chart import (
    BEST_COLOR,
    TRAIN_COLOR,
    VALID_COLOR,
    Chart,
    finished,
    fmt,
    plain_log_labels,
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


# ---------------------------------------------------------------------------------- Optuna study + drawing


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


def _complete(study) -> list:
    """The study's complete trials (what Optuna's charts draw)."""
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


@contextmanager
def _optuna_drawing() -> Iterator[None]:
    """Around Optuna's matplotlib charts: ExperimentalWarning and log lines quiet, the rcParams they change
    restored, and every figure made inside let go of by pyplot on the way out (the Figure objects live on)."""
    import optuna
    from matplotlib import pyplot

    verbosity = optuna.logging.get_verbosity()
    before = set(pyplot.get_fignums())
    try:
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # matplotlib's on Optuna's degenerate cases (one trial: equal axis limits; nothing to label)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"optuna\.visualization")
            optuna.logging.set_verbosity(max(verbosity, optuna.logging.ERROR))
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        for number in set(pyplot.get_fignums()) - before:
            pyplot.close(number)


optuna_drawing = _optuna_drawing  # what the Pareto front's picture (tuning.report.pareto) draws in too


def _plain_logs(figure, minor_decades: float = 2) -> None:
    """Plain-number labels (0.01, 20, 50) on every log axis Optuna drew (its own overlap: 2x10^1 3x10^1 ...);
    ``minor_decades``: see :func:`~tuning.figures.chart.plain_log_labels` (narrow axes: fewer)."""
    for ax in figure.axes:
        for which in ("x", "y"):
            if getattr(ax, f"get_{which}scale")() == "log":
                plain_log_labels(ax, which, minor_decades)


def _label(metric: str) -> str:
    return f"validation {metric}"


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


def optimization_history(records: Sequence[TrialRecord], direction: str, metric: str, study: Any = None) -> Chart:
    """Optuna's history (objective of every finished trial, best so far), pruned and failed trials marked
    along the bottom (``study``: the in-memory Optuna study, built if None)."""
    series = history_series(records, direction)
    chart = Chart("optimization_history", "Optimization history",
                  "Validation objective of each finished trial and the best so far; pruned (grey) and "
                  "failed (red) trials are marked along the bottom.", data=series)
    if not records:
        chart.note = "no trial has run yet"
        return chart
    chart.table = [{"trial": n, _label(metric): v, "best so far": b}
                   for n, v, b in zip(series["trials"], series["values"], series["best_so_far"], strict=True)]
    from optuna.visualization.matplotlib import plot_optimization_history

    study = study if study is not None else optuna_study(records, {}, direction)
    with _optuna_drawing():
        ax = plot_optimization_history(study, target_name=_label(metric))
        for artist in [*ax.collections, *ax.lines]:  # name Optuna's points and line, as ours were
            artist.set_gid({_label(metric): "complete", "Best Value": "best_so_far"}.get(artist.get_label()))
        bottom = ax.get_xaxis_transform()  # x in trial numbers, y in axes fractions
        for key, marker, color in (("pruned", "v", "0.55"), ("failed", "x", "tab:red")):  # not C3: grey in ggplot
            if series[key]:
                ax.scatter(series[key], [0.03] * len(series[key]), transform=bottom, marker=marker, color=color,
                           gid=key, label=f"{key} ({len(series[key])})", clip_on=False)
        set_scale(ax, "y", value_scale(series["values"]))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(bbox_to_anchor=(1.05, 1.0), loc="upper left")  # Optuna's place, our markers included
        ax.figure.set_size_inches(8, 4.8)  # room for that legend
    chart.figure = ax.figure
    return chart


# ------------------------------------------------------------------------------------------- importances


def param_importances(study) -> dict[str, float]:
    """fANOVA importance of each hyperparameter (summing to 1), most important first."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    return {name: float(value) for name, value in importances.items()}


def _given(importances: dict[str, float]):
    """An Optuna importance evaluator that returns ``importances`` (computed once, drawn as they are)."""
    from optuna.importance import BaseImportanceEvaluator

    class Given(BaseImportanceEvaluator):
        def evaluate(self, study, params=None, *, target=None) -> dict[str, float]:
            return dict(importances)

    return Given()


def importance_chart(study, metric: str) -> Chart:
    """Optuna's bars of the fANOVA importances (needs at least two complete trials)."""
    n = len(_complete(study))
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
    from optuna.visualization.matplotlib import plot_param_importances

    with _optuna_drawing():
        ax = plot_param_importances(study, evaluator=_given(importances), target_name=_label(metric))
        ax.figure.set_size_inches(6.5, 1.6 + 0.45 * len(importances))
        ax.figure.set_layout_engine("constrained")
    chart.figure = ax.figure
    return chart


# ------------------------------------------------------------------------------ parallel coordinates, slices


def _drawn_params(study, space: Space) -> list[str]:
    """The space's names that some complete trial drew, in the space's order."""
    drawn = {k for t in _complete(study) for k in t.params}
    return [k for k in space if k in drawn]


def parallel_coordinates(records: Sequence[TrialRecord], study: Any, space: Space, metric: str) -> Chart:
    """Optuna's parallel coordinates: one line per complete trial across every hyperparameter's axis."""
    chart = Chart("parallel_coordinates", "Parallel coordinates",
                  "Each line is a complete trial through its hyperparameter values and its validation "
                  f"{metric} (the leftmost axis); darker is better.")
    numbers = {t.number for t in _complete(study)}
    done = [r for r in ranked(records, study.direction.name.lower()) if r.number in numbers]
    names = _drawn_params(study, space)
    if not done or not names:
        chart.note = "no complete trial yet"
        return chart
    chart.data = {"axes": names + [metric],
                  "lines": [{"trial": r.number, "params": {k: r.params[k] for k in names if k in r.params},
                             "value": r.value} for r in done]}
    chart.table = [{"rank": rank, "trial": r.number, **{k: r.params.get(k) for k in names}, _label(metric): r.value}
                   for rank, r in enumerate(done, start=1)]
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    with _optuna_drawing():
        ax = plot_parallel_coordinate(study, params=names, target_name=_label(metric))
        ax.figure.set_size_inches(max(6.4, 1.3 * (len(names) + 1)), 4.8)
        ax.figure.subplots_adjust(left=0.1, bottom=0.2, top=0.9)  # its slanted names in (no layout pass)
        _plain_logs(ax.figure)
    chart.figure = ax.figure
    return chart


def slice_series(records: Sequence[TrialRecord], space: Space) -> dict[str, dict[str, list]]:
    """Per hyperparameter: the values tried by complete trials, their objective and trial numbers."""
    done = finished(records)
    return {name: {"x": [r.params[name] for r in done if name in r.params],
                   "y": [r.value for r in done if name in r.params],
                   "trials": [r.number for r in done if name in r.params]} for name in space}


def slice_chart(records: Sequence[TrialRecord], study: Any, space: Space, metric: str) -> Chart:
    """Optuna's slices: the objective against each hyperparameter on its own, coloured by trial number."""
    series = slice_series(records, space)
    chart = Chart("slices", "Slice plots",
                  f"Validation {metric} of each complete trial against one hyperparameter at a time; colour is "
                  "the trial number (later is darker), so a search that narrows in shows dark points "
                  "clustering.", data=series)
    names = _drawn_params(study, space)
    if not finished(records) or not names:
        chart.note = "no complete trial yet"
        return chart
    from optuna.visualization.matplotlib import plot_slice

    with _optuna_drawing():
        axes = np.ravel(plot_slice(study, params=names, target_name=_label(metric)))
        set_scale(axes[0], "y", value_scale([r.value for r in finished(records)]))  # the y axis is shared
        _plain_logs(axes[0].figure, minor_decades=1)  # narrow panels side by side
    chart.figure = axes[0].figure
    return chart


# ------------------------------------------------------------------------------------------------- study


def study_charts(records: Sequence[TrialRecord], space: Space, direction: str, metric: str,
                 study: Any = None) -> list[Chart]:
    """Every picture of a study, in report order (``study``: the in-memory Optuna study, built if None)."""
    study = study if study is not None else optuna_study(records, space, direction)
    space = plot_space(records, space)
    return [
        optimization_history(records, direction, metric, study),
        importance_chart(study, metric),
        parallel_coordinates(records, study, space, metric),
        slice_chart(records, study, space, metric),
        best_curve_chart(records, direction, metric),
        top_curves_chart(records, direction, metric),
    ]
