"""Harness cost: N trials through our study runner vs the same trials as bare estimator fits.

The study runs as ``run_study`` runs it, with everything a user gets: Optuna sampling, pruning reports
and SQLite storage, one MLflow child run per trial (params, per-epoch curves, summary), the progress
display's bookkeeping, Keras callbacks, and clearing Keras state after each trial. An observer replays
every trial right after it ends as a bare ``KerasMLPRegressor.fit`` (same parameters, same data, the
same number of epochs the trial ran, no callbacks of ours and no early stopping), so the two are timed
side by side under the same machine load. Replay time is subtracted from the study's time. The replay
runs before the study's own observers hear that the trial ended, so the tracker's end-of-trial work,
including what it leaves to its background thread (the learning-curve picture), overlaps our next trial
as it does in a real study, and never a replay.

    harness ratio = (search-loop wall time, first trial start -> last trial end, minus replays)
                    / (sum of the bare fit times)

Target: <= 1.05. The study's fixed costs (MLflow set-up, export, model logging) are printed apart.

    SCIKIT_LEARN_DATA=... python benchmarks/overhead.py --trials 20
    python benchmarks/overhead.py --smoke      # diabetes data, 2 trials of 2 epochs

``--json FILE`` writes the measurement (trials, epochs, loop_s, bare_s, ratio, fixed_s, total_s).

``--checkpoint`` measures instead what a trial's checkpoints cost (``search.checkpoint``,
``estimators/common/checkpoint.py``): the study's first ``--fits`` candidate networks, each fitted twice for
``--epochs`` epochs without early stopping, once with a checkpoint after every epoch and once without (in
alternating order, under the same load). The checkpoint's own clock times each write (the variables read
out of the model and optimizer, the file written beside its name and renamed):

    cost per epoch at every N epochs = (write time per checkpoint / N) / fit time per epoch

printed for every epoch and for the default interval (10 epochs or 60 s, whichever comes first), with
the wall time of the two sets of fits (a write is milliseconds: on a loaded machine their difference is
noise). Target: <= 1% at the default.

    SCIKIT_LEARN_DATA=... python benchmarks/overhead.py --checkpoint --fits 4 --epochs 20
    python benchmarks/overhead.py --checkpoint --smoke      # diabetes data, 2 fits of 3 epochs

``--json FILE`` then writes fits, epochs, off_s, on_s, writes, write_s, bytes, epoch_ms, write_ms,
every_epoch, default_every, default_cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import DEFAULT_STUDY, sqlite_uri, study_config, study_process

TARGET = 1.05
CHECKPOINT_TARGET = 0.01  # of fit time per epoch, at the default interval


class Replayer:
    """Times the search loop and replays each trial, right after it ends, as a bare fit."""

    portable = False

    def __init__(self) -> None:
        self.runner = None
        self.first_start: float | None = None
        self.last_end = 0.0
        self.replays: list[float] = []  # wall time of each replay (estimator set-up + fit)
        self.bare: list[tuple[int, int, float]] = []  # (trial, epochs, fit seconds)

    def attach(self, runner) -> None:
        """Put the replaying hook first among the runner's observers; this object stays last."""
        self.runner = runner
        runner.observers.insert(0, _ReplayHook(self))

    def on_trial_start(self, number: int, params: dict) -> None:
        pass

    def on_trial_end(self, record) -> None:
        self.last_end = time.perf_counter()  # every other observer is done with the trial

    def replay(self, record) -> None:
        t0 = time.perf_counter()
        if record.epochs_run > 0:
            d = self.runner.data
            params = {**self.runner.base_params(), **record.params, "epochs": record.epochs_run,
                      "early_stopping": False}
            estimator = self.runner.make_estimator(params)
            fit_start = time.perf_counter()
            estimator.fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid))
            self.bare.append((record.number, record.epochs_run, time.perf_counter() - fit_start))
        self.replays.append(time.perf_counter() - t0)

    @property
    def loop_s(self) -> float:
        """First trial start -> last trial end, minus the replays inside that span."""
        if self.first_start is None:
            return 0.0
        return self.last_end - self.first_start - sum(self.replays)

    @property
    def bare_s(self) -> float:
        return sum(seconds for _, _, seconds in self.bare)


class _ReplayHook:
    """The first observer of the runner: starts the clock and replays a trial before the others hear of its end."""

    portable = False

    def __init__(self, replayer: Replayer) -> None:
        self.replayer = replayer

    def on_trial_start(self, number: int, params: dict) -> None:
        if self.replayer.first_start is None:
            self.replayer.first_start = time.perf_counter()

    def on_trial_end(self, record) -> None:
        self.replayer.replay(record)


def measure(study: Path, n_trials: int, smoke: bool, workdir: Path, seed: int | None) -> dict:
    from tuning.study import run_study

    training = {"epochs": 2} if smoke else None
    config = study_config(study, smoke=smoke, search={"n_trials": n_trials, "timeout": None, "workers": 1}, training=training)
    config = config.with_overrides(seed=seed, tracking_uri=sqlite_uri(workdir / "mlflow.db"),
                                   output_dir=workdir / "export")
    replayer = Replayer()
    started = time.perf_counter()
    result = run_study(config, quiet=True, observers=[replayer], fresh=True)
    total = time.perf_counter() - started - sum(replayer.replays)
    loop, bare = replayer.loop_s, replayer.bare_s
    return {
        "trials": len(result.records), "epochs": sum(e for _, e, _ in replayer.bare),
        "loop_s": loop, "bare_s": bare, "ratio": loop / bare if bare else float("nan"),
        "fixed_s": total - loop, "total_s": total,
    }


