"""Our study against scikit-learn's HistGradientBoostingRegressor (defaults) on UCI regression sets.

Data sets: kin8nm (8,192 rows), power-plant (9,568), concrete (1,030) and, with ``--protein``,
protein-tertiary-structure (45,730), from the shared data folder (``<repo>/../shared/data/uci/<name>/``:
``data.txt`` whitespace-separated without header, ``index_features.txt`` and ``index_target.txt`` with
0-based column indices). ``--data DIR`` points elsewhere; without the folder the script says so and exits 0.

For every (data set, seed), two runs, each in its own child process, one after the other:

* **hgb**: ``HistGradientBoostingRegressor(random_state=seed)`` fit on the training rows (the validation rows
  left out), and a second one fit on the training + validation rows; test RMSE of both.
* **ours**: ``run_study`` of the study file (``--study``, default ``studies/housing.yaml``) with its
  ``dataset`` section replaced by the UCI file (``source: csv``, ``sep: whitespace``, ``header: false``,
  target and features by index), MLflow tracking (SQLite store) and export included; test RMSE of the
  exported pipeline on the same test rows.

Both split the same way: ``train_test_split(test_size=0.25, random_state=42)`` for test, then again on the
rest for validation; the ours worker checks that the study's split holds exactly the baseline's rows.
The first seed of every data set runs first, so a run stopped early still compares something. Every
finished run is appended to ``results.jsonl``; ``--report`` rebuilds ``results.md`` and ``rmse_ratio.png``.

    python benchmarks/vs_gbdt.py --seeds 42 43 44 --out bench-vs-gbdt
    python benchmarks/vs_gbdt.py --report bench-vs-gbdt
    python benchmarks/vs_gbdt.py --smoke --out /tmp/smoke     # generated data, 2 trials, 2 epochs, seconds
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    DEFAULT_STUDY,
    ROOT,
    SMOKE_SEARCH,
    run_worker,
    save_figure,
    save_result,
    sqlite_uri,
    study_config,
    study_process,
    write_report,
)

DATASETS = ("kin8nm", "power-plant", "concrete")
BIG_DATASET = "protein-tertiary-structure"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
SPLIT = {"test_size": 0.25, "valid_size": 0.25, "seed": 42}
SMOKE_NAME = "smoke"
PLOT = "rmse_ratio.png"


# ------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class UCISet:
    """One UCI data set folder: ``data.txt`` and its column indices."""

    name: str
    folder: Path

    @property
    def data(self) -> Path:
        return self.folder / "data.txt"

    def missing(self) -> list[str]:
        """The files of the layout this folder lacks."""
        names = ("data.txt", "index_features.txt", "index_target.txt")
        return [n for n in names if not (self.folder / n).is_file()]

    @property
    def features(self) -> list[int]:
        return _indices(self.folder / "index_features.txt")

    @property
    def target(self) -> int:
        (index,) = _indices(self.folder / "index_target.txt")
        return index


def _indices(path: Path) -> list[int]:
    return [int(float(v)) for v in path.read_text().split()]


def baseline_split(ds: UCISet) -> dict:
    """X/y of train, valid and test read with NumPy, split as the study splits (float64)."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    table = np.loadtxt(ds.data, ndmin=2)
    X, y = table[:, ds.features], table[:, ds.target]
    seed, test_size, valid_size = SPLIT["seed"], SPLIT["test_size"], SPLIT["valid_size"]
    X_full, X_test, y_full, y_test = train_test_split(X, y, test_size=test_size, random_state=seed)
    X_train, X_valid, y_train, y_valid = train_test_split(X_full, y_full, test_size=valid_size, random_state=seed)
    return {"X_train": X_train, "X_valid": X_valid, "X_test": X_test,
            "y_train": y_train, "y_valid": y_valid, "y_test": y_test, "rows": len(y)}


def dataset_section(ds: UCISet) -> dict:
    """The study's ``dataset:`` section reading the UCI file as it is shipped."""
    return {"source": "csv", "path": str(ds.data.resolve()), "sep": "whitespace", "header": False,
            "target": ds.target, "keep": ds.features, "task": "regression", **SPLIT}


