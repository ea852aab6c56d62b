"""Which trial a study of several objectives exports (``export.choose``): a point of the Pareto front.

The front is computed from the stored trials (:func:`tuning.records.pareto_front`: the finished trials no
other dominates on every objective). The chosen point is the front's best ``choose.best`` (default: the first
objective, the study's metric) among its trials that meet every bound of ``choose.where``; ties go to the
better values of the objectives in their order, then to the earlier trial. When no trial of the front meets
the bounds, the front's best ``choose.best`` is exported, and a note says so. A study of one objective
exports its best trial, as always (:func:`tuning.records.best_record`).
"""

from __future__ import annotations

from typing import Any

from tuning.config.sections import meets
from tuning.records import TrialRecord, best_record, objective_values, pareto_front

__all__ = ["choose", "chosen_values"]


def chosen_values(record: TrialRecord, objectives: list[tuple[str, str]]) -> dict[str, float]:
    """``record``'s value of each objective by name, and its other measures (``latency_ms_b256``)."""
    values = dict(zip([name for name, _ in objectives], objective_values(record, objectives) or (), strict=False))
    return {**values, **{name: value for name, value in record.measures.items() if name not in values}}


def choose(records: list[TrialRecord], objectives: list[tuple[str, str]], config: Any = None,
           ) -> tuple[TrialRecord | None, dict | None]:
    """The trial to export among ``records`` and, with several ``objectives`` ((name, direction), the metric
    first), what was chosen: ``{"best", "where", "met", "directions", "front", "objectives"[, "note"]}`` (None for one
    objective); ``config``: the study's ``export.choose`` (None: the front's best first objective)."""
    if len(objectives) < 2:
        return best_record(records, objectives[0][1]), None
    front = pareto_front(records, objectives)
    if not front:
        return None, None
    names = [name for name, _ in objectives]
    best = (config.best if config is not None else None) or names[0]
    where = dict(config.where) if config is not None else {}
    signs = [1.0 if direction == "minimize" else -1.0 for _, direction in objectives]

    def key(record: TrialRecord) -> tuple:
        values = objective_values(record, objectives)
        ordered = [sign * value for sign, value in zip(signs, values, strict=True)]
        return (ordered[names.index(best)], *ordered, record.number)

    def fits(record: TrialRecord) -> bool:
        values = dict(zip(names, objective_values(record, objectives), strict=True))
        return all(meets(values[name], bound) for name, bound in where.items())

    meeting = [r for r in front if fits(r)]
    chosen = min(meeting or front, key=key)
    info: dict[str, Any] = {"best": best, "where": where, "met": bool(meeting), "directions": dict(objectives),
                            "front": [r.number for r in front], "objectives": chosen_values(chosen, objectives)}
    if where and not meeting:
        bounds = ", ".join(f"{name} {bound}" for name, bound in where.items())
        info["note"] = (f"no trial of the Pareto front meets {bounds}: trial {chosen.number}, the front's best "
                        f"{best}, is exported")
    return chosen, info

