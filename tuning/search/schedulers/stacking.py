"""Stacked trials (``search.stack: K``): the sampler proposes K trials at once and they train side by side
as ONE Keras model (:class:`estimators.stacked.model.StackedMLP`), each member reported and recorded exactly as if
it had trained alone.

What each member gets, as a lone trial gets it from its estimator's ``fit`` (:mod:`estimators.common.callbacks`):

* its own per-epoch ``loss`` (training, as Keras averages it) and ``val_loss`` (``val_accuracy`` for a
  classifier) in its record's curves, the tracking (MLflow) and the progress display;
* its ``valid_<metric>``, the study's metric on the validation rows from its outputs of the stack's one
  forward pass (:mod:`tuning.search.trial.epoch_scoring`), reported to its Optuna trial (``trial.report`` /
  ``should_prune``): a pruned member is frozen and recorded as pruned; one whose loss or outputs become
  NaN or infinite fails with the epoch;
* early stopping (``patience``, ``min_delta``, ``restore_best_weights``: the member keeps its best weights)
  and the ``plateau`` schedule (its learning rate halved after ``patience // 2`` flat epochs) as Keras'
  ``EarlyStopping`` and ``ReduceLROnPlateau`` decide them, in the same order;
* at its end, an ordinary fitted estimator of our wrapper (``adopt``: same parameters, its ``model_`` the
  member's network, the encoders and fitted attributes of ``fit``), scored and recorded by the
  :class:`~tuning.search.trial.runner.TrialRunner` (open_trial / epoch_hook / score_fitted / close_trial): the keeper,
  ensembles, export and ``load_model`` see what an unstacked study makes.

A stack shares the depth, the batch size, the activation and the periodic embedding's shape (:data:`SHARED`;
each member has its own ``frequency_scale``): the asked trials are grouped
by them and by their widths rounded up to the next of 8, 12, 16, 24, 32, 48, ... (:func:`padded_width`),
oldest first, and padded to that width (measured faster than padding all members of a depth to the widest:
``StackedTrials.by_width``). A member
that ends (complete, early-stopped, pruned, failed) is frozen and its slot **refilled** with the next
trial: a pending one of the same group, else newly asked ones until one fits (same shared settings, no
wider than the stack) or K trials wait; those that do not fit wait for the next stack, and a slot that finds
none stays idle. A new stack likewise asks ahead (up to 2K waiting) to fill all K slots with one group, so
that the grouping by depth does not leave stacks half empty, and it reuses the last model built for its
group when that one fits (its tracing and XLA compilation cost as much as 15-20 epochs of a small stack).

Resume and workers are the Optuna backend's: every member is a RUNNING Optuna trial of this worker with a
heartbeat; a stack interrupted by Ctrl-C / SIGTERM marks each of its trials as an interrupted lone trial
is (KILLED run, FAIL without reason, parameters queued again), one killed with ``kill -9`` is recovered
by the next run like any dead worker's trials.

Differences from a lone trial: the members see the same batches in the same order, a diverging member
stops at the end of its epoch (not at its first NaN batch), and a classifier's curves have no training
``accuracy`` (``val_accuracy`` is there). Which settings cannot be stacked is refused when the study is
loaded (:func:`tuning.config.rules.stack_errors`).
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import optuna
from optuna.trial import TrialState

from estimators.common.data_pipeline import array_dataset
from estimators.mlp.estimators import decoded_predictions, decoded_probabilities
from estimators.stacked.model import build_stacked_model
from tuning.compat.optuna import TrialHeartbeat
from tuning.records import PruneTrial, TrialRecord
from tuning.search.schedulers.base import TrialScheduler
from tuning.search.schedulers.optuna import POLL_S, TrialFailed
from tuning.search.schedulers.stack_member import SHARED, Member, padded_width
from tuning.search.space import draw
from tuning.search.trial.epoch_scoring import check_training_loss, outputs_value, valid_key

if TYPE_CHECKING:
    from tuning.search.schedulers.optuna import OptunaScheduler
    from tuning.search.trial.runner import TrialRunner

__all__ = ["SHARED", "Member", "StackedScheduler", "StackedTrials", "padded_width"]

class StackedTrials:
    """The scheduler's loop for ``search.stack`` > 1 (see the module docstring).

    Two choices of the loop, measured against their alternatives by ``benchmarks/stacked.py`` (``--variants``),
    which flips them on the class: ``refill_slots`` (a freed slot takes the next trial that fits; off: it stays
    idle until the stack's last member ends) and ``by_width`` (off: members of one depth pad to the widest of
    the stack; on: a stack takes only trials whose widths round to the same :func:`padded_width`).
    """

    refill_slots: bool = True
    by_width: bool = True

    def __init__(self, scheduler: OptunaScheduler, runner: TrialRunner) -> None:
        self.scheduler = scheduler
        self.store = scheduler.store
        self.runner = runner
        self.config = scheduler.config  # the study's: its stack size, seed and space
        self.size = int(self.config.search.stack)
        self.pending: list[Member] = []  # asked and claimed, not in a stack yet
        self.slots: list[Member | None] = []  # the stack being trained: its member per slot
        self.deadline: float | None = None
        self.model = None  # the StackedMLP being trained
        self.spares: dict[tuple, Any] = {}  # group key -> the last model built for it: reused when it fits
        self.group_key: tuple = ()
        d = runner.data
        template = runner.make_estimator({})
        if runner.task != "regression":
            template.classes_ = None  # as KerasClassifier.fit starts
        encoder = template.target_encoder.fit(d.y_train)  # the encoder `fit` uses: standardised y, class indices
        self.y_train = np.asarray(encoder.transform(d.y_train))
        self.y_valid = np.asarray(encoder.transform(d.y_valid))
        self.n_classes = getattr(encoder, "n_classes_", None)
        if runner.task == "regression":
            self.task = "regression"
        else:
            self.task = "multiclass" if (self.n_classes or 2) > 2 else "binary"
        space, fixed = self.config.space, self.config.model.fixed_params()
        self.with_dropout = "dropout" in space or float(fixed.get("dropout") or 0.0) > 0
        self.encoder = encoder
        self.valid_key = valid_key(runner.metric)

    def metric_value(self, epoch: int, outputs: np.ndarray) -> float:
        """The study's metric of one member's ``outputs`` on the validation rows (as a lone trial's
        :class:`~tuning.search.trial.epoch_scoring.EpochScorer` scores them, decoded as its estimator decodes)."""
        encoder, n_classes = self.encoder, self.n_classes
        return outputs_value(self.runner.metric, epoch, outputs, self.runner.data.y_valid,
                             lambda out: decoded_predictions(encoder, out),
                             lambda out: decoded_probabilities(encoder, out, int(n_classes or 1)),
                             getattr(encoder, "classes_", None))

    # ---- the loop -------------------------------------------------------------------------------
    def run(self, n_trials: int, timeout: float | None) -> None:
        self.store.n_trials = n_trials
        self.n_trials = n_trials
        self.deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self.pending or not self.timed_out():
                if not self.pending:
                    free = self.scheduler.free_slots(n_trials)
                    if free is None:
                        break
                    if free == 0:
                        time.sleep(POLL_S)  # other workers hold the last slots
                        continue
                    self.ask(min(self.size, free))
                    if not self.pending:
                        continue
                first = self._group(self.pending[0])  # oldest first: no trial waits for ever
                while (sum(self._group(m) == first for m in self.pending) < self.size
                       and self._may_ask(waiting=2 * self.size)):
                    self.ask(1)  # ask ahead for a full stack; the others wait for their own group's
                group = [m for m in self.pending if self._group(m) == first][: self.size]
                self.pending = [m for m in self.pending if m not in group]
                self.train(group)
        except BaseException:  # Ctrl-C, or the storage failing: no trial left running with a live heartbeat
            self.abandon()
            raise

    def _group(self, member: Member) -> tuple:
        """What members of one stack share: :data:`SHARED`, and with :attr:`by_width` the padded widths."""
        if not self.by_width:
            return member.key
        return member.key, tuple(padded_width(w) for w in member.widths)

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _may_ask(self, waiting: int) -> bool:
        """Whether to ask one more trial now: fewer than ``waiting`` trials wait for a stack, the budget
        has room and time is left."""
        if len(self.pending) >= waiting or self.timed_out():
            return False
        return bool(self.scheduler.free_slots(self.n_trials))

    def ask(self, count: int) -> None:
        """Ask the study for ``count`` trials (queued ones first); the claimed ones join ``pending``."""
        study = self.store.study
        for _ in range(count):
            with warnings.catch_warnings():  # heartbeats are "meant for optimize()": started here by hand
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask()
            if not self.scheduler.claim(trial):  # surplus: trains nothing, never counted
                self._tell(trial, state=TrialState.FAIL)
                continue
            heartbeat = TrialHeartbeat(study, trial)  # a claimed trial's, till it ends
            heartbeat.start()
            member = None
            try:
                params = draw(trial, self.config)
                member = Member(trial, params, self.runner.make_estimator(params), heartbeat)
                self.pending.append(member)
            finally:
                if member is None:  # not handed over to a member (whose trial's end stops it)
                    heartbeat.stop()

    # ---- one stack --------------------------------------------------------------------------------
    def train(self, group: list[Member]) -> None:
        """Train ``group`` as one stack until every member has ended (refilling freed slots)."""
        runner, d = self.runner, self.runner.data
        head = group[0]
        self.group_key = self._group(head)
        self.slots = list(group)
        for member in group:
            self._open(member)
        depth = int(head.setting("n_hidden"))
        widths = [padded_width(max(m.widths[layer] for m in group)) for layer in range(depth)]
        seed = int(self.config.search.seed) + head.trial.number
        try:
            self.model = self._reuse((head.key, tuple(widths)), group)
            if self.model is None:
                self.model = build_stacked_model(
                    [m.config for m in group], d.X_train.shape[1], self.task, self.n_classes,
                    n_hidden=depth, activation=head.setting("activation"), max_widths=widths or None,
                    with_dropout=self.with_dropout, embedding=head.embedding, seed=seed,
                    steps_per_execution=int(head.setting("steps_per_execution")))
                self.spares[head.key, tuple(widths)] = self.model
            self.slots += [None] * (self.model.n_members - len(group))
            data = array_dataset((d.X_train, self.y_train), int(head.setting("batch_size")), shuffle=True, seed=seed)
            self.model.fit(data, epochs=10**9, verbose=0, shuffle=False, callbacks=[_Driver(self)])
        except Exception as exc:  # a stack that cannot be built or trained: its trials failed, with the reason
            self.spares.pop((head.key, tuple(widths)), None)
            for slot, member in enumerate(self.slots):
                if member is not None:
                    self._finish(slot, error=exc)
        finally:
            self.model = None
            runner.release_memory()

    def _reuse(self, key: tuple, group: list[Member]):
        """The last model built for ``key`` (the group's shared settings and padded widths), its slots given
        to ``group`` (fresh weights and optimizer state, the slots left over frozen), when it has as many
        slots as the group has members or at most twice as many: its tracing and XLA compilation cost
        seconds, as much as 15-20 epochs of a small stack. None when a new model is needed."""
        model = self.spares.get(key)
        if model is None or not len(group) <= model.n_members <= 2 * len(group):
            return None
        for slot in range(model.n_members):
            if slot < len(group):
                model.reinitialize_member(slot, group[slot].config)
            else:
                model.freeze(slot)
        return model

    def after_epoch(self, model) -> bool:
        """Each active member's epoch (logs, early stopping, plateau, report, end), then refills; whether
        the stack has members left to train."""
        losses = model.epoch_losses
        wanted = ("loss",) if self.task == "regression" else ("loss", "accuracy")
        outputs = model.predict_members(self.runner.data.X_valid)  # (rows, K, units): one forward pass
        scores = model.scores_of(outputs, self.y_valid, wanted)
        for slot, member in enumerate(self.slots):
            if member is None:
                continue
            logs = {"loss": float(losses[slot]), "val_loss": float(scores["loss"][slot])}
            if "accuracy" in scores:
                logs["val_accuracy"] = float(scores["accuracy"][slot])
            error, diverged, end = None, False, False
            try:
                check_training_loss(member.epoch, logs["loss"])
                logs[self.valid_key] = self.metric_value(member.epoch, outputs[:, slot, :])
            except FloatingPointError as exc:  # the epoch still counts (its curves); then the trial fails
                error, end = exc, True
                logs.pop(self.valid_key, None)
            try:
                if error is not None:
                    member.on_epoch(member.epoch, logs)
                    member.epoch += 1
                    raise error
                stop = member.early_stop(logs["val_loss"], lambda slot=slot: model.member_weights(slot))
                if str(member.setting("lr_schedule")).lower() == "plateau":
                    rate = float(np.float32(model.learning_rates[slot]))
                    logs["learning_rate"] = rate
                    new = member.plateau(logs["val_loss"], rate)
                    if new is not None:
                        model.set_learning_rate(slot, new)
                member.on_epoch(member.epoch, logs)
                member.epoch += 1
                diverged = not np.isfinite(logs["loss"])
                end = stop or diverged or member.epoch >= int(member.setting("epochs"))
            except (PruneTrial, Exception) as exc:  # KeyboardInterrupt goes up: abandon()
                error, end = exc, True
            if end:
                self._finish(slot, error, diverged)
        self.refill()
        return any(member is not None for member in self.slots)

    def refill(self) -> None:
        """Give each idle slot a trial of the stack's group that fits its widths: a pending one, else a new
        one asked (when the budget has room and nothing is pending); one that does not fit stays pending."""
        model = self.model
        for slot, member in enumerate(self.slots):
            if member is not None or self.timed_out() or not self.refill_slots:
                continue
            fits = [m for m in self.pending if self._fits(m)]
            while not fits and self._may_ask(waiting=self.size):
                self.ask(1)
                fits = [m for m in self.pending if self._fits(m)]
            if not fits:
                continue
            member = fits[0]
            self.pending.remove(member)
            model.reinitialize_member(slot, member.config)
            self._open(member)
            self.slots[slot] = member

    def _fits(self, member: Member) -> bool:
        model = self.model
        if self.by_width:
            return self._group(member) == self.group_key
        return (member.key == self.group_key and len(member.widths) == model.n_hidden
                and all(w <= p for w, p in zip(member.widths, model.padded_widths, strict=True)))

    # ---- one member -------------------------------------------------------------------------------
    def _open(self, member: Member, check: bool = True) -> None:
        member.record = self.runner.open_trial(member.trial.number, member.params, check=check)
        member.on_epoch = self.runner.epoch_hook(member.record, self.scheduler.reporter(member.trial),
                                                 member.reported)
        member.started = time.perf_counter()

    def _finish(self, slot: int, error: BaseException | None = None, diverged: bool = False) -> None:
        """End the member of ``slot``: freeze it, make its fitted estimator (best weights), score and record
        it through the runner, tell its Optuna trial."""
        model, member = self.model, self.slots[slot]
        if model is not None:
            model.freeze(slot)
        self.slots[slot] = None
        estimator = None
        if error is None:
            try:
                estimator = self._estimator(slot, member, diverged)
                self.runner.score_fitted(member.record, estimator)
            except Exception as exc:  # diverged, a non-finite score: a failed trial
                error, estimator = exc, None
        outcome = self.runner.close_trial(member.record, estimator, error, member.reported,
                                          time.perf_counter() - member.started)
        self._settle(member, outcome.record)

    def _estimator(self, slot: int, member: Member, diverged: bool):
        d, model = self.runner.data, self.model
        network = model.member_model(slot)
        if member.setting("restore_best_weights") and member.setting("early_stopping") and member.best_weights is not None:
            network.set_weights(member.best_weights)  # EarlyStopping.on_train_end
        history = member.record.history
        curve = np.asarray(history.get("val_loss", [np.nan]), dtype=float)
        if member.setting("early_stopping") and np.isfinite(member.best):
            best_epoch, best_score = member.best_epoch + 1, member.best
        elif np.isfinite(curve).any():
            best_epoch, best_score = int(np.nanargmin(curve)) + 1, float(np.nanmin(curve))
        else:
            best_epoch, best_score = 0, float("nan")
        return member.estimator.adopt(d.X_train, d.y_train, network, history, best_epoch=best_epoch,
                                      best_score=best_score, diverged=diverged)

    def _settle(self, member: Member, record: TrialRecord) -> None:
        """Tell Optuna how the member's trial ended, as the lone objective's return or exception does."""
        try:
            value = self.scheduler.outcome(member.trial, record)
        except optuna.TrialPruned:
            self._tell(member.trial, state=TrialState.PRUNED)
        except TrialFailed:
            self._tell(member.trial, state=TrialState.FAIL)
        else:
            self._tell(member.trial, value=value)
        finally:
            member.heartbeat.stop()

    def _tell(self, trial: optuna.Trial, value: float | None = None, state: TrialState | None = None) -> None:
        try:
            if state is None:
                self.store.study.tell(trial, value)
            else:
                self.store.study.tell(trial, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # this process stalled and others gave its trial up and queued it again
        except RuntimeError as exc:  # the grid sampler calls study.stop() once its grid is covered:
            if "Study.stop" not in str(exc):  # outside optimize() there is nothing to stop (told already)
                raise

    def abandon(self) -> None:
        """Ctrl-C / SIGTERM (or an error that stops the loop): every trial of the stack and every pending one
        ends as an interrupted lone trial does (KILLED run, FAIL without a reason: not counted, its parameters
        queued again), and its heartbeat stops."""
        members = [m for m in self.slots if m is not None] + self.pending
        self.slots, self.pending = [], []
        for member in members:
            try:
                if member.record is None:  # asked, not started: it still gets its (KILLED) run
                    self._open(member, check=False)
                self.runner.close_trial(member.record, None, KeyboardInterrupt(), member.reported,
                                        time.perf_counter() - member.started)
                self._tell(member.trial, state=TrialState.FAIL)
                self.store.retry_interrupted(member.trial.number)
            except Exception:  # the storage failing (what stopped the stack is raised by run): the next
                continue  # run recovers this trial as a dead worker's; the others are still let go
            finally:
                member.heartbeat.stop()


class StackedScheduler(TrialScheduler):
    """The scheduler of a study with ``search.stack`` > 1: the backend's own scheduler (``inner``: Optuna's or
    the random backend's) asks, claims and settles the trials; :class:`StackedTrials` trains them K at a time."""

    def __init__(self, inner: OptunaScheduler) -> None:
        super().__init__(inner.store)
        self.inner = inner

    def run(self, runner: TrialRunner, n_trials: int, timeout: float | None) -> None:
        StackedTrials(self.inner, runner).run(n_trials, timeout)


class _Driver(keras.callbacks.Callback):
    """Runs :meth:`StackedTrials.after_epoch` after every epoch of the stack; stops when no member is left."""

    def __init__(self, stack: StackedTrials) -> None:
        super().__init__()
        self.stack = stack

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.model.reset_epoch_losses()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.stack.after_epoch(self.model):
            self.model.stop_training = True
