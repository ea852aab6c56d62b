"""Optuna internals: the heartbeat of a trial asked outside ``Study.optimize``, and the storage's engine.

Optuna records a trial's heartbeat only while ``Study.optimize`` runs its objective; ``Study.ask`` warns that
heartbeats are "supposed to be used with Study.optimize" and starts none. A stack of trials
(:mod:`tuning.search.schedulers.stacking`) asks K trials at once and trains them outside ``optimize``, and without
heartbeats a live stack's trials would look dead to the other workers (``fail_stale_trials``) after the grace
period. No public API starts one, so :class:`TrialHeartbeat` runs Optuna's own heartbeat thread.
"""

from __future__ import annotations

import optuna


class TrialHeartbeat:
    """The heartbeat of ``trial`` (asked from ``study`` with ``study.ask()``) while it runs: ``start()``, then
    ``stop()`` when the trial has ended. Nothing when the storage records no heartbeats."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        # Why internal: Optuna's heartbeat thread (optuna.storages._heartbeat) takes the trial's storage id
        # (Trial._trial_id, not its number) and the study's storage (Study._storage); optimize() starts it
        # the same way, and no public function does.
        from optuna.storages._heartbeat import get_heartbeat_thread

        self._thread = get_heartbeat_thread(trial._trial_id, study._storage)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop recording (waits for the thread); the trial then goes stale unless it has ended."""
        self._thread.join()


def storage_engine(storage: optuna.storages.RDBStorage):
    """The SQLAlchemy engine of an RDB storage: its connections are tuned (SQLite's ``synchronous``) and
    closed through it."""
    # Why internal: RDBStorage keeps its engine as the attribute ``engine``, which its docstring says users
    # should not access, and it has no close() or connection settings of its own.
    return storage.engine
