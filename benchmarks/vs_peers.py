"""Our default study against the tools a user would reach for instead, on the same data and the same clock.

Tools (``--tools``, default all), each in its own child process, one after the other:

* **kt-bayes** / **kt-hyperband**: KerasTuner 1.4 (``keras_tuner``), ``BayesianOptimization(max_trials=16)``
  and ``Hyperband(max_epochs=100, factor=3)`` with the ``build_model(hp)`` of KerasTuner's "Getting started"
  (1-3 Dense relu layers of 32-512 units, step 32; Adam with a log learning rate 1e-4..1e-2; one linear
  output; loss mse), standard scaling, ``EarlyStopping(monitor="val_loss", patience=5)``,
  ``tuner.search(x, y, epochs=100, validation_data=...)``, then ``tuner.get_best_models(1)[0]``. The
  project directory is a temporary folder.
* **optuna**: the objective a user writes from Optuna's Keras example: the same space through
  ``trial.suggest_*``, ``optuna_integration.TFKerasPruningCallback(trial, "val_loss")`` + the same early
  stopping, TPE sampler + Hyperband pruner, 16 trials, an in-memory study; the best trial's model is kept.
* **classic**: the Hands-On ML recipe of ``vs_classic.py`` (``RandomizedSearchCV``, its function, not a
  copy; ~40 minutes per seed on housing). Its row for the same seed in ``vs_classic.py``'s results file
  (``--classic-results``, default the stored ``benchmarks/results/vs_classic/results.jsonl``) is reused
  instead of running it again when the test set is the same (said in the output and the table); housing only.
* **hgb**: ``HistGradientBoostingRegressor()`` defaults on the training rows (``vs_classic.py`` /
  ``vs_gbdt.py``'s function); its time is the ``fit`` call.
* **ours**: ``studies/housing.yaml`` as shipped (``vs_classic.py``'s ``run_ours``), its data swapped for a
  UCI set as ``vs_gbdt.py`` does; the table's test MSE is the exported model's (the ensemble).

Data (``--datasets``): California housing with the housing study's split (11,610 / 3,870 / 5,160 rows,
``vs_classic.py``'s loader) and the shared UCI sets (``vs_gbdt.py``'s loader and split), e.g. kin8nm and
power-plant. Every tool gets the same rows; each row records a digest of its test targets.

Time to quality: every tool records its best-so-far test MSE against elapsed time (from loading the data):
each time a trial's validation score is a new best, its model is scored on the test set, and that scoring
time is left out of the elapsed and wall times (KerasTuner: a subclass of the tuner hooks ``on_trial_end``
and loads the trial's model; Optuna: inside the objective; ours: ``vs_classic.py``'s observer). Our curve
ends with the exported model at our wall time. Classic and HGB are one point each (their final model).

Targets: for every peer, ours reaches that peer's final test MSE within **1/10 of the peer's wall time**
(the fraction in the table <= 0.1), and our final test MSE is **below every peer's final test MSE**.

    python benchmarks/vs_peers.py --seeds 42 --out bench-vs-peers                    # every tool, 3 data sets
    python benchmarks/vs_peers.py --datasets housing --tools kt-bayes optuna hgb ours classic
    python benchmarks/vs_peers.py --report bench-vs-peers                            # table + plots again
    python benchmarks/vs_peers.py --smoke --out peers-smoke   # diabetes, 2 trials of 2 epochs, seconds

Needs the benchmark extra (``pip install -e ".[bench]"``: keras-tuner, optuna-integration) for the peers.
Writes ``results.jsonl`` (one line per tool, data set and seed), ``results.md`` and
``time_to_quality-<data set>.png``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    DEFAULT_STUDY,
    RESULTS,
    ROOT,
    finish,
    quiet_tensorflow,
    run_worker,
    save_result,
    write_report,
)

TOOLS = ("hgb", "ours", "optuna", "kt-bayes", "kt-hyperband", "classic")
PEERS = tuple(t for t in TOOLS if t != "ours")
LABELS = {"hgb": "HistGradientBoosting defaults", "ours": "ours (studies/housing.yaml)",
          "optuna": "Optuna by hand (TPE + Hyperband pruner)", "kt-bayes": "KerasTuner BayesianOptimization",
          "kt-hyperband": "KerasTuner Hyperband", "classic": "classic RandomizedSearchCV"}
COLORS = {"hgb": "tab:purple", "ours": "tab:blue", "optuna": "tab:orange", "kt-bayes": "tab:green",
          "kt-hyperband": "tab:olive", "classic": "tab:red"}
DATASETS = ("housing", "kin8nm", "power-plant")
SMOKE_DATASET = "diabetes"
CLASSIC_RESULTS = ROOT / "benchmarks" / "results" / "vs_classic" / RESULTS
TARGET_FRACTION = 0.1
KEY = ("tool", "dataset", "seed")


# ------------------------------------------------------------------------------------------- data


def data_folder(data: Path, dataset: str):
    from vs_gbdt import UCISet

    return UCISet(dataset, data / "uci" / dataset)


def load_split(dataset: str, data: Path):
    """X_train, X_valid, X_test, y_train, y_valid, y_test (float64) of a data set, split as the study does."""
    if dataset in ("housing", SMOKE_DATASET):
        from vs_classic import classic_split

        return classic_split(dataset == SMOKE_DATASET)
    from vs_gbdt import baseline_split

    b = baseline_split(data_folder(data, dataset))
    return b["X_train"], b["X_valid"], b["X_test"], b["y_train"], b["y_valid"], b["y_test"]


def scaled(split):
    """The split with its features standard-scaled on the training rows (what the peers' users do)."""
    from sklearn.preprocessing import StandardScaler

    X_train, X_valid, X_test, y_train, y_valid, y_test = split
    scaler = StandardScaler().fit(X_train)
    return (*(scaler.transform(X).astype("float32") for X in (X_train, X_valid, X_test)),
            *(y.astype("float32") for y in (y_train, y_valid)), y_test)


def mse(y_true, y_pred) -> float:
    from vs_classic import mse as _mse

    return _mse(y_true, y_pred)


def digest(y) -> str:
    from vs_classic import digest as _digest

    return _digest(y)


class Curve:
    """Best-so-far test MSE against elapsed time; the time spent scoring is left out of the clock."""

    def __init__(self, X_test, y_test, started: float) -> None:
        self.X_test, self.y_test, self.started = X_test, y_test, started
        self.scoring_s = 0.0
        self.best: float | None = None
        self.points: list[dict] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.started - self.scoring_s

    def offer(self, valid: float | None, model, trial) -> None:
        """Score ``model`` on the test set when ``valid`` is a new best validation score."""
        if valid is None or not math.isfinite(valid) or (self.best is not None and valid >= self.best):
            return
        t0 = time.perf_counter()
        at = t0 - self.started - self.scoring_s
        self.best = valid
        test = mse(self.y_test, model().predict(self.X_test, verbose=0))
        self.points.append({"elapsed_s": at, "trial": trial, "valid_mse": float(valid), "test_mse": test})
        self.scoring_s += time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ peers


def build_model_factory(n_features: int):
    """KerasTuner's "Getting started" ``build_model(hp)``, for a regression on ``n_features`` inputs."""
    import keras

    def build_model(hp):
        model = keras.Sequential()
        model.add(keras.layers.Input(shape=(n_features,)))
        for i in range(hp.Int("num_layers", 1, 3)):
            model.add(keras.layers.Dense(units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                                         activation="relu"))
        model.add(keras.layers.Dense(1))
        learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
        return model

    return build_model


def run_keras_tuner(kind: str, dataset: str, seed: int, smoke: bool, data: Path) -> dict:
    quiet_tensorflow()
    import keras
    import keras_tuner

    started = time.perf_counter()
    split = load_split(dataset, data)
    X_train, X_valid, X_test, y_train, y_valid, y_test = scaled(split)
    keras.utils.set_random_seed(seed)
    curve = Curve(X_test, y_test, started)
    base = keras_tuner.BayesianOptimization if kind == "kt-bayes" else keras_tuner.Hyperband

    class Tracked(base):
        """The tuner, scoring each trial whose validation score is a new best on the test set."""

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            done = self.oracle.get_trial(trial.trial_id)
            curve.offer(done.score, lambda: self.load_model(done), done.trial_id)

    epochs = 2 if smoke else 100
    with tempfile.TemporaryDirectory(prefix="keras-tuner-") as tmp:
        common = {"objective": "val_loss", "seed": seed, "directory": tmp, "project_name": kind, "overwrite": True}
        if kind == "kt-bayes":
            tuner = Tracked(build_model_factory(X_train.shape[1]), max_trials=2 if smoke else 16, **common)
        else:  # smoke: max_epochs 2, one bracket of 2-epoch trials
            tuner = Tracked(build_model_factory(X_train.shape[1]), max_epochs=epochs, factor=3, **common)
        stop_early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)
        tuner.search(X_train, y_train, epochs=epochs, validation_data=(X_valid, y_valid), callbacks=[stop_early],
                     verbose=0)
        best = tuner.get_best_models(num_models=1)[0]
        wall = curve.elapsed()
        n_trials = len(tuner.oracle.trials)
        best_hp = tuner.get_best_hyperparameters(1)[0].values
    return {"tool": kind, "wall_time_s": wall, "test_mse": mse(y_test, best.predict(X_test, verbose=0)),
            "valid_mse": curve.best, "curve": curve.points, "n_trials": n_trials, "best_params": best_hp}


