"""What each quality lever of the default housing study is worth: the study with one lever taken out at a time.

Variants of ``studies/housing.yaml`` (same split, same seeds, each run in its own child process, one after
the other):

* ``default``: the study as shipped (periodic embeddings, dropout in the space, a plateau schedule, two
  worker processes, the exported model a greedy ensemble of the best trials retrained on training +
  validation rows). Its best trial's own model is scored on the test set too: that is the study
  **without the ensemble** (same trials), at no extra run.
* ``train-only``: ``export.train_on: train`` (the ensemble of the trials' own models, no retraining).
* ``one-worker``: ``search.workers: 1`` (trials one after the other in one process).
* ``no-embedding``: ``numeric_embedding: none`` (and ``frequency_scale`` out of the space).
* ``constant-lr``: ``lr_schedule: constant``.
* ``no-dropout``: ``dropout`` out of the space.
* ``adamw``: AdamW, with ``weight_decay`` tuned in 1e-4..0.1 (log).
* ``per-layer-widths``: ``n_neurons`` drawn per hidden layer (``per: n_hidden``: funnels and the like)
  instead of one width for all layers (a lever added, not taken out).
* ``lr-range-test``: ``search.lr_range_test: true`` (the learning-rate range test sets the space's
  learning-rate bounds first).
* ``cosine``: ``lr_schedule: cosine`` instead of plateau.
* ``robust-scaling``: ``preprocessing.scaling: robust`` (RealMLP's median / IQR scaling with smooth clipping to
  +-3) instead of quantile (a lever swapped).
* ``feature-scaling``: ``model.feature_scaling: true`` (RealMLP's trainable per-feature scale, first layer; a
  lever added).
* ``cosine+feature-scaling``: both of the two above (the levers that paid alone, together).
* ``plain``: ``studies/housing_plain.yaml``, the default before the levers (plain MLP, best trial alone).
* ``plain+ensemble``: the same with the default's ensemble.

    SCIKIT_LEARN_DATA=... python benchmarks/levers.py --seeds 42 --out bench-levers
    python benchmarks/levers.py --report bench-levers
    python benchmarks/levers.py --smoke --out /tmp/levers   # diabetes data, 2 trials of 2 epochs

Writes ``results.jsonl`` (one line per run) and ``results.md`` (median test MSE and wall time per variant,
and the change against ``default``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import (
    DEFAULT_STUDY,
    ROOT,
    SMOKE_DATASET,
    SMOKE_SEARCH,
    run_worker,
    save_result,
    write_report,
)
from vs_classic import _fmt, _median, run_ours

PLAIN_STUDY = ROOT / "studies" / "housing_plain.yaml"
VARIANTS = ("default", "train-only", "one-worker", "no-embedding", "constant-lr", "no-dropout", "adamw",
            "per-layer-widths", "lr-range-test", "cosine", "robust-scaling", "feature-scaling",
            "cosine+feature-scaling", "plain",
            "plain+ensemble")


def variant_config(name: str, study: Path, smoke: bool):
    """The study config of variant ``name`` (see the module docstring)."""
    from tuning.config.schema import load_study, load_study_dict

    default = load_study(study).model_dump(exclude_unset=True)
    data = load_study(PLAIN_STUDY).model_dump(exclude_unset=True) if name.startswith("plain") else default
    if name == "no-embedding":
        data["model"] = {**data.get("model", {}), "numeric_embedding": "none"}
        data["space"].pop("frequency_scale", None)
    elif name == "constant-lr":
        data["model"] = {**data.get("model", {}), "lr_schedule": "constant"}
    elif name == "cosine":
        data["model"] = {**data.get("model", {}), "lr_schedule": "cosine"}
    elif name == "robust-scaling":
        data["preprocessing"] = {**data.get("preprocessing", {}), "scaling": "robust"}
    elif name == "feature-scaling":
        data["model"] = {**data.get("model", {}), "feature_scaling": True}
    elif name == "cosine+feature-scaling":
        data["model"] = {**data.get("model", {}), "lr_schedule": "cosine", "feature_scaling": True}
    elif name == "no-dropout":
        data["space"].pop("dropout", None)
    elif name == "adamw":
        data["model"] = {**data.get("model", {}), "optimizer": "adamw"}
        data["space"]["weight_decay"] = {"type": "float", "low": 1e-4, "high": 0.1, "log": True}
    elif name == "per-layer-widths":
        data["space"]["n_neurons"] = {**data["space"]["n_neurons"], "per": "n_hidden"}
    elif name == "train-only":
        data["export"] = {**data.get("export", {}), "train_on": "train"}
    elif name == "one-worker":
        data["search"] = {**data.get("search", {}), "workers": 1}
    elif name == "lr-range-test":
        data["search"] = {**data.get("search", {}), "lr_range_test": True}
    elif name == "plain+ensemble":
        data["export"] = {**data.get("export", {}), "ensemble": default.get("export", {}).get("ensemble", {})}
    if smoke:
        data["dataset"] = dict(SMOKE_DATASET)
        search = {**data.get("search", {}), **SMOKE_SEARCH}
        data["search"] = {key: value for key, value in search.items() if value is not None}  # None removes
        data["training"] = {**data.get("training", {}), "epochs": 2}
    data["name"] = f"{data['name']}-{name}".replace("+", "-")
    return load_study_dict(data, source=f"{study.name} ({name})")


def summarize(results: list[dict]) -> tuple[list[str], str]:
    """Printable lines and the markdown table: per variant, median test MSE and wall time over seeds."""
    by_variant: dict[str, list[dict]] = {}
    for r in results:
        by_variant.setdefault(r["variant"], []).append(r)
    rows = []
    default = by_variant.get("default", [])
    base_mse = _median([r["test_mse"] for r in default])
    base_time = _median([r["wall_time_s"] for r in default])
    if default:
        rows.append(("default without the ensemble (its best trial)",
                     _median([r.get("best_trial_test_mse") for r in default]), base_time, len(default)))
    for name in VARIANTS:
        runs = by_variant.get(name, [])
        if runs:
            rows.append((name, _median([r["test_mse"] for r in runs]), _median([r["wall_time_s"] for r in runs]),
                         len(runs)))
    lines, md = [], ["| variant | median test MSE | vs default | median wall (s) | vs default | runs |",
                     "|---|---:|---:|---:|---:|---:|"]
    for name, test, wall, n in rows:
        d_mse = None if test is None or base_mse is None else test - base_mse
        d_time = None if wall is None or not base_time else wall / base_time
        lines.append(f"{name:48s} test MSE {_fmt(test, '.4f')} ({_fmt(d_mse, '+.4f')})  wall {_fmt(wall, '.0f')} s "
                     f"({_fmt(d_time, '.2f')}x)  runs {n}")
        md.append(f"| {name} | {_fmt(test, '.4f')} | {_fmt(d_mse, '+.4f')} | {_fmt(wall, '.0f')} | "
                  f"{_fmt(d_time, '.2f')}x | {n} |")
    return lines, "\n".join(md) + "\n"


def report(out: Path) -> int:
    return write_report(out, summarize)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    p.add_argument("--out", type=Path, default=Path("bench-levers"))
    p.add_argument("--smoke", action="store_true", help="diabetes data, 2 trials of 2 epochs: checks it works")
    p.add_argument("--report", type=Path, metavar="DIR", help="only rebuild the table from DIR")
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.report:
        return report(args.report)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        config = variant_config(args.worker, args.study, args.smoke)
        result = run_ours(args.seed, args.smoke, args.study, args.out / "runs" / f"{args.worker}-{args.seed}",
                          config=config)
        # save_result keys runs by (method, seed): the variant is the method here
        result.update(method=args.worker, variant=args.worker, smoke=args.smoke)
        save_result(args.out, result)
        print(f"{args.worker} seed {args.seed}: {result['wall_time_s']:.1f} s, test MSE {_fmt(result['test_mse'])}",
              flush=True)
        return 0
    for name in args.variants:
        for seed in args.seeds:
            code = run_worker(__file__, ["--worker", name, "--seed", str(seed), "--out", str(args.out),
                                         "--study", str(args.study)] + (["--smoke"] if args.smoke else []),
                              f"{name} seed {seed}")
            if code:
                return code
    return report(args.out)


if __name__ == "__main__":
    sys.exit(main())