def write_smoke_data(folder: Path) -> UCISet:
    """A small generated regression set in the UCI layout (300 rows, 5 features), under the run's output."""
    import numpy as np
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=300, n_features=5, n_informative=4, noise=10.0, random_state=0)
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "data.txt", np.column_stack([X, y]), fmt="%.6f", delimiter=" ")
    (folder / "index_features.txt").write_text("".join(f"{i}\n" for i in range(X.shape[1])))
    (folder / "index_target.txt").write_text(f"{X.shape[1]}\n")
    return UCISet(SMOKE_NAME, folder)


def rmse(y_true, y_pred) -> float:
    import numpy as np

    diff = np.asarray(y_true, dtype="float64").ravel() - np.asarray(y_pred, dtype="float64").ravel()
    return float(np.sqrt(np.mean(diff**2)))


def digest(y) -> str:
    import hashlib

    import numpy as np

    return hashlib.sha256(np.asarray(y, dtype="float32").tobytes()).hexdigest()[:16]


def _common_fields(ds: UCISet, seed: int, base: dict) -> dict:
    return {"dataset": ds.name, "seed": seed, "rows": base["rows"], "n_train": len(base["y_train"]),
            "n_valid": len(base["y_valid"]), "n_test": len(base["y_test"]), "y_test_digest": digest(base["y_test"])}


# ------------------------------------------------------------------------------------------ baseline


