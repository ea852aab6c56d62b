"""Random search's study store: the seeded candidates of :mod:`.candidates`, kept in the Optuna backend's store.

Candidate ``i`` depends on the seed, the space and ``i`` only (a finite grid: a seeded permutation of its
points; any other space: one seeded draw per candidate from the same scipy distributions
``RandomizedSearchCV`` takes). The runner scores each with the same folds as ``RandomizedSearchCV``
(``check_cv``) and early stopping on the validation set, one trial at a time so that every trial appears in
MLflow while the search runs.

The candidates are queued in an Optuna study (``study.enqueue_trial``, the index in the user attr
``candidate``) and run by the Optuna backend's scheduler without a pruner. So resume, the retry of a dead
worker's trial (heartbeats, ``kill -9``; its retry runs the same candidate), ``--storage``, ``--workers``
(and ``search.n_jobs``, RandomizedSearchCV's: that many worker processes) and the vote on who exports are
the Optuna backend's. A refill (a resumed or extended study, a larger ``n_trials``) queues the lowest
candidate indices no trial holds, so the candidates run are ``0 .. n - 1``, each once: none is skipped or
repeated, whichever worker queues them (two workers queueing the same one at once: the later trial trains
nothing). A candidate given up after its worker died ``MAX_RETRY`` times is not queued again.
"""

from __future__ import annotations

import optuna

from tuning.errors import StudyError
from tuning.search.store.budget import CANDIDATE, SURPLUS
from tuning.search.store.candidates import CandidateSampler, candidates, is_hypermodel_study
from tuning.search.store.optuna import OptunaStore
from tuning.search.store.storage import quiet_experimental

SEED = "seed"  # study attribute: the seed the candidates were drawn with


def is_retry(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial re-runs an interrupted one (queued by Optuna's retry callback)."""
    with quiet_experimental():
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is not None


def holds_candidate(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial has its candidate: queued, running or run (a surplus trial gave it up)."""
    return CANDIDATE in trial.user_attrs and SURPLUS not in trial.user_attrs


class RandomStore(OptunaStore):
    """The Optuna study of a random search: the seeded candidates, queued."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pool: list[dict] = []
        self._asked = 0  # the longest list of candidates asked for (a grid's may be shorter)

    def study_sampler(self, n_existing: int) -> optuna.samplers.BaseSampler:
        if is_hypermodel_study(self.config):  # the hypermodel draws as it builds: values from the candidate index
            return CandidateSampler(self.config.search.seed)
        return optuna.samplers.RandomSampler(seed=self.config.search.seed)  # asked for nothing: see is_surplus

    def study_pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()

    def open(self, direction: str, metric: str, fresh: bool = False) -> None:
        super().open(direction, metric, fresh)
        seed = self.get_attr(SEED)
        if seed is None:
            self.set_attr(SEED, self.config.search.seed)
        elif seed != self.config.search.seed:
            raise StudyError(f"study '{self.config.name}' in {self.location} was sampled with seed {seed}, "
                             f"not {self.config.search.seed}; pass --fresh or rename the study")
        if self.created:  # before any other worker can start a trial (they wait for the parent run)
            self.enqueue(self.n_trials)

    def enqueue(self, count: int) -> int:
        """Queue the ``count`` lowest candidate indices that no trial holds; how many there were (fewer at
        the end of a grid)."""
        held = {t.user_attrs[CANDIDATE] for t in self.trials() if holds_candidate(t)}
        free: list[int] = []
        index = 0
        while len(free) < count:
            if index not in held:
                free.append(index)
            index += 1
        pool = self.candidates(free[-1] + 1) if free else []
        queued = [i for i in free if i < len(pool)]
        for i in queued:
            self.study.enqueue_trial(pool[i], user_attrs={CANDIDATE: i})
        return len(queued)

    def candidates(self, count: int) -> list[dict]:
        """The first ``count`` candidates (kept: a refill asks again)."""
        if len(self._pool) < count and self._asked < count:
            self._pool, self._asked = candidates(self.config, count), count
        return self._pool[:count]

    def is_surplus(self, trial: optuna.Trial) -> bool:
        """Also a trial that is no queued candidate (the queue ran dry as it started) and one whose candidate
        an earlier trial holds (two workers queued it at once): neither trains anything. A retry holds the
        candidate of the trial it retries."""
        trials = self.trials()
        this = next(t for t in trials if t.number == trial.number)
        index = this.user_attrs.get(CANDIDATE)
        if index is None:
            return True
        if not is_retry(this) and any(t.number < this.number and t.user_attrs.get(CANDIDATE) == index
                                      and holds_candidate(t) for t in trials):
            return True
        return super().is_surplus(trial)
