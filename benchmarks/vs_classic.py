"""Our default housing study against the classic RandomizedSearchCV recipe, side by side.

For every seed, two runs, each in its own child process on this machine, one after the other:

* **classic**: the Hands-On ML (2nd ed., chapter 10) recipe exactly, written with scikeras and
  scikit-learn only (none of our code): ``RandomizedSearchCV(n_iter=10, cv=3)`` over ``n_hidden`` 0..3,
  ``n_neurons`` 1..99 and ``learning_rate ~ reciprocal(3e-4, 3e-2)``, SGD, 100 epochs,
  ``EarlyStopping(patience=10)`` on the validation set, refit of the best candidate on the training set.
* **ours**: ``run_study(load_study("studies/housing.yaml").with_overrides(seed=seed))``, i.e.
  ``python -m tuning.run studies/housing.yaml --seed SEED`` with the study's defaults (MLflow tracking and
  export included). An observer scores each new best-so-far trial's model on the test set as the search
  runs (that scoring time is left out of the elapsed and wall times), to show the time to quality; the
  test MSE in the table is the exported model's (the study's ensemble when it builds one).
* **hgb**: what a user would pick instead, scikit-learn's ``HistGradientBoostingRegressor()`` with its
  defaults (``random_state=seed``) on the same training rows, unscaled; also fitted on training +
  validation rows (``test_mse_full``), since it needs no validation set of its own.

Both use the same split of California housing: ``train_test_split(random_state=42)`` for test, then
again for validation (11,610 / 3,870 / 5,160 rows); the script checks that the two test sets are equal.
Published figures for the classic recipe (Hands-On ML 2nd ed. notebook): CV MSE 0.320, test MSE 0.303.

The gradient-boosting runs come first (seconds), then the first pair (ours, classic), then our remaining
seeds, then the remaining classic seeds, so a run stopped early still has something to compare. Every finished run is appended to ``results.jsonl``;
``--report`` rebuilds the table and plots from it.

    SCIKIT_LEARN_DATA=... python benchmarks/vs_classic.py --seeds 42 43 44 --out bench-out
    python benchmarks/vs_classic.py --report bench-out
    python benchmarks/vs_classic.py --smoke --out /tmp/smoke    # diabetes data, 2 trials, 2 epochs, seconds

Writes ``results.md`` (a markdown table), ``test_mse_vs_time.png`` (one point per run) and
``time_to_quality.png`` (best-so-far test MSE of our runs against elapsed time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _common import (
    DEFAULT_STUDY,
    SMOKE_SEARCH,
    load_results,
    quiet_tensorflow,
    run_worker,
    save_result,
    sqlite_uri,
    study_config,
    study_process,
    write_report,
)

PUBLISHED = {"cv_mse": 0.320, "test_mse": 0.303}
TARGET_TEST_MSE = 0.21  #: below HistGradientBoosting defaults on the same rows (0.2217)


# ------------------------------------------------------------------------------------------- data


def classic_split(smoke: bool):
    """The notebook's split: train_test_split(random_state=42) twice (diabetes data in smoke mode)."""
    from sklearn.datasets import fetch_california_housing, load_diabetes
    from sklearn.model_selection import train_test_split

    data = load_diabetes() if smoke else fetch_california_housing()
    X_train_full, X_test, y_train_full, y_test = train_test_split(data.data, data.target, random_state=42)
    X_train, X_valid, y_train, y_valid = train_test_split(X_train_full, y_train_full, random_state=42)
    return X_train, X_valid, X_test, y_train, y_valid, y_test


def mse(y_true, y_pred) -> float:
    import numpy as np

    return float(np.mean((np.asarray(y_true, dtype="float64").ravel() - np.asarray(y_pred).ravel()) ** 2))


# ---------------------------------------------------------------------------------- classic recipe