def run_optuna(dataset: str, seed: int, smoke: bool, data: Path) -> dict:
    quiet_tensorflow()
    import keras
    import optuna
    from optuna_integration import TFKerasPruningCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    split = load_split(dataset, data)
    X_train, X_valid, X_test, y_train, y_valid, y_test = scaled(split)
    keras.utils.set_random_seed(seed)
    curve = Curve(X_test, y_test, started)
    epochs, n_trials = (2, 2) if smoke else (100, 16)
    kept = {}

    def objective(trial):
        keras.backend.clear_session()
        model = keras.Sequential()
        model.add(keras.layers.Input(shape=(X_train.shape[1],)))
        for i in range(trial.suggest_int("n_layers", 1, 3)):
            model.add(keras.layers.Dense(trial.suggest_int(f"n_units_l{i}", 32, 512, step=32), activation="relu"))
        model.add(keras.layers.Dense(1))
        learning_rate = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
        model.fit(X_train, y_train, validation_data=(X_valid, y_valid), epochs=epochs, verbose=0,
                  callbacks=[TFKerasPruningCallback(trial, "val_loss"),
                             keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)])
        score = float(model.evaluate(X_valid, y_valid, verbose=0))
        if curve.best is None or score < curve.best:
            kept["model"] = model
        curve.offer(score, lambda: model, trial.number)
        return score

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                                       reduction_factor=3))
    study.optimize(objective, n_trials=n_trials)
    wall = curve.elapsed()
    best = kept["model"]
    return {"tool": "optuna", "wall_time_s": wall, "test_mse": mse(y_test, best.predict(X_test, verbose=0)),
            "valid_mse": study.best_value, "curve": curve.points, "n_trials": len(study.trials),
            "n_pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
            "best_params": study.best_params}


