"""How much faster stacked trials could make a ``benchmarks/stacked.py`` run at best, on this machine.

Reads the runs of a ``stacked.py --out DIR`` (its ``results.jsonl`` and each run's MLflow store), counts the
training work each run did (floating-point operations of its trials' dense layers: every epoch, the
training rows forward and backward, about 3 times the forward pass, and the validation rows forward; the
trials' ``n_hidden``, ``n_neurons`` and ``epochs_run`` as MLflow has them), and divides it by the run's
search time: the work rate it reached. Then it measures the stacked trainer's best work rate on this
machine (``estimators.stacked.model``, XLA, the study's training rows and batch size, stacks of the widest
shapes) and prints, for every run, its rate as a share of that best. For a stack-1 run, best / reached is
the **ceiling** of stacking: the factor by which its trials per minute could grow if every member's step
ran at the trainer's best rate, with no padding, no idle slot and no per-trial cost. The periodic
embedding's work is not counted (plain MLPs only), which only raises the ceiling.

    python benchmarks/stacked_ceiling.py bench-stacked                     # studies/housing_plain.yaml
    python benchmarks/stacked_ceiling.py bench-stacked --shapes 4x256:8 2x64:16
    python benchmarks/stacked_ceiling.py bench-stacked --smoke             # diabetes: checks the script

Measure under the load the runs had (the same cores free): the ceiling is a ratio of two rates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from _common import RESULTS, ROOT, load_results, quiet_tensorflow, sqlite_uri, study_config

STUDY = ROOT / "studies" / "housing_plain.yaml"
SHAPES = ("4x256:4", "4x256:8", "3x192:8", "2x128:16")  # depth x width : members, the trainer's best of these
SMOKE_SHAPES = ("1x16:2",)


def forward_flop_per_row(n_inputs: int, n_hidden: int, width: int, units: int = 1) -> int:
    """Multiply-adds x 2 of an MLP's dense layers for one row."""
    sizes = [n_inputs, *[width] * n_hidden, units]
    return 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def epoch_flop(n_train: int, n_valid: int, n_inputs: int, n_hidden: int, width: int) -> float:
    """One epoch of a trial: the training rows forward and backward (3 forward passes), the validation rows forward."""
    return (3 * n_train + n_valid) * float(forward_flop_per_row(n_inputs, n_hidden, width))


def run_work(run_dir: Path, n_train: int, n_valid: int, n_inputs: int, fixed: dict) -> tuple[float, int]:
    """Floating-point operations of a run's trials, and their member-epochs, read back from its MLflow store."""
    from mlflow import MlflowClient

    from tuning.tracking.runlayout import record_from_run

    client = MlflowClient(tracking_uri=sqlite_uri(run_dir / "mlflow.db"))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`tuning.role` = 'trial'", max_results=10_000)
    flop, epochs = 0.0, 0
    for run in runs:
        record = record_from_run(client, run, metric="")
        params, n_epochs = {**fixed, **record.params}, record.epochs_run
        flop += n_epochs * epoch_flop(n_train, n_valid, n_inputs, int(params["n_hidden"]), int(params["n_neurons"]))
        epochs += n_epochs
    return flop, epochs


def trainer_rate(shape: str, n_train: int, n_inputs: int, batch_size: int, epochs: int = 4) -> float:
    """The stacked trainer's work rate (FLOP/s) for ``depth x width : members``: median epoch after the
    first two (tracing and XLA compilation), training rows forward and backward."""
    import numpy as np

    from estimators.common.data_pipeline import array_dataset
    from estimators.stacked.model import build_stacked_model

    layers, members = shape.split(":")
    depth, width = (int(v) for v in layers.split("x"))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n_train, n_inputs)).astype("float32"), rng.normal(size=n_train).astype("float32")
    model = build_stacked_model([{"n_neurons": width, "learning_rate": 1e-3 * (1 + i % 4)} for i in range(int(members))],
                                n_inputs, n_hidden=depth, seed=0)
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.fit(array_dataset((X, y), batch_size, shuffle=True, seed=0), epochs=1, verbose=0, shuffle=False)
        seconds.append(time.perf_counter() - started)
    return int(members) * 3 * n_train * forward_flop_per_row(n_inputs, depth, width) / statistics.median(seconds[2:])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="a benchmarks/stacked.py --out folder")
    p.add_argument("--study", type=Path, default=STUDY, help="the study those runs ran (default housing_plain.yaml)")
    p.add_argument("--shapes", nargs="+", help=f"stacks to measure the trainer on (default {' '.join(SHAPES)})")
    p.add_argument("--smoke", action="store_true", help="the runs were --smoke runs (diabetes)")
    args = p.parse_args(argv)
    results = load_results(args.out)
    if not results:
        print(f"no results in {args.out / RESULTS}", file=sys.stderr)
        return 1
    quiet_tensorflow()
    from tuning.data.sources import load_dataset

    config = study_config(args.study, smoke=args.smoke)
    split = load_dataset(config.dataset)
    n_train, n_valid, n_inputs = len(split.X_train), len(split.X_valid), split.X_train.shape[1]
    fixed = config.model.fixed_params()
    batch_size = int(config.training.batch_size)
    best = max((trainer_rate(s, n_train, n_inputs, batch_size), s) for s in args.shapes or (SMOKE_SHAPES if args.smoke else SHAPES))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"trainer's best: {best[0] / 1e9:.2f} GFLOP/s ({best[1]}; {n_train} rows, batch {batch_size}; load {load:.1f})")
    print(f"{'run':<22}{'trials':>7}{'epochs':>8}{'GFLOP':>9}{'search s':>10}{'GFLOP/s':>9}{'of best':>9}{'ceiling':>9}")
    for r in sorted(results, key=lambda r: (r["stack"], r.get("variant", "pad"), r["seed"])):
        label = f"stack{r['stack']}-{r.get('variant', 'pad')}-seed{r['seed']}"
        flop, epochs = run_work(args.out / "runs" / label, n_train, n_valid, n_inputs, fixed)
        rate = flop / r["search_s"] if r.get("search_s") else float("nan")
        ceiling = f"{best[0] / rate:.2f}x" if r["stack"] == 1 else ""
        print(f"{label:<22}{r['n_trials']:>7}{epochs:>8}{flop / 1e9:>9.1f}{r['search_s'] or 0:>10.1f}"
              f"{rate / 1e9:>9.2f}{rate / best[0]:>9.0%}{ceiling:>9}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