def run_classic(seed: int, smoke: bool) -> dict:
    """The classic recipe, with scikeras + scikit-learn only."""
    quiet_tensorflow()
    import keras
    import numpy as np
    from scikeras.wrappers import KerasRegressor
    from scipy.stats import reciprocal
    from sklearn.model_selection import RandomizedSearchCV
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    X_train, X_valid, X_test, y_train, y_valid, y_test = classic_split(smoke)
    scaler = StandardScaler()
    X_train = scaler.fit_transform(X_train)
    X_valid = scaler.transform(X_valid)
    X_test = scaler.transform(X_test)
    n_features = X_train.shape[1]

    np.random.seed(seed)
    keras.utils.set_random_seed(seed)

    def build_model(n_hidden=1, n_neurons=30, learning_rate=3e-3):
        model = keras.models.Sequential()
        model.add(keras.layers.InputLayer(shape=(n_features,)))
        for _ in range(n_hidden):
            # int(): Keras 3 refuses the numpy integers np.arange gives (the notebook's Keras 2 took them)
            model.add(keras.layers.Dense(int(n_neurons), activation="relu"))
        model.add(keras.layers.Dense(1))
        model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=learning_rate))
        return model

    epochs, n_iter = (2, 2) if smoke else (100, 10)
    keras_reg = KerasRegressor(model=build_model, n_hidden=1, n_neurons=30, learning_rate=3e-3, verbose=0)
    param_distribs = {"n_hidden": [0, 1, 2, 3], "n_neurons": np.arange(1, 100),
                      "learning_rate": reciprocal(3e-4, 3e-2)}
    # The notebook's Keras wrapper scored with -loss (= -MSE); scikeras' default score is R^2.
    search = RandomizedSearchCV(keras_reg, param_distribs, n_iter=n_iter, cv=3, random_state=seed, verbose=2,
                                scoring="neg_mean_squared_error", error_score="raise")  # a failed fit is a bug
    search.fit(X_train, y_train, epochs=epochs, validation_data=(X_valid, y_valid),
               callbacks=[keras.callbacks.EarlyStopping(patience=10)])
    wall = time.perf_counter() - started
    best = search.best_estimator_
    return {
        "method": "classic", "seed": seed, "wall_time_s": wall,
        "cv_mse": -float(search.best_score_),
        "valid_mse": mse(y_valid, best.predict(X_valid)),
        "test_mse": mse(y_test, best.predict(X_test)),
        "best_params": {k: (v.item() if hasattr(v, "item") else v) for k, v in search.best_params_.items()},
        "n_trials": n_iter, "y_test_digest": digest(y_test),
    }


def run_hgb(seed: int, smoke: bool) -> dict:
    """HistGradientBoostingRegressor with its defaults on the training rows (and on training + validation)."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

    X_train, X_valid, X_test, y_train, y_valid, y_test = classic_split(smoke)
    started = time.perf_counter()
    model = HistGradientBoostingRegressor(random_state=seed).fit(X_train, y_train)
    wall = time.perf_counter() - started
    full = HistGradientBoostingRegressor(random_state=seed).fit(np.vstack([X_train, X_valid]),
                                                                np.concatenate([y_train, y_valid]))
    return {
        "method": "hgb", "seed": seed, "wall_time_s": wall,
        "valid_mse": mse(y_valid, model.predict(X_valid)), "test_mse": mse(y_test, model.predict(X_test)),
        "test_mse_full": mse(y_test, full.predict(X_test)), "best_params": {}, "n_trials": 1,
        "y_test_digest": digest(y_test),
    }


def digest(y) -> str:
    import hashlib

    import numpy as np

    return hashlib.sha256(np.asarray(y, dtype="float32").tobytes()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ our study


class BestSoFar:
    """Scores the study's best-so-far model (its keeper's best) on the test set whenever a trial improves it.

    The scoring time is accumulated in ``scoring_s`` and left out of the elapsed times it records.
    """

    portable = False

    def __init__(self, X_test, y_test, started: float) -> None:
        self.X_test, self.y_test, self.started = X_test, y_test, started
        self.runner = None
        self.scoring_s = 0.0
        self.curve: list[dict] = []

    def attach(self, runner) -> None:
        self.runner = runner

    def on_trial_start(self, number: int, params: dict) -> None:
        pass

    def on_trial_end(self, record) -> None:
        runner = self.runner
        keeper = None if runner is None else runner.keeper
        if keeper is None or keeper.best_number != record.number:
            return
        t0 = time.perf_counter()
        X = runner.data.scaler.transform(self.X_test).astype("float32") if runner.data.scaler else self.X_test
        test = mse(self.y_test, keeper.get(record.number).predict(X))
        self.curve.append({"elapsed_s": t0 - self.started - self.scoring_s, "trial": record.number,
                           "valid_mse": record.value, "test_mse": test})
        self.scoring_s += time.perf_counter() - t0


def run_ours(seed: int, smoke: bool, study: Path, workdir: Path, config=None) -> dict:
    """Our study (``config``, else the study file) with ``seed``; the smoke mode shrinks it to seconds."""
    study_process()
    from tuning.data.sources import load_dataset
    from tuning.study import run_study

    # smoke: diabetes data, 2 trials of 2 epochs in one process, no time limit
    if config is None:
        config = (study_config(study, smoke=True, search=SMOKE_SEARCH, training={"epochs": 2})
                  if smoke else study_config(study))
    split = load_dataset(config.dataset)  # the same seeded split run_study makes, for the test-set observer
    workdir.mkdir(parents=True, exist_ok=True)
    config = config.with_overrides(seed=seed, tracking_uri=sqlite_uri(workdir / "mlflow.db"),
                                   output_dir=workdir / "export")
    started = time.perf_counter()
    observer = BestSoFar(split.X_test, split.y_test, started)
    result = run_study(config, quiet=True, observers=[observer],
                       fresh=True)  # a new measurement, never the resumed study of an earlier run
    wall = time.perf_counter() - started - observer.scoring_s
    return {
        "method": "ours", "seed": seed, "wall_time_s": wall,
        "valid_mse": result.best.value if result.best else None,
        "valid_mse_ensemble": (result.ensemble or {}).get("valid_mse"),
        "ensemble_members": len((result.ensemble or {}).get("members", [])),
        "test_mse": result.test_metrics.get("mse"),
        "best_params": result.best.params if result.best else {},
        "n_trials": len(result.records), "n_pruned": result.n_pruned, "n_complete": result.n_complete,
        "best_so_far": observer.curve, "y_test_digest": digest(split.y_test),
        "best_trial_test_mse": observer.curve[-1]["test_mse"] if observer.curve else None,
    }


# -------------------------------------------------------------------------------------- reporting


def time_to(curve: list[dict], target: float) -> float | None:
    """Elapsed seconds until the best-so-far test MSE is <= target (None if never)."""
    return next((p["elapsed_s"] for p in curve if p["test_mse"] <= target), None)


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str = ".3f", none: str = "–") -> str:
    return none if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either figure is missing (a run with no result) or b is 0."""
    return a / b if a is not None and b else None


