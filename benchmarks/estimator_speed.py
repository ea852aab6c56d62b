"""Training speed of ``KerasMLPRegressor`` against a plain Keras model compiled with defaults.

Both train the same MLP (3 hidden layers of 74 ReLU units, SGD, MSE, batch 32) on the same data:
the California housing training split (11,610 rows x 8 features, standardised) with a 3,870-row
validation set. When the data cannot be loaded (set ``SCIKIT_LEARN_DATA`` to a folder holding the
scikit-learn cache), synthetic data of the same shape is used and a note says so.

Milliseconds per epoch are timed from one epoch end to the next, so the first (warm-up, tracing)
epoch is left out and validation is included. The two models run interleaved ``--repeats`` times,
alternating which goes first, and the median is reported with the ratio baseline / ours. Ours runs
seeded (``random_state``), as users' seeded fits do.

    python benchmarks/estimator_speed.py                # full run
    python benchmarks/estimator_speed.py --smoke        # tiny data, 2 epochs, a few seconds
    python benchmarks/estimator_speed.py --json speed.json   # every epoch's time and the losses as JSON too
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from estimators import KerasMLPRegressor  # noqa: E402

N_HIDDEN, N_NEURONS, LEARNING_RATE, BATCH_SIZE = 3, 74, 3e-3, 32
N_TRAIN, N_VALID, N_FEATURES = 11_610, 3_870, 8


class EpochTimer(keras.callbacks.Callback):
    """Wall time between consecutive epoch ends (so the first epoch, with tracing, is excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.ends.append(time.perf_counter())

    @property
    def ms_per_epoch(self) -> list[float]:
        return [1000 * (b - a) for a, b in zip(self.ends, self.ends[1:], strict=False)]


def load_data(smoke: bool):
    """Scaled (X_train, y_train, X_valid, y_valid) and a description of where they came from."""
    if smoke:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(400, N_FEATURES)).astype("float32")
        y = (X @ rng.normal(size=N_FEATURES) + 0.1 * rng.normal(size=400)).astype("float32")
        return X[:300], y[:300], X[300:], y[300:], "synthetic smoke data 300 x 8"
    try:
        from sklearn.datasets import fetch_california_housing

        housing = fetch_california_housing()
        X, y, source = housing.data, housing.target, "California housing"
    except Exception as exc:  # no cache and no network
        print(f"note: California housing unavailable ({type(exc).__name__}: {exc}); using synthetic data")
        rng = np.random.default_rng(42)
        n = 20_640
        X = rng.normal(size=(n, N_FEATURES))
        y = np.tanh(X @ rng.normal(size=N_FEATURES)) + 0.1 * X[:, 0] ** 2 + 0.3 * rng.normal(size=n) + 2.0
        source = "synthetic (California housing shape)"
    # The Hands-On ML split: 25% test, then 25% of the rest for validation -> 11,610 / 3,870.
    X_full, _, y_full, _ = train_test_split(X, y, random_state=42)
    X_train, X_valid, y_train, y_valid = train_test_split(X_full, y_full, random_state=42)
    scaler = StandardScaler().fit(X_train)
    X_train, X_valid = scaler.transform(X_train), scaler.transform(X_valid)
    f32 = lambda a: np.asarray(a, dtype="float32")  # noqa: E731
    return f32(X_train), f32(y_train), f32(X_valid), f32(y_valid), f"{source} {X_train.shape[0]} x {X_train.shape[1]}"


def run_baseline(data, epochs: int, seed: int) -> tuple[list[float], float]:
    """A plain Keras model, compiled with defaults, fitted the textbook way."""
    X_train, y_train, X_valid, y_valid = data
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input(shape=(X_train.shape[1],))]
        + [keras.layers.Dense(N_NEURONS, activation="relu") for _ in range(N_HIDDEN)]
        + [keras.layers.Dense(1)]
    )
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE))
    timer = EpochTimer()
    history = model.fit(
        X_train, y_train, epochs=epochs, batch_size=BATCH_SIZE, validation_data=(X_valid, y_valid),
        verbose=0, callbacks=[timer],
    )
    return timer.ms_per_epoch, float(history.history["loss"][-1])


def run_ours(data, epochs: int, seed: int) -> tuple[list[float], float]:
    """Our estimator with its defaults, early stopping off so every epoch runs."""
    X_train, y_train, X_valid, y_valid = data
    est = KerasMLPRegressor(
        n_hidden=N_HIDDEN, n_neurons=N_NEURONS, learning_rate=LEARNING_RATE, batch_size=BATCH_SIZE,
        epochs=epochs, early_stopping=False, random_state=seed,
    )
    timer = EpochTimer()
    est.fit(X_train, y_train, validation_data=(X_valid, y_valid), callbacks=[timer])
    return timer.ms_per_epoch, float(est.history_["loss"][-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fit (default 8; smoke 2)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved fits of each (default 3; smoke 1)")
    parser.add_argument("--smoke", action="store_true", help="tiny data and 2 epochs, for tests")
    parser.add_argument("--json", type=Path, help="write the timings (every epoch) and losses to this JSON file")
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.smoke else 8)
    repeats = args.repeats or (1 if args.smoke else 3)
    if epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is warm-up)")

    *data, source = load_data(args.smoke)
    print(f"data: {source}, validation {len(data[2])} rows; batch {BATCH_SIZE}, "
          f"{N_HIDDEN}x{N_NEURONS} ReLU, SGD lr={LEARNING_RATE}; {epochs} epochs x {repeats} repeats")
    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    losses: dict[str, list[float]] = {"baseline": [], "ours": []}
    runners = {"baseline": run_baseline, "ours": run_ours}
    for r in range(repeats):
        order = ["baseline", "ours"] if r % 2 == 0 else ["ours", "baseline"]
        for name in order:
            ms, loss = runners[name](data, epochs, seed=r)
            times[name] += ms
            losses[name].append(loss)

    med = {name: statistics.median(values) for name, values in times.items()}
    for name, label in (("baseline", "plain Keras, compile defaults"), ("ours", "KerasMLPRegressor")):
        spread = f" +- {statistics.stdev(losses[name]):.4f}" if repeats > 1 else ""
        print(f"{label:30s} {med[name]:8.1f} ms/epoch (median of {len(times[name])} epochs), "
              f"final training loss {statistics.mean(losses[name]):.4f}{spread}")
    ratio = med["baseline"] / med["ours"]
    print(f"ratio (baseline ms/epoch / ours): {ratio:.2f}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps({
            "data": source, "epochs": epochs, "repeats": repeats, "smoke": args.smoke,
            "ms_per_epoch": times, "median_ms_per_epoch": med, "final_loss": losses, "ratio": ratio, "target": 3.0,
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