def run_hgb(dataset: str, seed: int, smoke: bool, data: Path) -> dict:
    if dataset in ("housing", SMOKE_DATASET):
        import vs_classic

        r = vs_classic.run_hgb(seed, smoke)
        test, valid = r["test_mse"], r["valid_mse"]
    else:
        import vs_gbdt

        r = vs_gbdt.run_hgb(data_folder(data, dataset), seed)
        test, valid = r["test_rmse"] ** 2, r["valid_rmse"] ** 2
    return {"tool": "hgb", "wall_time_s": r["wall_time_s"], "test_mse": test, "valid_mse": valid,
            "curve": [{"elapsed_s": r["wall_time_s"], "trial": 0, "valid_mse": valid, "test_mse": test}],
            "n_trials": 1, "best_params": {}}


def run_classic(dataset: str, seed: int, smoke: bool, data: Path) -> dict:
    import vs_classic

    r = vs_classic.run_classic(seed, smoke)
    return classic_row(r)


def classic_row(r: dict, reused_from: str | None = None) -> dict:
    point = {"elapsed_s": r["wall_time_s"], "trial": None, "valid_mse": r["valid_mse"], "test_mse": r["test_mse"]}
    row = {"tool": "classic", "wall_time_s": r["wall_time_s"], "test_mse": r["test_mse"],
           "valid_mse": r["valid_mse"], "curve": [point], "n_trials": r["n_trials"],
           "best_params": r["best_params"]}
    if reused_from:
        row["reused_from"] = reused_from
    return row