def summarize(results: list[dict]) -> tuple[list[str], str]:
    """Printable lines (per run, per seed, medians) and the markdown report."""
    classic = {r["seed"]: r for r in results if r["method"] == "classic"}
    ours = {r["seed"]: r for r in results if r["method"] == "ours"}
    hgb = {r["seed"]: r for r in results if r["method"] == "hgb"}
    classic_time = _median([r["wall_time_s"] for r in classic.values()])
    classic_test = _median([r["test_mse"] for r in classic.values()])
    hgb_test = _median([r["test_mse"] for r in hgb.values()])
    lines, rows = [], []
    for r in sorted(results, key=lambda r: (r["seed"], r["method"])):
        lines.append(f"{r['method']:8s} seed {r['seed']:<5d} wall {r['wall_time_s']:8.1f} s  "
                     f"best valid MSE {_fmt(r['valid_mse'])}  test MSE {_fmt(r['test_mse'])}  "
                     f"params {json.dumps(r['best_params'])}")
    per_seed = []
    for seed in sorted(ours):
        o = ours[seed]
        c = classic.get(seed)
        ref_time = c["wall_time_s"] if c else classic_time
        ref_test = c["test_mse"] if c else classic_test
        t_ratio = _ratio(o["wall_time_s"], ref_time)
        m_ratio = _ratio(o["test_mse"], ref_test)
        ttq = time_to(o.get("best_so_far", []), ref_test) if ref_test else None
        ttq_ratio = _ratio(ttq, ref_time)
        h = hgb.get(seed)
        h_ratio = _ratio(o["test_mse"], h["test_mse"] if h else hgb_test)
        per_seed.append((t_ratio, m_ratio, ttq_ratio, o["test_mse"], h_ratio))
        paired = "" if c else " (vs the classic median: no classic run for this seed)"
        lines.append(f"ratio    seed {seed:<5d} time ours/classic {_fmt(t_ratio)}  test MSE ours/classic "
                     f"{_fmt(m_ratio)}  test MSE ours/HGB {_fmt(h_ratio)}  time to classic test MSE / classic "
                     f"time {_fmt(ttq_ratio)}{paired}")
        rows.append(f"| {seed} | {_fmt(c['wall_time_s'] if c else None, '.0f')} | "
                    f"{_fmt(c['cv_mse'] if c else None)} | {_fmt(c['test_mse'] if c else None)} | "
                    f"{_fmt(h['wall_time_s'] if h else None, '.1f')} | {_fmt(h['valid_mse'] if h else None)} | "
                    f"{_fmt(h['test_mse'] if h else None)} | "
                    f"{o['wall_time_s']:.0f} | {_fmt(o['valid_mse'])} | {_fmt(o.get('valid_mse_ensemble'))} | "
                    f"{_fmt(o['test_mse'])} | {_fmt(t_ratio, '.3f')} | {_fmt(m_ratio)} | {_fmt(h_ratio)} | "
                    f"{_fmt(ttq, '.0f')} ({_fmt(ttq_ratio, '.3f')}) |")
    med = [_median([p[i] for p in per_seed]) for i in range(5)]
    lines.append(f"median   time ratio {_fmt(med[0])}  test MSE ratio {_fmt(med[1])}  "
                 f"time-to-quality ratio {_fmt(med[2])}  our test MSE {_fmt(med[3])}  HGB test MSE "
                 f"{_fmt(hgb_test)}  ({len(ours)} runs of ours, {len(classic)} classic, {len(hgb)} HGB)")
    if ours and classic and not any(r.get("smoke") for r in results):
        q1 = med[3] is not None and med[3] <= TARGET_TEST_MSE and med[0] is not None and med[0] <= 0.1
        q2 = med[3] is not None and hgb_test is not None and med[3] < hgb_test
        q3 = med[2] is not None and med[2] <= 0.1
        lines.append(f"targets  (1) test MSE <= {TARGET_TEST_MSE} within 1/10 of the classic time: "
                     f"{'met' if q1 else 'NOT met'}   (2) below HistGradientBoosting: {'met' if q2 else 'NOT met'}"
                     f"   (3) classic test MSE within 1/10 of its time: {'met' if q3 else 'NOT met'}")
    md = [
        "| seed | classic wall (s) | classic CV MSE | classic test MSE | HGB wall (s) | HGB valid MSE | HGB test MSE "
        "| ours wall (s) | ours best-trial valid MSE | ours ensemble valid MSE | ours test MSE | time ratio "
        "| test MSE ratio | test MSE ours/HGB | ours time to classic test MSE, s (÷ classic time) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        f"| **median** | {_fmt(classic_time, '.0f')} | {_fmt(_median([r['cv_mse'] for r in classic.values()]))} | "
        f"{_fmt(classic_test)} | {_fmt(_median([r['wall_time_s'] for r in hgb.values()]), '.1f')} | "
        f"{_fmt(_median([r['valid_mse'] for r in hgb.values()]))} | {_fmt(hgb_test)} | {_fmt(_median([r['wall_time_s'] for r in ours.values()]), '.0f')} | "
        f"{_fmt(_median([r['valid_mse'] for r in ours.values()]))} | "
        f"{_fmt(_median([r.get('valid_mse_ensemble') for r in ours.values()]))} | {_fmt(med[3])} | "
        f"{_fmt(med[0])} | {_fmt(med[1])} | {_fmt(med[4])} | ({_fmt(med[2])}) |",
        "",
        f"Published for the classic recipe: CV MSE {PUBLISHED['cv_mse']}, test MSE {PUBLISHED['test_mse']}. "
        f"HistGradientBoosting on training + validation rows: test MSE "
        f"{_fmt(_median([r.get('test_mse_full') for r in hgb.values()]))} (median).",
    ]
    return lines, "\n".join(md) + "\n"


