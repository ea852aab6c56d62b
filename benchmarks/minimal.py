"""A minimal study (``name`` + ``dataset`` only: the table recipe) against HistGradientBoosting, on tables.

What a new user writes for their own table is a name and the file. This runs exactly that study, per table
and seed (``--seed`` as the command line overrides ``search.seed``; the split is the study's default), and
scikit-learn's HistGradientBoosting with its defaults and native categoricals
(``categorical_features="from_dtype"``) fitted on the same training + validation rows and scored on the
same test rows; and HistGradientBoosting tuned as hard as ours (``hgb-tuned``: 50 Optuna TPE trials over
``learning_rate``, ``max_leaf_nodes``, ``min_samples_leaf`` and ``l2_regularization``, each fitted on the
study's training rows and scored on its validation rows (RMSE, or log loss), the best refitted on training +
validation rows and scored on the same test rows). Each run is a child process, one after the other.

Tables: the shared UCI regression sets (concrete, kin8nm, power-plant; protein-tertiary-structure with
``--protein``) as shipped (whitespace-separated, no header), the shared cereal CSV (target ``rating``),
credit-g and ionosphere ARFF (targets ``Customer`` and ``Class``), and two tables pip packages ship (the benchmark extra):
palmerpenguins' ``penguins.csv`` (target ``body_mass_g``: categorical columns, missing values) and
vega_datasets' ``cars.json`` (target ``Miles_per_Gallon``: a categorical origin, missing values, a name
column and ISO dates; written to a CSV under ``--out`` as pandas reads the JSON). A table whose file is
absent is skipped with the reason.

Score: regression test RMSE, classification test accuracy; the ratio ours / HGB is RMSE ours / RMSE HGB,
or accuracy HGB / accuracy ours (1/accuracy), lower is better: below 1 the minimal study wins (the same for
ours / tuned HGB). ``--members K`` fixes ``model.members`` in the study, ``--model KEY=VALUE ...`` any other
``model`` setting (``--model feature_scaling=true lr_schedule=cosine``) and ``--trials N`` its number of
trials (issue 36's levers measured alone: one ``--out`` per setting). The table
gives medians over the seeds and each table's wall time (the whole study: loading, search, MLflow,
ensemble retraining, export, report).

    python benchmarks/minimal.py --seeds 42 43 44 --out bench-minimal
    python benchmarks/minimal.py --tables cereal penguins --seeds 42
    python benchmarks/minimal.py --report bench-minimal
    python benchmarks/minimal.py --tables concrete kin8nm --seeds 42 43 --members 8 --trials 6 --out bench-k8
    python benchmarks/minimal.py --smoke --out /tmp/minimal-smoke   # diabetes as a CSV, 2 trials of 2 epochs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _common import (
    ROOT,
    SMOKE_SEARCH,
    finish,
    run_worker,
    save_figure,
    save_result,
    sqlite_uri,
    study_process,
    write_report,
)

DATA = ROOT.parent / "shared" / "data"
UCI = ("concrete", "kin8nm", "power-plant")
BIG = "protein-tertiary-structure"
TABLES = (*UCI, "cereal", "credit-g", "ionosphere", "penguins", "cars")
SMOKE_TABLE = "smoke"
KEY = ("tool", "table", "seed")
TOOLS = ("hgb", "hgb-tuned", "ours")
HGB_TRIALS, SMOKE_HGB_TRIALS = 50, 3
PLOT = "ratio.png"


# ------------------------------------------------------------------------------------------ tables


def dataset_section(table: str, data: Path, out: Path) -> dict | str:
    """The minimal study's ``dataset:`` section for ``table`` (what a user writes to read the file), or why
    the table is not here."""
    if table in (*UCI, BIG):
        folder = data / "uci" / table
        if not (folder / "data.txt").is_file():
            return f"{folder / 'data.txt'} not found"
        (target,) = (int(float(v)) for v in (folder / "index_target.txt").read_text().split())
        return {"source": "csv", "path": str(folder / "data.txt"), "sep": "whitespace", "header": False,
                "target": target}
    shared = {"cereal": ("tabular/cereal.csv", "csv", "rating"),
              "credit-g": ("tabular/credit-g.arff", "arff", "Customer"),
              "ionosphere": ("tabular/ionosphere.arff", "arff", "Class")}
    if table in shared:
        name, source, target = shared[table]
        path = data / name
        return {"source": source, "path": str(path), "target": target} if path.is_file() else f"{path} not found"
    try:
        path = pip_table(table, out)
    except ImportError as exc:
        return f"{exc.name} not installed (pip install -e \".[bench]\")"
    target = {"penguins": "body_mass_g", "cars": "Miles_per_Gallon", SMOKE_TABLE: "target"}[table]
    return {"source": "csv", "path": str(path), "target": target}


def pip_table(table: str, out: Path) -> Path:
    """The file of a table a pip package ships (cars: its JSON written as CSV under ``out``)."""
    if table == "penguins":
        import palmerpenguins

        return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
    import pandas as pd

    path = out / "data" / f"{table}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if table == "cars":
        import vega_datasets

        records = json.loads((Path(vega_datasets.__file__).parent / "_data" / "cars.json").read_text())
        frame = pd.DataFrame.from_records(records)  # as shipped: dates stay ISO text, missing values None
    else:  # the smoke table: scikit-learn's diabetes rows as a CSV
        from sklearn.datasets import load_diabetes

        frame = load_diabetes(as_frame=True).frame
    frame.to_csv(path, index=False)
    return path


def study(table: str, seed: int, section: dict, out: Path, smoke: bool, members: int | None = None,
          trials: int | None = None, model: dict | None = None):
    """The minimal study of ``table``: name and dataset, ``--seed`` and where its files go (as the command
    line's options would set them; ``members``: ``model.members``, ``model``: other ``model`` settings,
    ``trials``: ``--n-trials``); smoke: 2 trials of 2 epochs in one process."""
    from tuning.config.schema import load_study_dict

    data = {"name": f"minimal-{table}", "dataset": section}
    if members is not None or model:
        data["model"] = {**(model or {}), **({} if members is None else {"members": members})}
    if smoke:
        data.update(search=dict(SMOKE_SEARCH), training={"epochs": 2})
    run_dir = out / "runs" / f"{table}-{seed}"
    return load_study_dict(data).with_overrides(seed=seed, output_dir=str(run_dir / "export"), n_trials=trials,
                                                tracking_uri=sqlite_uri(run_dir / "mlflow.db"))


def score_name(task: str) -> str:
    return "rmse" if task == "regression" else "accuracy"


# ------------------------------------------------------------------------------------------ runs


def run_ours(table: str, seed: int, section: dict, out: Path, smoke: bool, members=None, trials=None,
             model=None) -> dict:
    study_process()
    from tuning.study import run_study

    config = study(table, seed, section, out, smoke, members, trials, model)
    started = time.perf_counter()
    result = run_study(config, quiet=True, fresh=True)
    wall = time.perf_counter() - started
    metrics = json.loads((config.export_dir / "metrics.json").read_text())
    facts = json.loads((config.export_dir / "recipe.json").read_text())
    task = "regression" if "rmse" in result.test_metrics else "classification"
    name = score_name(task)
    return {"tool": "ours", "score_name": name, "score": result.test_metrics[name], "wall_time_s": wall,
            "task": task, "rows": facts["rows"], "columns": facts["columns"], "n_trials": len(result.records),
            "ensemble_members": len((result.ensemble or {}).get("members", [])) or 1, "members": members or 1,
            **({"model": model} if model else {}),
            "in_run_baseline": metrics.get("baseline", {}).get("test", {}).get(name)}


def hgb_frames(fit, test):
    """The feature columns as a user hands them to HistGradientBoosting: numbers as they are, text as
    pandas categories with the fitted rows' categories (native categorical splits; unseen ones missing),
    dates as days since 1970. Left out: ID-like text columns (the study drops them too) and text columns
    with more categories than HistGradientBoosting's 255 bins (it refuses them)."""
    import pandas as pd

    from tuning.data.preprocessing import column_kinds

    fit, test = fit.rename(columns=str), test.rename(columns=str)
    kinds = column_kinds(fit)  # decided on the fitted rows, applied to both
    out_fit, out_test = {}, {}
    for name in fit.columns:
        if name in kinds["numeric"] or name in kinds["boolean"]:
            for out, frame in ((out_fit, fit), (out_test, test)):
                out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        elif name in kinds["datetime"]:
            for out, frame in ((out_fit, fit), (out_test, test)):
                out[name] = (pd.to_datetime(frame[name], errors="coerce") - pd.Timestamp(0)).dt.days.astype("float64")
        elif name in kinds["categorical"]:
            def text(col):  # missing stays missing, not a category of its own
                return col.map(lambda v: None if pd.isna(v) else str(v))

            fitted = pd.Categorical(text(fit[name]))
            if len(fitted.categories) <= 255:
                out_fit[name] = fitted
                seen = text(test[name])  # a category the fitted rows never had: missing (pandas refuses it)
                out_test[name] = pd.Categorical(seen.where(seen.isin(fitted.categories)), categories=fitted.categories)
    return pd.DataFrame(out_fit, index=fit.index), pd.DataFrame(out_test, index=test.index)