def run_ours(dataset: str, seed: int, smoke: bool, data: Path, study: Path, workdir: Path) -> dict:
    import vs_classic

    config = None
    if dataset not in ("housing", SMOKE_DATASET):
        import vs_gbdt

        config = vs_gbdt.make_config(study, data_folder(data, dataset), smoke)
    r = vs_classic.run_ours(seed, smoke, study, workdir, config=config)
    # the exported model (the ensemble), ready at the end of run_study, closes our curve
    final = {"elapsed_s": r["wall_time_s"], "trial": "exported", "valid_mse": r["valid_mse_ensemble"],
             "test_mse": r["test_mse"]}
    return {"tool": "ours", "wall_time_s": r["wall_time_s"], "test_mse": r["test_mse"],
            "valid_mse": r["valid_mse"], "curve": [*r["best_so_far"], final], "n_trials": r["n_trials"],
            "n_pruned": r["n_pruned"], "best_params": r["best_params"],
            "best_trial_test_mse": r["best_trial_test_mse"]}


def stored_classic(path: Path, seed: int, smoke: bool, y_digest: str) -> dict | None:
    """vs_classic.py's stored classic run for ``seed`` on the same test rows, if any."""
    import json

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    for r in rows:
        if (r.get("method") == "classic" and r.get("seed") == seed and bool(r.get("smoke")) == smoke
                and r.get("y_test_digest") == y_digest):
            return r
    return None


# -------------------------------------------------------------------------------------- reporting


def time_to(curve: list[dict], target: float) -> float | None:
    """Elapsed seconds until the best-so-far test MSE is <= target (None if never)."""
    return next((p["elapsed_s"] for p in curve if p["test_mse"] <= target), None)


def _fmt(value, spec: str = ".4f", none: str = "–") -> str:
    return none if value is None else format(value, spec)


def _mse(value: float) -> str:
    """A test MSE with 4 significant digits (0.2010, 0.004281), as vs_gbdt.py prints RMSEs."""
    from vs_gbdt import _fmt as significant

    return significant(value)


def _order(tool: str) -> int:
    return TOOLS.index(tool) if tool in TOOLS else len(TOOLS)


def compare(results: list[dict]) -> list[dict]:
    """One entry per (data set, seed) with ours: per peer, its final test MSE, wall time, and when ours got there."""
    runs = {}
    for r in results:
        runs.setdefault((r["dataset"], r["seed"]), {})[r["tool"]] = r
    out = []
    for (dataset, seed), tools in sorted(runs.items(), key=lambda kv: (kv[0][0] != "housing", kv[0])):
        ours = tools.get("ours")
        peers = []
        for tool in sorted((t for t in tools if t != "ours"), key=_order):
            p = tools[tool]
            reach = time_to(ours["curve"], p["test_mse"]) if ours else None
            fraction = reach / p["wall_time_s"] if reach is not None and p["wall_time_s"] else None
            peers.append({"tool": tool, "row": p, "reach_s": reach, "fraction": fraction,
                          "ours_below": ours is not None and ours["test_mse"] < p["test_mse"]})
        out.append({"dataset": dataset, "seed": seed, "ours": ours, "peers": peers,
                    "same_test_set": len({r["y_test_digest"] for r in tools.values()}) == 1})
    return out