def _save(fig, ax, path: Path) -> Path:
    """Legend, layout, PNG, close: the end of every benchmark plot."""
    import matplotlib.pyplot as plt

    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(results: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    labels = {"classic": "classic RandomizedSearchCV", "ours": "our default study",
              "hgb": "HistGradientBoostingRegressor() defaults"}
    for method, marker in (("classic", "s"), ("ours", "o"), ("hgb", "^")):
        runs = [r for r in results if r["method"] == method and r["test_mse"] is not None]
        if not runs:
            continue
        ax.scatter([r["wall_time_s"] for r in runs], [r["test_mse"] for r in runs], marker=marker,
                   label=labels[method])
        for r in runs:
            ax.annotate(str(r["seed"]), (r["wall_time_s"], r["test_mse"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.axhline(PUBLISHED["test_mse"], color="grey", lw=0.8, ls=":", label="published classic test MSE")
    ax.set_xscale("log")
    ax.set(xlabel="wall time (s, log scale)", ylabel="test MSE", title="California housing: test MSE vs time")
    paths.append(_save(fig, ax, out / "test_mse_vs_time.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for r in (r for r in results if r["method"] == "ours" and r.get("best_so_far")):
        xs = [p["elapsed_s"] for p in r["best_so_far"]] + [r["wall_time_s"]]
        ys = [p["test_mse"] for p in r["best_so_far"]] + [r["best_so_far"][-1]["test_mse"]]
        line = ax.step(xs, ys, where="post", label=f"ours, seed {r['seed']} (best trial so far)")[0]
        if r.get("test_mse") is not None:  # the exported model (the ensemble, when the study builds one)
            ax.scatter([r["wall_time_s"]], [r["test_mse"]], marker="*", s=90, color=line.get_color(),
                       label=f"ours, seed {r['seed']}: exported model")
    classic = [r for r in results if r["method"] == "classic"]
    if classic:
        c_time = statistics.median(r["wall_time_s"] for r in classic)
        c_test = _median([r["test_mse"] for r in classic])
    if classic and c_test is not None:
        ax.axhline(c_test, color="black", lw=0.8, label=f"classic test MSE (median) {c_test:.3f}")
        ax.axvline(c_time / 10, color="red", lw=0.8, ls="--", label="1/10 of the classic wall time")
        ax.axvline(c_time / 5, color="orange", lw=0.8, ls="--", label="1/5 of the classic wall time")
    h_test = _median([r["test_mse"] for r in results if r["method"] == "hgb"])
    if h_test is not None:
        ax.axhline(h_test, color="purple", lw=0.8, ls="-.", label=f"HistGradientBoosting test MSE {h_test:.3f}")
    if not any(r.get("smoke") for r in results):
        ax.axhline(TARGET_TEST_MSE, color="green", lw=0.8, ls=":", label=f"target test MSE {TARGET_TEST_MSE}")
    ax.set(xlabel="elapsed (s)", ylabel="best-so-far test MSE", title="Time to quality (our default study)")
    paths.append(_save(fig, ax, out / "time_to_quality.png"))
    return paths


def report(out: Path) -> int:
    if len({r.get("y_test_digest") for r in load_results(out)}) > 1:
        print("WARNING: the runs did not use the same test set")
    return write_report(out, summarize, plot)


# ------------------------------------------------------------------------------------------- main


def schedule(seeds: list[int], classic_seeds: list[int]) -> list[tuple[str, int]]:
    """Gradient boosting, the first pair, then our other seeds, then the other classic seeds."""
    first = seeds[0]
    order = [("hgb", s) for s in seeds]
    order += [("ours", first)] + ([("classic", first)] if first in classic_seeds else [])
    order += [("ours", s) for s in seeds[1:]]
    order += [("classic", s) for s in classic_seeds if s != first]
    return order


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", help="seeds of the searches (default 42 43 44; smoke: 42)")
    p.add_argument("--classic-seeds", type=int, nargs="*",
                   help="seeds of the classic runs (default: --seeds); ratios use the classic median when a "
                        "seed has no classic run")
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    p.add_argument("--out", type=Path, default=Path("bench-vs-classic"))
    p.add_argument("--smoke", action="store_true", help="diabetes data, 2 trials of 2 epochs: checks it works")
    p.add_argument("--report", type=Path, metavar="DIR", help="only rebuild the table and plots from DIR")
    p.add_argument("--worker", choices=("classic", "ours", "hgb"), help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        if args.worker == "classic":
            result = run_classic(args.seed, args.smoke)
        elif args.worker == "hgb":
            result = run_hgb(args.seed, args.smoke)
        else:
            result = run_ours(args.seed, args.smoke, args.study, out / "runs" / f"ours-{args.seed}")
        result["smoke"] = args.smoke
        save_result(out, result)
        print(f"{result['method']} seed {result['seed']}: {result['wall_time_s']:.1f} s, "
              f"test MSE {_fmt(result['test_mse'])}", flush=True)
        return 0
    seeds = args.seeds or ([42] if args.smoke else [42, 43, 44])
    classic_seeds = seeds if args.classic_seeds is None else args.classic_seeds
    for method, seed in schedule(seeds, classic_seeds):
        code = run_worker(__file__, ["--worker", method, "--seed", str(seed), "--out", str(out), "--study",
                                     str(args.study)] + (["--smoke"] if args.smoke else []), f"{method} seed {seed}")
        if code:
            return code
    return report(out)


if __name__ == "__main__":
    sys.exit(main())