def run_hgb(ds: UCISet, seed: int) -> dict:
    """HistGradientBoostingRegressor defaults, fit on the training rows, then on train + valid."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

    base = baseline_split(ds)
    started = time.perf_counter()
    model = HistGradientBoostingRegressor(random_state=seed).fit(base["X_train"], base["y_train"])
    fit_s = time.perf_counter() - started
    X_all = np.vstack([base["X_train"], base["X_valid"]])
    y_all = np.concatenate([base["y_train"], base["y_valid"]])
    started = time.perf_counter()
    model_all = HistGradientBoostingRegressor(random_state=seed).fit(X_all, y_all)
    fit_all_s = time.perf_counter() - started
    return {
        "method": "hgb", **_common_fields(ds, seed, base), "wall_time_s": fit_s,
        "valid_rmse": rmse(base["y_valid"], model.predict(base["X_valid"])),
        "test_rmse": rmse(base["y_test"], model.predict(base["X_test"])),
        "n_iter": int(model.n_iter_),
        "trainvalid_test_rmse": rmse(base["y_test"], model_all.predict(base["X_test"])),
        "trainvalid_wall_time_s": fit_all_s, "trainvalid_n_iter": int(model_all.n_iter_),
    }


# ------------------------------------------------------------------------------------ our study


def make_config(study: Path, ds: UCISet, smoke: bool):
    """The study file with the UCI set as its data (smoke: 2 trials of 2 epochs, no time limit)."""
    search, training = (SMOKE_SEARCH, {"epochs": 2}) if smoke else (None, None)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{Path(study).stem}-{ds.name}")
    return study_config(study, dataset=dataset_section(ds), search=search, training=training, name=name)


def check_same_split(split, base: dict) -> None:
    """The study's split (float32 targets, raw feature frame) holds exactly the baseline's rows."""
    import numpy as np

    for part in ("train", "valid", "test"):
        y_ours, y_base = np.asarray(getattr(split, f"y_{part}")), base[f"y_{part}"].astype("float32")
        X_ours = np.asarray(split.frame(part), dtype="float64")
        if not (np.array_equal(y_ours, y_base) and np.array_equal(X_ours, base[f"X_{part}"])):
            raise RuntimeError(f"the study's {part} rows differ from the baseline's split")


def run_ours(ds: UCISet, seed: int, smoke: bool, study: Path, workdir: Path) -> dict:
    study_process()
    from tuning.data.sources import load_dataset
    from tuning.export.files import load_model
    from tuning.study import run_study

    config = make_config(study, ds, smoke)
    base = baseline_split(ds)
    check_same_split(load_dataset(config.dataset), base)
    workdir.mkdir(parents=True, exist_ok=True)
    config = config.with_overrides(seed=seed, tracking_uri=sqlite_uri(workdir / "mlflow.db"),
                                   output_dir=workdir / "export")
    started = time.perf_counter()
    result = run_study(config, quiet=True, fresh=True)  # a new measurement, never the resumed study of an earlier run
    wall = time.perf_counter() - started
    scores = {"valid_rmse": None, "test_rmse": None}
    if result.best is not None and result.export_dir is not None:
        pipeline = load_model(result.export_dir)  # the exported model, on the baseline's own rows
        # the validation score of the trials' own models (the exported ones may have trained on those rows)
        valid_mse = (result.ensemble or {}).get("valid_mse", result.best.value)
        scores = {"valid_rmse": math.sqrt(valid_mse),
                  "test_rmse": rmse(base["y_test"], pipeline.predict(base["X_test"]))}
    return {
        "method": "ours", **_common_fields(ds, seed, base), "wall_time_s": wall, **scores,
        "study_test_rmse": result.test_metrics.get("rmse"),
        "best_params": result.best.params if result.best else {},
        "n_trials": len(result.records), "n_pruned": result.n_pruned, "n_complete": result.n_complete,
    }


# -------------------------------------------------------------------------------------- reporting


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str | None = None, none: str = "–") -> str:
    """``value`` formatted by ``spec``; by default fixed-point with 4 significant digits (0.08012, 24.00)."""
    if value is None:
        return none
    if spec is None:
        digits = 3 - math.floor(math.log10(abs(value))) if value else 3
        spec = f".{max(0, digits)}f"
    return format(value, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def per_dataset(results: list[dict]) -> list[dict]:
    """One summary per data set (smallest first): medians over seeds and the per-seed ratios."""
    names = sorted({r["dataset"] for r in results},
                   key=lambda n: min(r["rows"] for r in results if r["dataset"] == n))
    out = []
    for name in names:
        ours = {r["seed"]: r for r in results if r["dataset"] == name and r["method"] == "ours"}
        hgb = {r["seed"]: r for r in results if r["dataset"] == name and r["method"] == "hgb"}
        paired = [(s, _ratio(ours[s]["test_rmse"], hgb[s]["test_rmse"]),
                   _ratio(ours[s]["test_rmse"], hgb[s]["trainvalid_test_rmse"])) for s in sorted(ours) if s in hgb]
        out.append({
            "dataset": name, "rows": next(r["rows"] for r in results if r["dataset"] == name),
            "ours": ours, "hgb": hgb, "paired": paired,
            "ours_rmse": _median(r["test_rmse"] for r in ours.values()),
            "hgb_rmse": _median(r["test_rmse"] for r in hgb.values()),
            "hgb_all_rmse": _median(r["trainvalid_test_rmse"] for r in hgb.values()),
            "ratio": _median(p[1] for p in paired), "ratio_all": _median(p[2] for p in paired),
            "ours_wall": _median(r["wall_time_s"] for r in ours.values()),
            "hgb_wall": _median(r["wall_time_s"] for r in hgb.values()),
            "same_test_set": len({r["y_test_digest"] for r in [*ours.values(), *hgb.values()]}) == 1,
        })
    return out


def summarize(results: list[dict]) -> tuple[list[str], str]:
    """Printable lines (per run, per seed, medians) and the markdown report."""
    lines = []
    for r in sorted(results, key=lambda r: (r["dataset"], r["seed"], r["method"])):
        extra = (f"train+valid test RMSE {_fmt(r['trainvalid_test_rmse'])}  iterations {r['n_iter']}"
                 if r["method"] == "hgb" else f"trials {r['n_trials']} ({r['n_pruned']} pruned)  "
                 f"params {json.dumps(r['best_params'])}")
        lines.append(f"{r['method']:5s} {r['dataset']:28s} seed {r['seed']:<5d} wall {r['wall_time_s']:8.2f} s  "
                     f"valid RMSE {_fmt(r['valid_rmse'])}  test RMSE {_fmt(r['test_rmse'])}  {extra}")
    summary = per_dataset(results)
    table = ["| data set | rows | ours test RMSE | HGB test RMSE | ours / HGB | HGB train+valid test RMSE "
             "| ours wall (s) | HGB fit (s) | seeds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    runs = ["| data set | seed | ours valid RMSE | ours test RMSE | HGB test RMSE | ours / HGB "
            "| HGB train+valid test RMSE | ours / HGB train+valid | ours wall (s) | HGB fit (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in summary:
        for seed, ratio, ratio_all in d["paired"]:
            lines.append(f"ratio {d['dataset']:28s} seed {seed:<5d} test RMSE ours/HGB {_fmt(ratio, '.3f')}  "
                         f"ours/HGB(train+valid) {_fmt(ratio_all, '.3f')}")
            o, h = d["ours"][seed], d["hgb"][seed]
            runs.append(f"| {d['dataset']} | {seed} | {_fmt(o['valid_rmse'])} | {_fmt(o['test_rmse'])} | "
                        f"{_fmt(h['test_rmse'])} | {_fmt(ratio, '.3f')} | {_fmt(h['trainvalid_test_rmse'])} | "
                        f"{_fmt(ratio_all, '.3f')} | {o['wall_time_s']:.1f} | {h['wall_time_s']:.2f} |")
        lines.append(f"median {d['dataset']:27s} ours {_fmt(d['ours_rmse'])}  HGB {_fmt(d['hgb_rmse'])}  "
                     f"ratio {_fmt(d['ratio'], '.3f')}  HGB train+valid {_fmt(d['hgb_all_rmse'])}  "
                     f"({len(d['ours'])} runs of ours, {len(d['hgb'])} of HGB)")
        if not d["same_test_set"]:
            lines.append(f"WARNING: the runs on {d['dataset']} did not use the same test set")
        seeds = sorted(set(d["ours"]) | set(d["hgb"]))
        table.append(f"| {d['dataset']} | {d['rows']:,} | {_fmt(d['ours_rmse'])} | {_fmt(d['hgb_rmse'])} | "
                     f"{_fmt(d['ratio'], '.3f')} | {_fmt(d['hgb_all_rmse'])} | {_fmt(d['ours_wall'], '.1f')} | "
                     f"{_fmt(d['hgb_wall'], '.2f')} | {' '.join(map(str, seeds))} |")
    md = [*table, "",
          "Medians over the seeds; ours / HGB is the median of the per-seed ratios of test RMSE (HGB fit on the "
          "training rows, as our study trains; HGB train+valid also fit on the validation rows). Ours wall: the "
          "whole `run_study` (data loading, search, MLflow, refit/export, report); HGB fit: the `fit` call.",
          "", *runs]
    return lines, "\n".join(md) + "\n"


def plot(results: list[dict], out: Path) -> Path:
    """Bars: median test RMSE ratio ours / HGB per data set (both baselines); dots: the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = per_dataset(results)
    fig, ax = plt.subplots(figsize=(max(5.6, 1.6 + 1.6 * len(summary)), 4.4))
    width = 0.38
    for offset, key, index, label in ((-width / 2, "ratio", 1, "vs HGB (train rows)"),
                                      (width / 2, "ratio_all", 2, "vs HGB (train + valid rows)")):
        xs = [i + offset for i in range(len(summary))]
        heights = [d[key] or 0.0 for d in summary]
        bars = ax.bar(xs, heights, width=width * 0.95, label=label, alpha=0.75)
        for bar, d in zip(bars, summary, strict=True):
            if d[key] is not None:
                ax.annotate(f"{d[key]:.3f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            fontsize=7, ha="center", xytext=(0, 3), textcoords="offset points")
        for x, d in zip(xs, summary, strict=True):
            seeds = [p[index] for p in d["paired"] if p[index] is not None]
            ax.scatter([x] * len(seeds), seeds, color="black", s=10, zorder=3)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="equal test RMSE")
    ax.set_xticks(range(len(summary)), [f"{d['dataset']}\n({d['rows']:,} rows)" for d in summary], fontsize=8)
    ax.set(ylabel="test RMSE, ours / HGB (median; dots: seeds)", title="Our study vs HistGradientBoostingRegressor (defaults)")
    ax.legend(fontsize=8)
    return save_figure(fig, Path(out) / PLOT)


