"""The trial budget of an Optuna study: which stored trials count toward ``n_trials``, which hold a slot,
and a stored trial as a :class:`TrialRecord`."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from tuning.records import COMPLETE, FAILED, KILLED, PRUNED, RUNNING, TrialRecord, decode_output
from tuning.search.store.objectives import MEASURES, PRUNED_VALUE

WORKER = "worker"  # user attr: the WorkerId of the process running the trial
SURPLUS = "surplus"  # user attr: the trial started after the budget was full; it trained nothing
CANDIDATE = "candidate"  # user attr: the index of the seeded candidate a random-backend trial runs


_STATES = {
    TrialState.COMPLETE: COMPLETE,
    TrialState.PRUNED: PRUNED,
    TrialState.FAIL: FAILED,
    TrialState.RUNNING: RUNNING,
}


def to_record(trial: optuna.trial.FrozenTrial, metric: str) -> TrialRecord:
    """A stored Optuna trial as a TrialRecord (no curves: those live in MLflow)."""
    attrs = trial.user_attrs
    duration = trial.duration.total_seconds() if trial.duration else 0.0
    state = _STATES.get(trial.state, FAILED)
    reason = attrs.get("reason")
    if trial.state == TrialState.FAIL and reason is None:
        state, reason = KILLED, "interrupted: its worker stopped (parameters queued again)"
    values = trial.values  # several for a study of several objectives: the metric's first
    return TrialRecord(
        number=trial.number,
        params=dict(trial.params),
        state=state,
        value=values[0] if values else attrs.get(PRUNED_VALUE),
        metric=metric,
        fold_scores=list(attrs.get("fold_scores", [])),
        epochs_run=int(attrs.get("epochs_run", 0)),
        duration_s=duration,
        reason=reason,
        started_at=trial.datetime_start.timestamp() if trial.datetime_start else 0.0,
        best_epoch=int(attrs.get("best_epoch", 0)),
        learning_rates=list(attrs.get("learning_rates", [])),
        valid_output=decode_output(attrs.get("valid_output")),
        measures=dict(attrs.get(MEASURES, {})),
    )


def counts_toward_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Complete, pruned and failed-with-a-reason trials use up ``n_trials``; interrupted ones do not."""
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    return trial.state in finished or (trial.state == TrialState.FAIL and "reason" in trial.user_attrs)


def holds_slot(trial: optuna.trial.FrozenTrial) -> bool:
    """Counted, or running/queued and not surplus: the trial has (or will have) a place in the budget."""
    active = trial.state in (TrialState.RUNNING, TrialState.WAITING) and SURPLUS not in trial.user_attrs
    return active or counts_toward_budget(trial)


@dataclass
class Budget:
    """Where a study stands: counted trials, trials running (somewhere) and trials queued."""

    done: int
    running: int
    waiting: int

    @classmethod
    def of(cls, trials: list[optuna.trial.FrozenTrial]) -> Budget:
        return cls(
            done=sum(counts_toward_budget(t) for t in trials),
            running=sum(t.state == TrialState.RUNNING and SURPLUS not in t.user_attrs for t in trials),
            waiting=sum(t.state == TrialState.WAITING for t in trials),
        )


class SurplusTrial(Exception):
    """A trial started after the budget was full; it is marked, trains nothing and is never counted."""
