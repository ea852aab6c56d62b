"""Random search exactly as scikit-learn's RandomizedSearchCV samples it, kept in the Optuna backend's store.

``RandomizedSearchCV._run_search`` is ``evaluate_candidates(ParameterSampler(...))``; we draw the same
candidates from the same ``ParameterSampler`` with the same seed, and the runner scores each with the
same folds (``check_cv``) and early stopping on the validation set, one trial at a time so that every
trial appears in MLflow while the search runs.

The candidates are queued in an Optuna study (``study.enqueue_trial``, candidate ``i`` as trial ``i``,
its index in the user attr ``candidate``) and run by the Optuna backend's scheduler without a pruner.
So resume, the retry of a dead worker's trial (heartbeats, ``kill -9``), ``--storage``, ``--workers``
(and ``search.n_jobs``, RandomizedSearchCV's: that many worker processes) and the vote on who exports
are the Optuna backend's. A resumed study runs the candidates not run yet; a larger ``n_trials`` queues
the next ones of the same seeded sequence.
"""

from __future__ import annotations

import zlib

import optuna
from sklearn.model_selection import ParameterSampler

from tuning.errors import StudyError
from tuning.search.backends.optuna import OptunaScheduler, OptunaStore
from tuning.search.backends.optuna_budget import CANDIDATE
from tuning.search.backends.optuna_storage import quiet_experimental
from tuning.search.space import active, flat_space, to_distributions, to_python

SEED = "seed"  # study attribute: the seed the candidates were drawn with


def candidates(config, n_trials: int) -> list[dict]:
    """The seeded candidate list (identical to RandomizedSearchCV's for the same seed).

    A conditional space (``per`` / ``when``) is drawn the same way over every name a trial may hold
    (``n_neurons_1`` .. ``n_neurons_<high>``: :func:`~tuning.search.space.flat_space`), and each candidate
    keeps its active values only; a KerasTuner hypermodel's candidates are empty (its trials draw with
    :class:`CandidateSampler`)."""
    if is_hypermodel_study(config):
        return [{} for _ in range(n_trials)]
    sampler = ParameterSampler(to_distributions(flat_space(config.space)), n_iter=n_trials,
                               random_state=config.search.seed)
    return [to_python(active(config.space, p)) for p in sampler]


def is_hypermodel_study(config) -> bool:
    factory = config.model.factory
    return factory is not None and factory.takes_hp


class CandidateSampler(optuna.samplers.BaseSampler):
    """Random values that depend only on the seed, the trial's candidate index and the parameter's name, so
    a define-by-run space (a KerasTuner hypermodel's) draws candidate i the same whichever worker runs it, in
    any order, on resume and on retry."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        index = trial.user_attrs.get(CANDIDATE, trial.number)
        key = zlib.crc32(f"{self.seed}:{index}:{param_name}".encode())
        return optuna.samplers.RandomSampler(seed=key).sample_independent(study, trial, param_name,
                                                                           param_distribution)


def is_retry(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial re-runs an interrupted one (queued by Optuna's retry callback)."""
    with quiet_experimental():
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is not None


class RandomStore(OptunaStore):
    """The Optuna study of a random search: the seeded candidates, queued."""

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
        """Queue the next ``count`` candidates of the seeded sequence; how many there were."""
        start = 1 + max((t.user_attrs.get(CANDIDATE, -1) for t in self.trials()), default=-1)
        pool = candidates(self.config, start + count)[start:]
        for offset, params in enumerate(pool):
            self.study.enqueue_trial(params, user_attrs={CANDIDATE: start + offset})
        return len(pool)

    def is_surplus(self, trial: optuna.Trial) -> bool:
        """Also a trial that is no queued candidate (the queue ran dry as it started) and one whose candidate
        an earlier trial already has (two workers queued it at once): neither trains anything."""
        trials = self.trials()
        this = next(t for t in trials if t.number == trial.number)
        index = this.user_attrs.get(CANDIDATE)
        if index is None:
            return True
        if not is_retry(this) and any(t.number < this.number and t.user_attrs.get(CANDIDATE) == index for t in trials):
            return True
        return super().is_surplus(trial)


class RandomScheduler(OptunaScheduler):
    """Runs the queued candidates in order, without pruning, until ``n_trials`` are counted."""

    store: RandomStore

    def __init__(self, store: RandomStore) -> None:
        super().__init__(store)
        self.steps = frozenset()  # no pruner: RandomizedSearchCV trains every candidate fully

    def refill(self, free: int) -> bool:
        """Queue the next candidates (a larger ``n_trials``, or a candidate whose retries ran out)."""
        return self.store.enqueue(free) > 0


STORE, SCHEDULER = RandomStore, RandomScheduler
