"""Epoch time of K stacked MLP members (``estimators.stacked.model``) against one lone MLP.

Every member and the lone model are the same MLP: 2 hidden layers of 64 ReLU units on 8 inputs, Adam,
MSE, batch 512, on the California housing training split (11,610 rows; set ``SCIKIT_LEARN_DATA`` to a
folder holding the scikit-learn cache) or random data of that shape. Milliseconds per epoch are the
median over the epochs after the first two (tracing and XLA compilation: the short last batch makes
``tf.function`` retrace with a relaxed shape in the second epoch, which XLA compiles again); no validation. Rows: the lone model
as ``build_model`` compiles it (no XLA on CPU) and with ``jit_compile=True``, the stack for each K (XLA),
and the stack of 8 without XLA. Pin it to one core for the numbers the stacking is about:

    TF_ENABLE_ONEDNN_OPTS=0 taskset -c 0 python benchmarks/stacked_micro.py
    python benchmarks/stacked_micro.py --ks 1 2 --epochs 3 --rows 600   # a quick check
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from estimators.mlp.build import build_model  # noqa: E402
from estimators.stacked.model import build_stacked_model  # noqa: E402

N_HIDDEN, N_NEURONS, N_FEATURES, LEARNING_RATE, BATCH_SIZE, N_TRAIN = 2, 64, 8, 1e-3, 512, 11_610


def load_data(rows: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Standardised (X, y): the Hands-On ML training split of California housing, or random data."""
    try:
        from sklearn.datasets import fetch_california_housing
        from sklearn.model_selection import train_test_split

        housing = fetch_california_housing(download_if_missing=False)
        X_full, _, y_full, _ = train_test_split(housing.data, housing.target, random_state=42)
        X, _, y, _ = train_test_split(X_full, y_full, random_state=42)
        source = "California housing"
    except Exception as exc:  # no cache: random data of the same shape
        print(f"note: California housing unavailable ({type(exc).__name__}); random data")
        rng = np.random.default_rng(42)
        X = rng.normal(size=(N_TRAIN, N_FEATURES))
        y = X @ rng.normal(size=N_FEATURES) + 0.3 * rng.normal(size=N_TRAIN)
        source = "random"
    X, y = X[:rows], y[:rows]
    X = (X - X.mean(0)) / X.std(0)
    return X.astype("float32"), np.asarray(y, dtype="float32"), f"{source} {X.shape[0]} x {X.shape[1]}"


class EpochTimes(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def ms_per_epoch(model: keras.Model, X: np.ndarray, y: np.ndarray, epochs: int) -> float:
    """Median milliseconds of the epochs after the first two."""
    times = EpochTimes()
    model.fit(X, y, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0, callbacks=[times])
    return 1000 * statistics.median(times.seconds[2:])


def lone(jit_compile: bool | str) -> keras.Model:
    model = build_model(N_HIDDEN, N_NEURONS, LEARNING_RATE, n_features=N_FEATURES, optimizer="adam", seed=0)
    if jit_compile is True:
        model.compile(loss=model.loss, optimizer=model.optimizer, jit_compile=True)
    return model


def stack(k: int, jit_compile: bool) -> keras.Model:
    members = [{"n_neurons": N_NEURONS, "learning_rate": LEARNING_RATE * (1 + i % 4)} for i in range(k)]
    return build_stacked_model(members, N_FEATURES, n_hidden=N_HIDDEN, seed=0, jit_compile=jit_compile)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="stack sizes")
    parser.add_argument("--epochs", type=int, default=7, help="epochs per model (the first two are not timed)")
    parser.add_argument("--rows", type=int, default=N_TRAIN, help="training rows")
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error("--epochs must be at least 3 (the first two are not timed)")
    X, y, source = load_data(args.rows)
    print(f"data: {source}; MLP {N_HIDDEN}x{N_NEURONS}, Adam, batch {BATCH_SIZE}; median of epochs 3..{args.epochs}; "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}, "
          f"cores {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    rows = [("lone, build_model compile (no XLA on CPU)", 1, lone("auto")), ("lone, XLA", 1, lone(True))]
    rows += [(f"stack K={k}, XLA", k, stack(k, True)) for k in args.ks]
    rows.append(("stack K=8, no XLA", 8, stack(8, False)))
    baseline = None
    print(f"{'model':<44}{'ms/epoch':>10}{'ms/member':>11}{'members/s vs lone':>19}")
    for label, k, model in rows:
        ms = ms_per_epoch(model, X, y, args.epochs)
        baseline = baseline or ms
        print(f"{label:<44}{ms:>10.1f}{ms / k:>11.1f}{baseline / (ms / k):>18.2f}x")
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
