"""The Optuna backend's trial scheduler: one trial at a time from the store's Optuna study (its sampler and
pruner: :mod:`tuning.search.store.sampling`), until the budget is full. The state, the budget, the recovery
of dead workers' trials and the export vote are the store's (:mod:`tuning.search.store.optuna`, whose
docstring tells how workers share a study)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna

from tuning.records import COMPLETE, PRUNED, PruneTrial, TrialRecord, encode_output
from tuning.search.schedulers.base import TrialScheduler
from tuning.search.space import draw
from tuning.search.store import objectives
from tuning.search.store.budget import SURPLUS, WORKER, Budget, SurplusTrial
from tuning.search.store.optuna import OptunaStore
from tuning.search.store.sampling import min_resource, pruning_steps
from tuning.search.store.storage import retry_history
from tuning.search.trial.resume import Attempt

if TYPE_CHECKING:
    from tuning.search.trial.runner import TrialRunner

POLL_S = 2.0  # how often an idle worker checks whether the last running trials finished


class TrialFailed(Exception):
    """A trial that could not train (its record holds the reason); Optuna marks it FAIL and goes on."""


class OptunaScheduler(TrialScheduler):
    """Asks the store's Optuna study for one trial at a time until the budget is full. With ``search.stack``
    > 1 the registry wraps it in :class:`tuning.search.schedulers.stacking.StackedScheduler`, which asks for K at a time,
    trained as one model, through :meth:`free_slots`, :meth:`claim`, :meth:`reporter` and :meth:`outcome` as
    :meth:`objective` uses them."""

    store: OptunaStore

    def __init__(self, store: OptunaStore) -> None:
        super().__init__(store)
        self._current: int | None = None  # number of the trial this process runs
        self.steps = pruning_steps(self.config)

    def run(self, runner: TrialRunner, n_trials: int, timeout: float | None) -> None:
        store = self.store
        store.n_trials = n_trials
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            free = self.free_slots(n_trials)
            if free is None:
                break
            if free == 0:
                time.sleep(POLL_S)  # other workers hold the last slots; one whose worker dies comes back
                continue
            self._run_one(runner)

    def free_slots(self, n_trials: int) -> int | None:
        """After recovering dead workers' trials: how many trials may start now (queued ones included;
        >= 1 when one may), 0 while other workers hold the last slots, None when the study is done (the
        budget is full, or nothing is left to propose and nothing runs that could come back)."""
        store = self.store
        store.recover()
        state = Budget.of(store.trials())
        if state.done >= n_trials:
            return None
        free = n_trials - state.done - state.running
        if state.waiting == 0 and (free <= 0 or not self.refill(free)):
            return None if state.running == 0 else 0
        return max(free, 1)

    def refill(self, free: int) -> bool:
        """Make ``free`` more trials possible when none is queued; False when there is nothing left to
        propose. Optuna's sampler proposes a new trial on every ask."""
        return True

    def _run_one(self, runner: TrialRunner) -> None:
        try:
            self.store.study.optimize(lambda trial: self.objective(runner, trial), n_trials=1,
                                      catch=(TrialFailed, SurplusTrial))
        except KeyboardInterrupt:
            if self._current is not None:
                self.store.retry_interrupted(self._current)
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # this process stalled (a sleeping laptop) and others gave its trial up and queued it again
        finally:
            self._current = None

    def objective(self, runner: TrialRunner, trial: optuna.Trial) -> float:
        self._current = trial.number
        if not self.claim(trial):
            raise SurplusTrial()
        record = runner.run(trial.number, draw(trial, self.config), report=self.reporter(trial),
                            attempt=self.attempt(trial))
        return self.outcome(trial, record)

    def attempt(self, trial: optuna.Trial) -> Attempt:
        """Which attempt of its trial ``trial`` is: a retry of a dead worker's (or a Ctrl-C'd) trial lists the
        attempts before it, whose checkpoint it goes on from (tuning.search.trial.resume)."""
        stored = self.store.trial(trial.number)
        return Attempt(trial.number, tuple(retry_history(stored)) if stored is not None else ())

    def claim(self, trial: optuna.Trial) -> bool:
        """Mark ``trial`` as this worker's; False (marked surplus: it trains nothing) when the trials
        before it already fill the budget."""
        if self.store.is_surplus(trial):
            trial.set_user_attr(SURPLUS, True)
            return False
        trial.set_user_attr(WORKER, self.store.worker.as_dict())
        return True

    def outcome(self, trial: optuna.Trial, record: TrialRecord) -> float:
        """Store what the finished trial of ``record`` made; its value, or TrialPruned / TrialFailed."""
        trial.set_user_attr("epochs_run", record.epochs_run)
        trial.set_user_attr("fold_scores", record.fold_scores)
        if record.state == COMPLETE and record.best_epoch:  # what an ensemble or a retrain needs elsewhere
            trial.set_user_attr("best_epoch", record.best_epoch)
            trial.set_user_attr("learning_rates", record.learning_rates)
            if record.valid_output is not None:
                trial.set_user_attr("valid_output", encode_output(record.valid_output))
        if record.reason:
            trial.set_user_attr("reason", record.reason)
        others = self.config.search.other_objectives()
        if others:  # several objectives: what the pruning rule reads, the other objectives' values
            # (imported here: the module loads Keras, which a command starts only once it has quieted it)
            from tuning.search.trial.epoch_scoring import valid_key

            trial.set_user_attr(objectives.EPOCH_VALUES, record.history.get(valid_key(record.metric), []))
            if record.state == PRUNED and record.value is not None:
                trial.set_user_attr(objectives.PRUNED_VALUE, record.value)  # Optuna keeps none for a pruned one
            if record.state == COMPLETE:
                trial.set_user_attr(objectives.MEASURES, record.measures)
        if record.state == PRUNED:
            raise optuna.TrialPruned(record.reason)
        if record.state != COMPLETE:
            raise TrialFailed(record.reason)
        if others:
            return [float(record.value), *(float(record.measures[name]) for name, _ in others)]
        return float(record.value)

    def reporter(self, trial: optuna.Trial) -> Callable[[int, float], None] | None:
        """The runner's per-epoch hook: report to the pruner at its epochs, prune when it says so (None when
        no pruner looks at any epoch)."""
        if self.steps == frozenset():
            return None
        if self.config.search.multi_objective:
            return self.rule_reporter()

        def report(epoch: int, value: float) -> None:
            if self.steps is not None and epoch + 1 not in self.steps:
                return
            trial.report(value, step=epoch + 1)
            if trial.should_prune():
                raise PruneTrial()

        return report

    def rule_reporter(self) -> Callable[[int, float], None]:
        """Several objectives: our median rule on the first (:class:`~tuning.search.store.objectives.MedianRule`:
        Optuna's pruners take one value), asked after every epoch from the warm-up on."""
        rule = objectives.MedianRule(self.store.study.directions[0].name.lower(), min_resource(self.config))
        values: list[float] = []

        def report(epoch: int, value: float) -> None:
            values.append(value)
            if epoch + 1 >= rule.warmup and rule.should_prune(epoch + 1, values, rule.completed(self.store.trials())):
                raise PruneTrial()

        return report


STORE, SCHEDULER = OptunaStore, OptunaScheduler