def median_table(comparisons: list[dict]) -> tuple[list[str], list[str]]:
    """Per data set, every tool's medians over the seeds that ran it (final test MSE, wall time, the
    fraction of its time ours takes to reach its final test MSE) and the targets on those medians."""
    import statistics

    lines, md = [], []
    for dataset in sorted({c["dataset"] for c in comparisons}, key=lambda d: (d != "housing", d)):
        runs = [c for c in comparisons if c["dataset"] == dataset and c["ours"]]
        if not runs:
            continue
        md += [f"### {dataset}: medians over seeds {' '.join(str(c['seed']) for c in runs)}", "",
               "| tool | seeds | final test MSE | wall (s) | ÷ tool's wall time (ours reaches its final) | ours final below |",
               "|---|---:|---:|---:|---:|---|"]
        ours = [c["ours"] for c in runs]
        md.append(f"| {LABELS['ours']} | {len(ours)} | **{_mse(statistics.median(r['test_mse'] for r in ours))}** | "
                  f"{statistics.median(r['wall_time_s'] for r in ours):.1f} | – | – |")
        slow, above = [], []
        for tool in sorted({p["tool"] for c in runs for p in c["peers"]}, key=_order):
            peers = [p for c in runs for p in c["peers"] if p["tool"] == tool]
            fractions = [math.inf if p["fraction"] is None else p["fraction"] for p in peers]
            fraction = statistics.median(fractions)
            below = sum(p["ours_below"] for p in peers)
            if fraction > TARGET_FRACTION:
                slow.append(tool)
            if below < len(peers):
                above.append(tool)
            md.append(f"| {LABELS.get(tool, tool)} | {len(peers)} | {_mse(statistics.median(p['row']['test_mse'] for p in peers))} "
                      f"| {statistics.median(p['row']['wall_time_s'] for p in peers):.1f} | "
                      f"{'never' if fraction == math.inf else _fmt(fraction, '.3f')} | "
                      f"{below}/{len(peers)} seeds |")
        verdict = (f"targets {dataset} (medians): (1) within 1/10 of every peer's time: "
                   f"{'met' if not slow else 'NOT met (' + ', '.join(slow) + ')'}   (2) our final test MSE below "
                   f"every peer's: {'met' if not above else 'NOT met (' + ', '.join(above) + ')'}")
        lines.append(verdict)
        md += ["", verdict.replace("targets ", "Targets, ", 1) + ".", ""]
    return lines, md


def summarize(results: list[dict]) -> tuple[list[str], str]:
    """Printable lines and the markdown report: the medians over seeds first, then every run."""
    comparisons = compare(results)
    lines, md = median_table(comparisons)
    for c in comparisons:
        ours, dataset, seed = c["ours"], c["dataset"], c["seed"]
        md += [f"### {dataset}, seed {seed}", "",
               "| tool | final test MSE | wall (s) | trials | ours reaches this test MSE at (s) "
               "| ÷ tool's wall time | ours final below |",
               "|---|---:|---:|---:|---:|---:|---|"]
        if ours:
            lines.append(f"ours         {dataset} seed {seed}: test MSE {_mse(ours['test_mse'])}  "
                         f"wall {ours['wall_time_s']:.1f} s  ({ours['n_trials']} trials)")
            md.append(f"| {LABELS['ours']} | **{_mse(ours['test_mse'])}** | {ours['wall_time_s']:.1f} | "
                      f"{ours['n_trials']} | – | – | – |")
        for p in c["peers"]:
            r = p["row"]
            reused = f" (reused from {r['reused_from']})" if r.get("reused_from") else ""
            reach = ("never" if p["reach_s"] is None else f"at {p['reach_s']:.1f} s") if ours else "no run of ours"
            lines.append(f"peer {p['tool']:12s} {dataset} seed {seed}: test MSE {_mse(r['test_mse'])}  "
                         f"wall {r['wall_time_s']:.1f} s  ours reaches it {reach}  fraction "
                         f"{_fmt(p['fraction'], '.3f')}{reused}")
            md.append(f"| {LABELS.get(p['tool'], p['tool'])}{' (stored run)' if reused else ''} | "
                      f"{_mse(r['test_mse'])} | {r['wall_time_s']:.1f} | {r['n_trials']} | "
                      f"{'–' if not ours else 'never' if p['reach_s'] is None else format(p['reach_s'], '.1f')} | "
                      f"{_fmt(p['fraction'], '.3f')} | {('yes' if p['ours_below'] else 'no') if ours else '–'} |")
        md.append("")
        if not c["same_test_set"]:
            lines.append(f"WARNING: the runs on {dataset} seed {seed} did not use the same test set")
            md += [f"WARNING: the runs on {dataset} seed {seed} did not use the same test set.", ""]
        if ours and c["peers"]:
            slow = [p["tool"] for p in c["peers"] if p["fraction"] is None or p["fraction"] > TARGET_FRACTION]
            above = [p["tool"] for p in c["peers"] if not p["ours_below"]]
            verdict = (f"targets {dataset} seed {seed}: (1) every peer's final test MSE within 1/10 of its time: "
                       f"{'met' if not slow else 'NOT met (' + ', '.join(slow) + ')'}   (2) our final test MSE "
                       f"below every peer's: {'met' if not above else 'NOT met (' + ', '.join(above) + ')'}")
            lines.append(verdict)
            md += [verdict.replace("targets ", "Targets, ", 1) + ".", ""]
    md += ["Final test MSE: the model each tool ends with (ours: the exported ensemble; KerasTuner: "
           "`get_best_models(1)[0]`; Optuna: the best trial's model; classic: the refitted best candidate). "
           "Wall: from loading the data to that model, test scoring left out. Ours reaches: the first "
           "moment our best-so-far test MSE is at or below the tool's final test MSE."]
    return lines, "\n".join(md) + "\n"