def report(out: Path) -> int:
    return write_report(out, summarize, plot)


# ------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", help="seeds of the runs (default 42 43 44; smoke: 42)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), metavar="NAME",
                   help=f"UCI folders to run (default: {' '.join(DATASETS)})")
    p.add_argument("--protein", action="store_true", help=f"also run {BIG_DATASET} (45,730 rows: long)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, metavar="DIR",
                   help="the shared data folder holding uci/<name>/ (default: ../shared/data next to the repo)")
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="study file whose dataset section is replaced")
    p.add_argument("--out", type=Path, default=Path("bench-vs-gbdt"))
    p.add_argument("--smoke", action="store_true", help="generated data, 2 trials of 2 epochs: checks it works")
    p.add_argument("--report", type=Path, metavar="DIR", help="only rebuild the table and plot from DIR")
    p.add_argument("--worker", choices=("hgb", "ours"), help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def available(args: argparse.Namespace) -> list[UCISet] | None:
    """The data sets to run, the missing ones skipped with a note; None when there is no data folder."""
    if args.smoke:
        return [write_smoke_data(args.out / "smoke-data" / "uci" / SMOKE_NAME)]
    uci = args.data / "uci"
    if not uci.is_dir():
        print(f"skipped: no UCI data folder at {uci} (give the shared data folder with --data DIR)")
        return None
    names = list(dict.fromkeys([*args.datasets, *([BIG_DATASET] if args.protein else [])]))
    found = []
    for name in names:
        ds = UCISet(name, uci / name)
        missing = ds.missing()
        if missing:
            print(f"skipped {name}: {ds.folder} lacks {', '.join(missing)}")
        else:
            found.append(ds)
    return found


def worker(args: argparse.Namespace) -> int:
    data = args.out / "smoke-data" if args.smoke else args.data
    ds = UCISet(args.dataset, data / "uci" / args.dataset)
    if args.worker == "hgb":
        result = run_hgb(ds, args.seed)
    else:
        workdir = args.out / "runs" / f"ours-{ds.name}-{args.seed}"
        result = run_ours(ds, args.seed, args.smoke, args.study, workdir)
    result["smoke"] = args.smoke
    save_result(args.out, result, key=("method", "dataset", "seed"))
    print(f"{result['method']} {ds.name} seed {args.seed}: {result['wall_time_s']:.1f} s, "
          f"test RMSE {_fmt(result['test_rmse'])}", flush=True)
    return 0


def main(argv=None) -> int:
    from tuning.errors import StudyError

    args = parse_args(argv)
    if args.report:
        return report(args.report)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if args.worker:
            return worker(args)
        datasets = available(args)
        if datasets is None:
            return 0
        if not datasets:
            print("nothing to run")
            return 0
        for ds in datasets:  # refuse a bad study file here, before any child starts
            make_config(args.study, ds, args.smoke)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seeds = args.seeds or ([42] if args.smoke else [42, 43, 44])
    for seed in seeds:
        for ds in datasets:
            for method in ("hgb", "ours"):
                code = run_worker(__file__, ["--worker", method, "--dataset", ds.name, "--seed", str(seed),
                                             "--data", str(args.data.resolve()), "--out", str(args.out.resolve()),
                                             "--study", str(args.study.resolve())] + (["--smoke"] if args.smoke else []),
                                  f"{method} {ds.name} seed {seed}")
                if code:
                    return code
    return report(args.out)


if __name__ == "__main__":
    sys.exit(main())
