"""The Pareto front of a study of several objectives (``search.objectives``), drawn from plain trial records.

Optuna draws it (``optuna.visualization.matplotlib.plot_pareto_front``) from an in-memory multi-objective
study rebuilt from the finished trials: every trial a point of its first two objectives (the study's metric
and the next), the front's trials (non-dominated on *all* objectives) in red; ours: the exported trial
circled, the bounds of ``export.choose.where`` on those two dashed, and the chart's data and table (each finished trial's objectives, whether it is on the front).
"""

from __future__ import annotations

from collections.abc import Sequence

from tuning.config.sections import parse_bound
from tuning.figures.chart import Chart
from tuning.records import TrialRecord, objective_values, pareto_front

__all__ = ["pareto_chart"]


def _study(records: Sequence[TrialRecord], objectives: list[tuple[str, str]]):
    """An in-memory Optuna study of the finished trials' objective values (no parameters: not drawn)."""
    import optuna

    study = optuna.create_study(directions=[d for _, d in objectives], sampler=optuna.samplers.RandomSampler(seed=0))
    for record in records:
        values = objective_values(record, objectives)
        if values is not None:
            study.add_trial(optuna.trial.create_trial(values=list(values), user_attrs={"number": record.number}))
    return study


def pareto_chart(records: Sequence[TrialRecord], objectives: list[tuple[str, str]], chosen: int | None,
                 where: dict[str, str] | None = None) -> Chart:
    """Optuna's Pareto-front picture of the first two objectives, the exported trial (``chosen``) circled and
    the bounds ``export.choose.where`` sets on them dashed."""
    names = [name for name, _ in objectives]
    more = f" (the front is computed on all {len(names)} objectives)" if len(names) > 2 else ""
    chart = Chart("pareto_front", "Pareto front",
                  f"Each finished trial by validation {names[0]} and {names[1]}{more}; the Pareto front (no other "
                  "trial is at least as good in every objective and better in one) in red, the exported trial "
                  "circled, the bounds it was chosen under dashed.")
    front = {r.number for r in pareto_front(list(records), objectives)}
    done = [(r, v) for r in records if (v := objective_values(r, objectives)) is not None]
    chart.data = {"objectives": [list(o) for o in objectives], "front": sorted(front), "chosen": chosen,
                  "where": dict(where or {}),
                  "trials": [{"trial": r.number, "values": list(v)} for r, v in done]}
    if not done:
        chart.note = "no trial has all its objectives measured yet"
        return chart
    chart.table = [{"trial": r.number, **dict(zip(names, v, strict=True)), "front": "yes" if r.number in front else "",
                    "exported": "yes" if r.number == chosen else ""} for r, v in done]
    from optuna.visualization.matplotlib import plot_pareto_front

    from tuning.report.plots import optuna_drawing

    study = _study(records, objectives)
    with optuna_drawing():
        ax = plot_pareto_front(study, targets=lambda t: (t.values[0], t.values[1]),
                               target_names=[f"validation {names[0]}", names[1]])
        point = next((v for r, v in done if r.number == chosen), None)
        if point is not None:
            ax.scatter([point[0]], [point[1]], s=220, facecolors="none", edgecolors="black", linewidths=1.5,
                       gid="chosen", label=f"exported (trial {chosen})", zorder=5)
        for axis, name in zip("xy", names[:2], strict=True):
            if name in (where or {}):
                line = ax.axvline if axis == "x" else ax.axhline
                line(parse_bound(where[name])[1], color="0.3", linestyle="--", linewidth=1, gid=f"bound_{name}",
                     label=f"{name} {where[name]}")
        ax.legend(loc="best")
        ax.figure.set_size_inches(7, 4.8)
    chart.figure = ax.figure
    return chart
