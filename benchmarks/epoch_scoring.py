"""Cost of the per-epoch objective: the study's metric on the validation rows after every epoch.

A trial's fit runs one forward pass over the validation rows per epoch (``estimators.common.validation.
ValidationPass``: Keras' ``val_loss`` and compiled metrics, and the outputs), then scores the study's metric
on those outputs with scikit-learn (``tuning.search.trial.epoch_scoring.EpochScorer``). Before, Keras' own
``evaluate`` ran after each epoch (``fit(validation_data=...)``) and the pruner read ``val_loss``. This script
trains trials of a study (parameters drawn from its space, seeded) as its trials train, and after each epoch
times, side by side in the same process:

* ours: the validation pass and the scoring of the metric, as a study runs them;
* Keras: the ``evaluate`` that ``fit(validation_data=...)`` ran before (same network, same rows, same
  chunking), timed apart and left out of the epoch.

    cost = sum over epochs of (ours - Keras) / sum over epochs of (training + Keras)

is what the per-epoch objective adds to a trial's fitting time (negative: it saves time). Target: <= 5%.

    SCIKIT_LEARN_DATA=... python benchmarks/epoch_scoring.py --trials 6 --epochs 15
    python benchmarks/epoch_scoring.py --smoke          # diabetes data, 2 trials of 3 epochs

``--json FILE`` writes the measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _common import DEFAULT_STUDY, study_config, study_process

TARGET = 0.05


def measure(study: Path, n_trials: int, epochs: int, smoke: bool, seed: int) -> dict:
    import keras
    from sklearn.model_selection import ParameterSampler

    from estimators.common.data_pipeline import array_dataset
    from estimators.common.inference import PREDICT_CHUNK
    from estimators.common.validation import ValidationPass
    from tuning.data.sources import load_dataset
    from tuning.search.space import to_distributions
    from tuning.search.trial.epoch_scoring import EpochScorer
    from tuning.search.trial.runner import make_runner

    config = study_config(study, smoke=smoke)
    runner = make_runner(config, load_dataset(config.dataset))
    d = runner.data
    times = {"train": [], "ours": [], "keras": []}
    marks = {}
    validation_pass = ValidationPass.on_epoch_end

    def timed_pass(self, epoch, logs=None):  # the fit's first callback at an epoch's end
        marks["ours"] = time.perf_counter()
        times["train"].append(marks["ours"] - marks["start"])
        validation_pass(self, epoch, logs)

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks["start"] = time.perf_counter()

    class KerasEvaluate(keras.callbacks.Callback):
        """After our scorer: the time ours took, then Keras' evaluate as fit ran it before (left out)."""

        def __init__(self, estimator):
            super().__init__()
            self.estimator, self.rows = estimator, None

        def on_epoch_end(self, epoch, logs=None):
            times["ours"].append(time.perf_counter() - marks["ours"])
            est = self.estimator
            if self.rows is None:
                valid = (est._network_input(d.X_valid), est.target_encoder_.transform(d.y_valid))
                self.rows = array_dataset(valid, max(int(est.batch_size), PREDICT_CHUNK))
            start = time.perf_counter()
            self.model.evaluate(self.rows, verbose=0)
            times["keras"].append(time.perf_counter() - start)

    ValidationPass.on_epoch_end = timed_pass
    drawn = ParameterSampler(to_distributions(config.space), n_iter=n_trials, random_state=seed)
    for params in drawn:
        est = runner.make_estimator({**params, "epochs": epochs, "early_stopping": False})
        scorer = EpochScorer(est, d.y_valid, runner.metric, lambda epoch, logs: None)
        # at an epoch's end: the validation pass (the fit's first callback), our scorer, then Keras' evaluate
        est.fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid),
                callbacks=[Clock(), scorer, KerasEvaluate(est)])
    # each fit's first epoch traces both validation functions: kept (a trial pays it once)
    train, ours, old = (sum(times[k]) for k in ("train", "ours", "keras"))
    return {"trials": n_trials, "epochs": len(times["train"]), "train_s": train, "ours_s": ours, "keras_s": old,
            "cost": (ours - old) / (train + old), "rows_valid": len(d.y_valid), "metric": runner.metric}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0, help="the parameters' draw")
    p.add_argument("--smoke", action="store_true", help="diabetes data, 2 trials of 3 epochs")
    p.add_argument("--json", type=Path, help="write the measurement to this JSON file")
    args = p.parse_args(argv)
    trials, epochs = (2, 3) if args.smoke else (args.trials, args.epochs)
    study_process()
    r = measure(args.study, trials, epochs, args.smoke, args.seed)
    met = "met" if r["cost"] <= TARGET else "NOT met"
    print(f"{r['trials']} trials, {r['epochs']} epochs, {r['rows_valid']} validation rows, metric {r['metric']}\n"
          f"training {r['train_s']:.2f} s; validation + {r['metric']} per epoch (ours) {r['ours_s']:.2f} s; "
          f"Keras' evaluate (before) {r['keras_s']:.2f} s\n"
          f"per-epoch objective cost: {100 * r['cost']:+.1f}% of fitting time (target <= {100 * TARGET:.0f}%: {met})")
    if args.json:
        args.json.write_text(json.dumps({**r, "target": TARGET, "smoke": args.smoke}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