def measure_checkpoints(study: Path, n_fits: int, epochs: int, smoke: bool, workdir: Path, seed: int | None) -> dict:
    """Fits of the study's first candidate networks with and without a checkpoint every epoch (see the
    module docstring)."""
    from estimators.common.checkpoint import FitCheckpoint
    from tuning.config.sections import CheckpointConfig
    from tuning.plan import draft, resolve
    from tuning.search.store.candidates import candidates
    from tuning.search.trial.runner import make_runner

    config = study_config(study, smoke=smoke, search={"n_trials": n_fits, "timeout": None, "workers": 1},
                          training={"epochs": epochs})
    config = config.with_overrides(seed=seed, output_dir=workdir / "export")
    plan = resolve(draft(config))
    runner = make_runner(plan.config, plan.split)
    d = runner.data
    seconds = {"off": 0.0, "on": 0.0}
    writes, write_s, size = 0, 0.0, 0
    for i, params in enumerate(candidates(plan.config, n_fits)):
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
            estimator = runner.make_estimator({**params, "epochs": epochs, "early_stopping": False})
            path = workdir / f"fit-{i}.npz"
            checkpoint = FitCheckpoint(path, every_epochs=1) if mode == "on" else None
            started = time.perf_counter()
            estimator.fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid),
                          callbacks=[checkpoint] if checkpoint else [])
            seconds[mode] += time.perf_counter() - started
            if checkpoint is not None:
                writes, write_s, size = writes + checkpoint.saved, write_s + checkpoint.save_s, path.stat().st_size
            del estimator
            runner.release_memory()
    epoch_ms = seconds["off"] / (n_fits * epochs) * 1000
    write_ms = write_s / max(writes, 1) * 1000
    default = CheckpointConfig()
    every = min(default.every_epochs, max(1.0, default.every_s * 1000 / epoch_ms))  # whichever comes first
    return {"fits": n_fits, "epochs": epochs, "off_s": seconds["off"], "on_s": seconds["on"], "writes": writes,
            "write_s": write_s, "bytes": size, "epoch_ms": epoch_ms, "write_ms": write_ms,
            "every_epoch": write_ms / epoch_ms, "default_every": every, "default_cost": write_ms / every / epoch_ms}


def checkpoint_lines(r: dict) -> list[str]:
    met = "met" if r["default_cost"] <= CHECKPOINT_TARGET else "NOT met"
    return [
        f"fits {r['fits']} x {r['epochs']} epochs; fit time per epoch {r['epoch_ms']:.1f} ms; fits with a "
        f"checkpoint every epoch / without {r['on_s']:.2f} / {r['off_s']:.2f} s (wall time, the machine's load in it)",
        f"checkpoint {r['bytes'] / 1024:.0f} KiB, written in {r['write_ms']:.2f} ms ({r['writes']} writes)",
        f"checkpoint cost per epoch: every epoch {100 * r['every_epoch']:.2f}% of fit time, default "
        f"(every {r['default_every']:.0f} epochs here) {100 * r['default_cost']:.2f}% "
        f"(target <= {100 * CHECKPOINT_TARGET:.0f}%: {met})",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=None, help="override search.seed")
    p.add_argument("--smoke", action="store_true", help="diabetes data, 2 trials of 2 epochs")
    p.add_argument("--checkpoint", action="store_true", help="measure the cost of a trial's checkpoints instead")
    p.add_argument("--fits", type=int, default=4, help="--checkpoint: candidate networks, each fitted twice")
    p.add_argument("--epochs", type=int, default=20, help="--checkpoint: epochs of each fit")
    p.add_argument("--out", type=Path, help="write the result line to this file as well")
    p.add_argument("--json", type=Path, help="write the measurement (the figures above, unrounded) to this JSON file")
    args = p.parse_args(argv)
    n_trials = 2 if args.smoke else args.trials
    study_process()
    if args.checkpoint:
        return checkpoint_main(args)
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        r = measure(args.study, n_trials, args.smoke, Path(tmp), args.seed)
    lines = [
        f"trials {r['trials']}, epochs {r['epochs']}",
        f"search loop through the runner {r['loop_s']:.2f} s, bare fits {r['bare_s']:.2f} s, "
        f"per trial harness cost {(r['loop_s'] - r['bare_s']) / max(r['trials'], 1) * 1000:.0f} ms",
        f"study fixed costs outside the loop (MLflow set-up, data, export, model logging) {r['fixed_s']:.2f} s",
        f"harness ratio {r['ratio']:.3f} (target <= {TARGET})",
    ]
    return write(args, lines, {**r, "target": TARGET})


def checkpoint_main(args) -> int:
    fits, epochs = (2, 3) if args.smoke else (args.fits, args.epochs)
    with tempfile.TemporaryDirectory(prefix="checkpoint-") as tmp:
        r = measure_checkpoints(args.study, fits, epochs, args.smoke, Path(tmp), args.seed)
    lines = checkpoint_lines(r)
    return write(args, lines, {**r, "target": CHECKPOINT_TARGET})



def write(args, lines: list[str], result: dict) -> int:
    """Print ``lines``; write them to ``--out`` and ``result`` to ``--json`` when asked."""
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({**result, "smoke": args.smoke}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
