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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=None, help="override search.seed")
    p.add_argument("--smoke", action="store_true", help="diabetes data, 2 trials of 2 epochs")
    p.add_argument("--out", type=Path, help="write the result line to this file as well")
    p.add_argument("--json", type=Path, help="write the measurement (the figures above, unrounded) to this JSON file")
    args = p.parse_args(argv)
    n_trials = 2 if args.smoke else args.trials
    study_process()
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        r = measure(args.study, n_trials, args.smoke, Path(tmp), args.seed)
    lines = [
        f"trials {r['trials']}, epochs {r['epochs']}",
        f"search loop through the runner {r['loop_s']:.2f} s, bare fits {r['bare_s']:.2f} s, "
        f"per trial harness cost {(r['loop_s'] - r['bare_s']) / max(r['trials'], 1) * 1000:.0f} ms",
        f"study fixed costs outside the loop (MLflow set-up, data, export, model logging) {r['fixed_s']:.2f} s",
        f"harness ratio {r['ratio']:.3f} (target <= {TARGET})",
    ]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({**r, "target": TARGET, "smoke": args.smoke}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
