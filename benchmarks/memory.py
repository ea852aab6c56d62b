"""Memory across trials: resident set size after trial 10 vs after trial 100 of a small study.

The study is our default housing study made small (a 2,000-row subsample, 10 epochs per trial) and run
through ``run_study`` with everything on (Optuna storage, MLflow tracking, pruning). An observer reads
the process RSS when each trial starts, i.e. after the previous trial ended and the runner cleared
Keras/TensorFlow state, so "after trial k" is the RSS at the start of trial k + 1.

Target: growth from trial 10 to trial 100 under 50 MB. Writes the RSS and the gradient-registry size after
every trial to ``--csv`` (columns ``trials,rss_mb,gradient_registry``).

It also counts the entries of TensorFlow's global gradient registry: Keras' one-replica gradient
all-reduce added one per traced training step, keeping that fit's graph alive (the growth this
benchmark used to show). ``estimators.compat.keras.skip_single_replica_all_reduce`` stops it;
``--without-fix`` turns that off to measure the leak.

    SCIKIT_LEARN_DATA=... python benchmarks/memory.py
    SCIKIT_LEARN_DATA=... python benchmarks/memory.py --without-fix   # the old behaviour
    python benchmarks/memory.py --smoke      # diabetes data, 3 trials of 1 epoch: after trial 1 vs 3
    SCIKIT_LEARN_DATA=... python benchmarks/memory.py --own-model   # the user's factory (studies/handson.yaml)

``--own-model`` runs the same measurement on ``studies/handson.yaml``: the Hands-On ML factory, verbatim,
as a user brings it (it compiles its own SGD optimizer, which the estimator gives the same fix).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import DEFAULT_STUDY, rss_mb, sqlite_uri, study_config, study_process

TARGET_MB = 50.0
OWN_MODEL_STUDY = DEFAULT_STUDY.parent / "handson.yaml"


class RssProbe:
    """RSS (MB) and gradient-registry size after each finished trial, read when the next one starts."""

    portable = False

    def __init__(self) -> None:
        from estimators.compat.tensorflow import gradient_registry_size

        self.registry_size = gradient_registry_size
        self.after: dict[int, float] = {}  # trials finished -> RSS MB
        self.registry: dict[int, int] = {}  # trials finished -> gradient registry entries

    def attach(self, runner) -> None:
        pass  # it needs nothing of the runner

    def on_trial_start(self, number: int, params: dict) -> None:
        self.after[number] = rss_mb()
        self.registry[number] = self.registry_size()

    def on_trial_end(self, record) -> None:
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", type=Path, default=None, help=f"default: {DEFAULT_STUDY.name}")
    p.add_argument("--own-model", action="store_true",
                   help=f"the user's-factory variant: {OWN_MODEL_STUDY.name} (the Hands-On factory)")
    p.add_argument("--first", type=int, default=10, help="compare the RSS after this many trials ...")
    p.add_argument("--last", type=int, default=100, help="... with the RSS after this many")
    p.add_argument("--rows", type=int, default=2000, help="subsample of the data set")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--smoke", action="store_true", help="diabetes data, 3 trials of 1 epoch")
    p.add_argument("--csv", type=Path, help="write trials,rss_mb,gradient_registry to this file")
    p.add_argument("--without-fix", action="store_true",
                   help="let Keras all-reduce the gradients of one replica (the leak the estimators avoid)")
    args = p.parse_args(argv)
    if args.study is None:
        args.study = OWN_MODEL_STUDY if args.own_model else DEFAULT_STUDY
    first, last, epochs = (1, 3, 1) if args.smoke else (args.first, args.last, args.epochs)
    if not 0 < first < last:
        p.error("need 0 < --first < --last")

    study_process()
    from tuning.config.schema import load_study

    dataset = None if args.smoke else {**load_study(args.study).dataset.model_dump(exclude_unset=True),
                                       "max_rows": args.rows}
    # One trial more than `last`: its start is when the RSS after trial `last` is read.
    config = study_config(args.study, smoke=args.smoke, dataset=dataset,
                          search={"n_trials": last + 1, "timeout": None, "workers": 1}, training={"epochs": epochs})
    from tuning.study import run_study

    if args.without_fix:  # both estimators' references to the fix (our MLP's optimizer, a user's model's)
        import estimators.mlp.build
        import estimators.own_model.estimators

        estimators.mlp.build.skip_single_replica_all_reduce = lambda optimizer: optimizer
        estimators.own_model.estimators.skip_single_replica_all_reduce = lambda optimizer: optimizer
    probe = RssProbe()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
        config = config.with_overrides(tracking_uri=sqlite_uri(Path(tmp) / "mlflow.db"),
                                       output_dir=Path(tmp) / "export")
        result = run_study(config, quiet=True, observers=[probe], fresh=True)
    if args.csv:
        args.csv.write_text("trials,rss_mb,gradient_registry\n" + "".join(
            f"{k},{v:.1f},{probe.registry[k]}\n" for k, v in sorted(probe.after.items())))
    a, b = probe.after.get(first), probe.after.get(last)
    print(f"{len(result.records)} trials ({result.n_complete} complete, {result.n_pruned} pruned) "
          f"in {time.perf_counter() - started:.0f} s")
    if a is None or b is None:
        print(f"the study stopped before trial {last}")
        return 1
    growth = b - a
    print(f"RSS after trial {first}: {a:.1f} MB, after trial {last}: {b:.1f} MB")
    print(f"growth {growth:+.1f} MB over {last - first} trials, {growth / (last - first) * 1000:+.0f} kB per trial "
          f"(target < {TARGET_MB:.0f} MB)")
    print(f"TensorFlow gradient registry: {probe.registry[last] - probe.registry[first]:+d} entries over the same trials "
          f"({'without' if args.without_fix else 'with'} the one-replica all-reduce fix)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
