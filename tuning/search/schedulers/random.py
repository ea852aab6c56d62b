"""The random backend's trial scheduler: the candidates its store queued (:mod:`tuning.search.store.random`),
in order and without pruning, run by the Optuna backend's scheduler."""

from __future__ import annotations

from tuning.search.schedulers.optuna import OptunaScheduler
from tuning.search.store.random import RandomStore


class RandomScheduler(OptunaScheduler):
    """Runs the queued candidates in order, without pruning, until ``n_trials`` are counted."""

    store: RandomStore

    def __init__(self, store: RandomStore) -> None:
        super().__init__(store)
        self.steps = frozenset()  # no pruner: RandomizedSearchCV trains every candidate fully

    def refill(self, free: int) -> bool:
        """Queue the next candidates (a larger ``n_trials``, or a candidate a surplus trial gave back)."""
        return self.store.enqueue(free) > 0


STORE, SCHEDULER = RandomStore, RandomScheduler