def plot(results: list[dict], out: Path) -> list[Path]:
    """One time-to-quality PNG per data set: every tool's best-so-far test MSE against elapsed time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from vs_classic import _save

    paths = []
    for dataset in sorted({r["dataset"] for r in results}):
        runs = sorted((r for r in results if r["dataset"] == dataset), key=lambda r: (_order(r["tool"]), r["seed"]))
        seeds = sorted({r["seed"] for r in runs})
        fig, ax = plt.subplots(figsize=(7.2, 4.8))
        labelled = set()
        for r in runs:  # one legend entry per tool (its seeds share its colour)
            tool_seeds = [x["seed"] for x in runs if x["tool"] == r["tool"]]
            label = None if r["tool"] in labelled else (
                LABELS.get(r["tool"], r["tool"]) + (f" (seeds {', '.join(map(str, tool_seeds))})"
                                                    if len(seeds) > 1 else ""))
            labelled.add(r["tool"])
            pts = r["curve"]
            if len(pts) > 1 or r["tool"] in ("ours", "optuna", "kt-bayes", "kt-hyperband"):
                # the tool's current model: its last new best on validation, then the final model
                xs = [p["elapsed_s"] for p in pts] + [r["wall_time_s"]]
                ys = [p["test_mse"] for p in pts] + [r["test_mse"]]
                color = COLORS.get(r["tool"])
                ax.step(xs, ys, where="post", label=label, color=color)
                ax.scatter([r["wall_time_s"]], [r["test_mse"]], marker="*", s=80, color=color)
            else:
                ax.scatter([r["wall_time_s"]], [r["test_mse"]], marker="s" if r["tool"] == "classic" else "^",
                           s=40, label=label, color=COLORS.get(r["tool"]))
        ax.set_xscale("log")
        ax.set(xlabel="elapsed (s, log scale; test scoring left out)", ylabel="best-so-far test MSE",
               title=f"Time to quality: {dataset}")
        paths.append(_save(fig, ax, out / f"time_to_quality-{dataset}.png"))
    return paths


def report(out: Path) -> int:
    return write_report(out, summarize, plot)


# ------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default 42)")
    p.add_argument("--datasets", nargs="+", metavar="NAME",
                   help=f"housing and/or UCI folders (default: {' '.join(DATASETS)}; smoke: {SMOKE_DATASET})")
    p.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS), help="which tools run (default all)")
    p.add_argument("--classic-results", type=Path, default=CLASSIC_RESULTS, metavar="FILE",
                   help="vs_classic.py's results.jsonl whose classic row for the same seed is reused "
                        "(default: the stored one)")
    p.add_argument("--rerun-classic", action="store_true", help="run the classic recipe even if a stored row exists")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", metavar="DIR",
                   help="the shared data folder holding uci/<name>/ (default: ../shared/data next to the repo)")
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    p.add_argument("--out", type=Path, default=Path("bench-vs-peers"))
    p.add_argument("--smoke", action="store_true", help="diabetes data, 2 trials of 2 epochs per tool: checks it works")
    p.add_argument("--report", type=Path, metavar="DIR", help="only rebuild the table and plots from DIR")
    p.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args: argparse.Namespace) -> int:
    tool, dataset, seed = args.worker, args.dataset, args.seed
    if tool in ("kt-bayes", "kt-hyperband"):
        result = run_keras_tuner(tool, dataset, seed, args.smoke, args.data)
    elif tool == "optuna":
        result = run_optuna(dataset, seed, args.smoke, args.data)
    elif tool == "hgb":
        result = run_hgb(dataset, seed, args.smoke, args.data)
    elif tool == "classic":
        result = run_classic(dataset, seed, args.smoke, args.data)
    else:
        result = run_ours(dataset, seed, args.smoke, args.data, args.study,
                          args.out / "runs" / f"ours-{dataset}-{seed}")
    y_test = load_split(dataset, args.data)[5]
    result.update({"dataset": dataset, "seed": seed, "smoke": args.smoke, "y_test_digest": digest(y_test),
                   "n_test": len(y_test)})
    save_result(args.out, result, key=KEY)
    print(f"{tool} {dataset} seed {seed}: {result['wall_time_s']:.1f} s, test MSE {result['test_mse']:.4f}", flush=True)
    return 0


def missing_peer_packages(tools: list[str]) -> list[str]:
    import importlib.util

    needed = {"kt-bayes": "keras_tuner", "kt-hyperband": "keras_tuner", "optuna": "optuna_integration"}
    return sorted({needed[t] for t in tools if t in needed and importlib.util.find_spec(needed[t]) is None})


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        return worker(args)
    missing = missing_peer_packages(args.tools)
    if missing:
        print(f"error: {', '.join(missing)} not installed: pip install -e \".[bench]\"", file=sys.stderr)
        return 2
    datasets = [SMOKE_DATASET] if args.smoke else (args.datasets or list(DATASETS))
    seeds = args.seeds or [42]
    failed = []
    for dataset in datasets:
        if dataset not in ("housing", SMOKE_DATASET):
            folder = data_folder(args.data, dataset)
            if folder.missing():
                print(f"skipped {dataset}: {folder.folder} lacks {', '.join(folder.missing())}")
                continue
        for seed in seeds:
            for tool in sorted(args.tools, key=_order):
                if tool == "classic":
                    if dataset not in ("housing", SMOKE_DATASET):
                        print(f"classic {dataset} seed {seed}: skipped (vs_classic.py's recipe reads housing only)")
                        continue
                    if not args.rerun_classic:
                        y_digest = digest(load_split(dataset, args.data)[5])
                        stored = stored_classic(args.classic_results, seed, args.smoke, y_digest)
                        if stored is not None:
                            try:
                                shown = args.classic_results.resolve().relative_to(ROOT).as_posix()
                            except ValueError:
                                shown = args.classic_results.name
                            row = {**classic_row(stored, reused_from=shown), "dataset": dataset, "seed": seed,
                                   "smoke": args.smoke, "y_test_digest": y_digest,
                                   "n_test": len(load_split(dataset, args.data)[5])}
                            save_result(args.out, row, key=KEY)
                            print(f"classic {dataset} seed {seed}: reused the stored run of vs_classic.py ({shown}): "
                                  f"{row['wall_time_s']:.1f} s, test MSE {row['test_mse']:.4f}", flush=True)
                            continue
                        print(f"classic {dataset} seed {seed}: no stored run in {args.classic_results.name}, "
                              "running it", flush=True)
                code = run_worker(__file__, ["--worker", tool, "--dataset", dataset, "--seed", str(seed),
                                             "--data", str(args.data.resolve()), "--out", str(args.out.resolve()),
                                             "--study", str(args.study.resolve())] + (["--smoke"] if args.smoke else []),
                                  f"{tool} {dataset} seed {seed}")
                if code:
                    failed.append(f"{tool} {dataset} seed {seed}")
    return finish(args.out, failed, report)


if __name__ == "__main__":
    sys.exit(main())