def run_hgb(table: str, seed: int, section: dict, out: Path, smoke: bool, tuned: bool = False, **_) -> dict:
    """HistGradientBoosting on the study's split: its defaults fitted on training + validation rows, or
    (``tuned``) the best of Optuna TPE trials on the validation rows, refitted there; scored on the test rows."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import accuracy_score, log_loss

    from tuning.data.sources import load_dataset

    split = load_dataset(study(table, seed, section, out, smoke).dataset)
    X_fit, X_test = hgb_frames(pd.concat([split.frame("train"), split.frame("valid")]), split.frame("test"))
    y_fit = np.concatenate([split.y_train, split.y_valid])
    regression = split.task == "regression"
    cls = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    started = time.perf_counter()
    params, n_trials = {}, 0
    if tuned:
        import optuna

        X_train, X_valid = hgb_frames(split.frame("train"), split.frame("valid"))

        def objective(trial) -> float:
            model = cls(categorical_features="from_dtype", random_state=seed,
                        learning_rate=trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
                        max_leaf_nodes=trial.suggest_int("max_leaf_nodes", 4, 128, log=True),
                        min_samples_leaf=trial.suggest_int("min_samples_leaf", 2, 100, log=True),
                        l2_regularization=trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True))
            model.fit(X_train, split.y_train)
            if regression:
                return float(np.sqrt(np.mean((np.asarray(split.y_valid, "float64") - model.predict(X_valid)) ** 2)))
            return float(log_loss(split.y_valid, model.predict_proba(X_valid), labels=model.classes_))

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        search = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        n_trials = SMOKE_HGB_TRIALS if smoke else HGB_TRIALS
        search.optimize(objective, n_trials=n_trials)
        params = search.best_params
    model = cls(categorical_features="from_dtype", random_state=seed, **params).fit(X_fit, y_fit)
    fit_s = time.perf_counter() - started
    predicted = model.predict(X_test)
    if regression:
        score = float(np.sqrt(np.mean((np.asarray(split.y_test, "float64") - predicted) ** 2)))
    else:
        score = float(accuracy_score(split.y_test, predicted))
    return {"tool": "hgb-tuned" if tuned else "hgb", "score_name": score_name(split.task),
            "score": score, "wall_time_s": fit_s, "task": "regression" if regression else "classification",
            "rows": len(split.y_train), "columns": X_fit.shape[1], "n_trials": n_trials, "params": params}


# ------------------------------------------------------------------------------------------ report


def ratio(ours: dict, hgb: dict) -> float:
    """Lower is better: RMSE ours / HGB, or accuracy HGB / ours."""
    if ours["score_name"] == "rmse":
        return ours["score"] / hgb["score"]
    return hgb["score"] / ours["score"]


def pairs(results: list[dict]) -> dict[str, list[tuple[dict, dict]]]:
    """Per table, the (ours, hgb) rows of each seed that has both."""
    return {table: [(o, h) for o, h, _ in rows] for table, rows in triples(results).items()}


def triples(results: list[dict]) -> dict[str, list[tuple[dict, dict, dict | None]]]:
    """Per table, the (ours, hgb, tuned hgb or None) rows of each seed that has ours and hgb."""
    by_key = {(r["tool"], r["table"], r["seed"]): r for r in results}
    out: dict[str, list[tuple[dict, dict, dict | None]]] = {}
    for (tool, table, seed), row in sorted(by_key.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if tool == "ours" and ("hgb", table, seed) in by_key:
            out.setdefault(table, []).append((row, by_key[("hgb", table, seed)],
                                              by_key.get(("hgb-tuned", table, seed))))
    return out


def _median_text(values: list[float], fmt: str) -> str:
    return format(statistics.median(values), fmt) if values else "-"


def summarize(results: list[dict]) -> tuple[list[str], str]:
    header = ("| table | task | training rows | columns | score | ours (median) | HGB (median) | ours / HGB "
              "(median) | tuned HGB (median) | ours / tuned HGB (median) | wins | wins vs tuned | ours wall (s, "
              "median) | HGB fit (s) | tuned HGB (s) | seeds |")
    lines = [header, "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|"]
    beaten, behind, beaten_tuned, tuned_tables = [], [], [], 0
    for table, rows in triples(results).items():
        ours = rows[0][0]
        ratios = [ratio(o, h) for o, h, _ in rows]
        tuned = [(o, t) for o, _, t in rows if t is not None]
        tuned_ratios = [ratio(o, t) for o, t in tuned]
        median_ratio = statistics.median(ratios)
        (beaten if median_ratio < 1 else behind).append(table)
        tuned_tables += bool(tuned)
        if tuned_ratios and statistics.median(tuned_ratios) < 1:
            beaten_tuned.append(table)
        tuned_ratio = f"**{statistics.median(tuned_ratios):.3f}**" if tuned_ratios else "-"
        lines.append(
            f"| {table} | {ours['task']} | {ours['rows']:,} | {ours['columns']} | test {ours['score_name']} | "
            f"{statistics.median(o['score'] for o, _, _ in rows):.4g} | "
            f"{statistics.median(h['score'] for _, h, _ in rows):.4g} | **{median_ratio:.3f}** | "
            f"{_median_text([t['score'] for _, t in tuned], '.4g')} | {tuned_ratio} | "
            f"{sum(r < 1 for r in ratios)}/{len(ratios)} | {sum(r < 1 for r in tuned_ratios)}/{len(tuned_ratios)} | "
            f"{statistics.median(o['wall_time_s'] for o, _, _ in rows):.0f} | "
            f"{statistics.median(h['wall_time_s'] for _, h, _ in rows):.2f} | "
            f"{_median_text([t['wall_time_s'] for _, t in tuned], '.1f')} | "
            f"{' '.join(str(o['seed']) for o, _, _ in rows)} |")
    verdict = (f"The minimal study beats HistGradientBoosting (median ratio below 1) on {len(beaten)} of "
               f"{len(beaten) + len(behind)} tables" + (f"; not on: {', '.join(behind)}." if behind else "."))
    if tuned_tables:
        verdict += (f" It beats tuned HistGradientBoosting on {len(beaten_tuned)} of {tuned_tables} tables"
                    + (f" ({', '.join(beaten_tuned)})." if beaten_tuned else "."))
    lines += ["", verdict]
    md = "\n".join(lines) + (
        "\n\nOurs: a study file with only `name` and `dataset` (the table recipe, sized by the rows), `--seed` "
        "per seed. HGB: HistGradientBoosting defaults with native categoricals, fitted on the training + "
        "validation rows of the same split. Tuned HGB: the best of 50 Optuna TPE trials (learning_rate, "
        "max_leaf_nodes, min_samples_leaf, l2_regularization) on the validation rows, refitted on training + "
        "validation rows. Ratio: test RMSE ours / HGB, or accuracy HGB / ours; below 1 ours wins. Wall: the whole study (loading, search, MLflow, retraining, export, report).\n")
    return lines, md


def plot(results: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = triples(results)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(data) + 1.5))
    for i, rows in enumerate(data.values()):
        ratios = [ratio(o, h) for o, h, _ in rows]
        ax.scatter(ratios, [i] * len(ratios), color="tab:blue", alpha=0.6, label="vs HGB defaults" if not i else None)
        ax.scatter([statistics.median(ratios)], [i], color="black", marker="|", s=300)
        tuned = [ratio(o, t) for o, _, t in rows if t is not None]
        ax.scatter(tuned, [i - 0.2] * len(tuned), color="tab:orange", marker="x", label="vs tuned HGB" if not i else None)
    ax.axvline(1.0, color="tab:red", linestyle="--", label="HistGradientBoosting")
    ax.set_yticks(range(len(data)), list(data))
    ax.set_xlabel("test RMSE (or 1/accuracy), ours / HGB: below 1 ours wins (dots: seeds, bar: median)")
    ax.set_title("a minimal study (name + dataset) against HistGradientBoosting")
    ax.legend(loc="lower right")
    return save_figure(fig, Path(out) / PLOT)


def report(out: Path) -> int:
    return write_report(out, summarize, plot)


# ------------------------------------------------------------------------------------------ main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[42], help="search seeds (default 42)")
    p.add_argument("--tables", nargs="+", choices=(*TABLES, BIG), metavar="NAME",
                   help=f"tables to run (default: {' '.join(TABLES)})")
    p.add_argument("--protein", action="store_true", help=f"also {BIG} (45,730 rows)")
    p.add_argument("--data", type=Path, default=DATA, metavar="DIR", help="the shared data folder (uci/, tabular/)")
    p.add_argument("--out", type=Path, default=Path("bench-minimal"))
    p.add_argument("--smoke", action="store_true", help="diabetes as a CSV, 2 trials of 2 epochs: checks it works")
    p.add_argument("--report", type=Path, metavar="DIR", help="only rebuild the table and plot from DIR")
    p.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS), help="what runs (default: all)")
    p.add_argument("--members", type=int, help="model.members of the study (default: the recipe's, 1)")
    p.add_argument("--trials", type=int, help="the study's number of trials (default: the recipe's)")
    p.add_argument("--model", nargs="+", default=[], metavar="KEY=VALUE",
                   help="model settings of the study, each a YAML value (feature_scaling=true)")
    p.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    p.add_argument("--table", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def model_settings(pairs: list[str]) -> dict:
    """``["feature_scaling=true", ...]`` -> ``{"feature_scaling": True, ...}`` (each value read as YAML)."""
    import yaml

    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--model {pair}: expected KEY=VALUE")
        settings[key] = yaml.safe_load(value)
    return settings


def worker(args: argparse.Namespace) -> int:
    section = dataset_section(args.table, args.data, args.out)
    if args.worker == "ours":
        run = run_ours(args.table, args.seed, section, args.out, args.smoke, args.members, args.trials,
                       model_settings(args.model))
    else:
        run = run_hgb(args.table, args.seed, section, args.out, args.smoke, tuned=args.worker == "hgb-tuned")
    result = {**run, "table": args.table, "seed": args.seed, "smoke": args.smoke}
    save_result(args.out, result, key=KEY)
    print(f"{args.worker} {args.table} seed {args.seed}: test {result['score_name']} {result['score']:.4g}, "
          f"{result['wall_time_s']:.1f} s", flush=True)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        return worker(args)
    tables = [SMOKE_TABLE] if args.smoke else (args.tables or [*TABLES, *([BIG] if args.protein else [])])
    failed = []
    for seed in args.seeds:  # every table's first seed first: a run stopped early still compares them all
        for table in tables:
            section = dataset_section(table, args.data, args.out)
            if isinstance(section, str):
                if seed == args.seeds[0]:
                    print(f"skipped {table}: {section}")
                continue
            for tool in args.tools:
                options = [f"--{name}={value}" for name, value in (("members", args.members), ("trials", args.trials))
                           if value is not None and tool == "ours"]
                options += ["--model", *args.model] if args.model and tool == "ours" else []
                code = run_worker(__file__, ["--worker", tool, "--table", table, "--seed", str(seed),
                                             "--data", str(args.data.resolve()), "--out", str(args.out), *options]
                                  + (["--smoke"] if args.smoke else []), f"{tool} {table} seed {seed}")
                if code:
                    failed.append(f"{tool} {table} seed {seed}")
    return finish(args.out, failed, report)


if __name__ == "__main__":
    sys.exit(main())
