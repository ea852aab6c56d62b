"""Stacked trials (``search.stack``) against one trial at a time: trials per minute and test MSE of a study.

For every (stack size, seed), ``run_study`` of the study file (``--study``, default
``studies/housing_plain.yaml``) with ``search.stack`` set to that size and ``search.seed`` to the seed, in its
own child process (a fresh TensorFlow, nothing shared), one run after the other; MLflow tracking (a SQLite
store) and the export included, ``--fresh`` (a new measurement, never a resumed study). Measured: the
search's trials per minute (counted trials over the whole ``run_study`` wall time, and over the search alone:
the span of the trials' start and end times), the exported model's test MSE (the study's own test rows), the
best trial's validation MSE and how many trials were pruned. Stack 1 first, so a run stopped early still
compares something. Every finished run is appended to ``results.jsonl``; ``--report`` rebuilds ``results.md``
(medians over seeds per stack size and variant, and the speed-up against stack 1).

``--variants`` measures the stacking loop's two choices side by side (each stack size > 1 runs once per
variant): ``width`` (the default: a stack takes only members whose widths round to the same padded width, a
freed slot refilled), ``pad`` (members of one depth padded to the widest) and ``idle`` (padded, a freed slot
stays idle until the stack's last member ends). Stack 1 runs once, recorded under ``pad``.

    python benchmarks/stacked.py --stacks 1 4 8 --seeds 42 43 44 --out bench-stacked
    python benchmarks/stacked.py --stacks 1 4 --variants pad width idle --out bench-stacked-variants
    python benchmarks/stacked.py --report bench-stacked
    python benchmarks/stacked.py --smoke --out /tmp/smoke     # diabetes, 4 trials of 2 epochs, stack 1 and 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _common import (
    DEFAULT_STUDY,
    ROOT,
    run_worker,
    save_result,
    sqlite_uri,
    study_config,
    study_process,
    write_report,
)

STUDY = DEFAULT_STUDY.parent / "housing_plain.yaml"
SMOKE_TRIALS, SMOKE_EPOCHS, SMOKE_STACKS = 4, 2, (1, 2)
#: variant -> the StackedTrials class settings it runs with (see tuning.search.schedulers.stacking.StackedTrials)
VARIANTS = {"pad": {"refill_slots": True, "by_width": False},
            "width": {"refill_slots": True, "by_width": True},
            "idle": {"refill_slots": False, "by_width": False}}


def make_config(study: Path, stack: int, smoke: bool, n_trials: int | None = None, timeout: float | None = None):
    """The study file with ``search.stack`` (smoke: the diabetes data, a few short trials, no time limit),
    and ``n_trials`` / ``timeout`` (seconds of search) when given."""
    search = {"stack": stack, "workers": 1}
    training = None
    if smoke:
        search.update(n_trials=SMOKE_TRIALS, timeout=None)
        training = {"epochs": SMOKE_EPOCHS}
    if n_trials:
        search["n_trials"] = n_trials
    if timeout:
        search["timeout"] = timeout
    return study_config(study, smoke=smoke, search=search, training=training,
                        name=f"{Path(study).stem}-stack{stack}")


def run_one(study: Path, stack: int, seed: int, smoke: bool, workdir: Path, variant: str = "width",
            n_trials: int | None = None, timeout: float | None = None) -> dict:
    """One study run in this (child) process: its measurements."""
    study_process()
    from tuning.search.schedulers.stacking import StackedTrials
    from tuning.study import run_study

    workdir.mkdir(parents=True, exist_ok=True)
    config = make_config(study, stack, smoke, n_trials, timeout).with_overrides(
        seed=seed, tracking_uri=sqlite_uri(workdir / "mlflow.db"), output_dir=workdir / "export")
    defaults = {name: getattr(StackedTrials, name) for name in VARIANTS[variant]}
    try:  # a smoke run shares its process with its caller: the class is put back as it was
        for name, value in VARIANTS[variant].items():
            setattr(StackedTrials, name, value)
        started = time.perf_counter()
        result = run_study(config, quiet=True, fresh=True)
        wall = time.perf_counter() - started
    finally:
        for name, value in defaults.items():
            setattr(StackedTrials, name, value)
    records = result.records
    ends = [r.started_at + r.duration_s for r in records]
    search_s = (max(ends) - min(r.started_at for r in records)) if records else None
    return {
        "stack": stack, "variant": variant, "seed": seed, "smoke": smoke, "study": Path(study).name,
        "n_trials": len(records), "n_pruned": result.n_pruned, "n_complete": result.n_complete,
        "wall_time_s": wall, "search_s": search_s,
        "trials_per_min": 60.0 * len(records) / wall if wall else None,
        "search_trials_per_min": 60.0 * len(records) / search_s if search_s else None,
        "test_mse": result.test_metrics.get("mse"),
        "valid_mse": result.best.value if result.best else None,
        "best_params": result.best.params if result.best else {},
    }


# -------------------------------------------------------------------------------------- reporting


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str = ".4g") -> str:
    return "–" if value is None else format(value, spec)


def summarize(results: list[dict]) -> tuple[list[str], str]:
    """Printable lines (per run, per stack size) and the markdown report."""
    for r in results:
        r.setdefault("variant", "pad")  # runs from before the variants
    lines = [f"stack {r['stack']:<3d} {r['variant']:<5s} seed {r['seed']:<5d} trials {r['n_trials']} ({r['n_pruned']} pruned)  "
             f"wall {r['wall_time_s']:.1f} s  {_fmt(r['trials_per_min'], '.2f')} trials/min "
             f"(search {_fmt(r['search_trials_per_min'], '.2f')})  test MSE {_fmt(r['test_mse'])}"
             for r in sorted(results, key=_order)]
    rows = sorted({(r["stack"], r["variant"]) for r in results}, key=lambda row: _order({"stack": row[0], "variant": row[1]}))
    per = {row: [r for r in results if (r["stack"], r["variant"]) == row] for row in rows}
    base = _median(r["search_trials_per_min"] for r in results if r["stack"] == 1)
    table = ["| stack | variant | runs | trials/min (whole run) | trials/min (search) | speed-up (search) "
             "| test MSE (median) | best valid MSE (median) | pruned / trials | seeds |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s, variant in rows:
        runs = per[s, variant]
        shown = "–" if s == 1 else variant
        speed = _median(r["search_trials_per_min"] for r in runs)
        ratio = speed / base if speed and base else None
        pruned, trials = sum(r["n_pruned"] for r in runs), sum(r["n_trials"] for r in runs)
        table.append(f"| {s} | {shown} | {len(runs)} | {_fmt(_median(r['trials_per_min'] for r in runs), '.2f')} | "
                     f"{_fmt(speed, '.2f')} | {_fmt(ratio, '.2f')} | {_fmt(_median(r['test_mse'] for r in runs))} | "
                     f"{_fmt(_median(r['valid_mse'] for r in runs))} | {pruned} / {trials} | "
                     f"{' '.join(str(r['seed']) for r in sorted(runs, key=lambda r: r['seed']))} |")
        lines.append(f"median stack {s} {shown}: {_fmt(speed, '.2f')} trials/min in the search "
                     f"(x{_fmt(ratio, '.2f')} stack 1), test MSE {_fmt(_median(r['test_mse'] for r in runs))}")
    smoke = any(r.get("smoke") for r in results)
    md = [*table, "",
          "Medians over the seeds. Trials/min (whole run): counted trials over the whole `run_study` (data, "
          "search, MLflow, export, report); (search): over the span from the first trial's start to the last "
          "one's end; speed-up against stack 1. Test MSE: the exported model on the study's test rows. Variant: "
          "pad (members of one depth padded to the widest, freed slots refilled), width (a stack holds only "
          "members whose widths round to the same padded width), idle (freed slots left idle)."
          + (" SMOKE RUN (diabetes, tiny): checks the script, measures nothing." if smoke else ""), ""]
    return lines, "\n".join(md)


def _order(r: dict) -> tuple:
    return r["stack"], list(VARIANTS).index(r.get("variant", "pad")), r.get("seed", 0)


def report(out: Path) -> int:
    return write_report(out, summarize)


# ------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stacks", type=int, nargs="+", help="search.stack values (default 1 4 8; smoke: 1 2)")
    p.add_argument("--seeds", type=int, nargs="+", help="search.seed values (default 42 43 44; smoke: 42)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["width"],
                   help="the stacking loop's variants to run for each stack size > 1 (default: width, the loop's default)")
    p.add_argument("--study", type=Path, default=STUDY, help="the study file (default studies/housing_plain.yaml)")
    p.add_argument("--trials", type=int, help="search.n_trials of every run (default: the study's; at least the "
                   "largest stack, e.g. 2000 for stacks in the hundreds on a GPU)")
    p.add_argument("--timeout", type=float, help="search.timeout of every run in seconds: each run's trials per "
                   "minute over the trials it finished by then (default: the study's)")
    p.add_argument("--out", type=Path, default=Path("bench-stacked"))
    p.add_argument("--smoke", action="store_true",
                   help=f"diabetes, {SMOKE_TRIALS} trials of {SMOKE_EPOCHS} epochs: checks the script works")
    p.add_argument("--report", type=Path, metavar="DIR", help="only rebuild the table from DIR")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stack", type=int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    p.add_argument("--variant", default="width", choices=list(VARIANTS), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    from tuning.errors import StudyError

    args = parse_args(argv)
    if args.report:
        return report(args.report)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        workdir = args.out / "runs" / f"stack{args.stack}-{args.variant}-seed{args.seed}"
        result = run_one(args.study, args.stack, args.seed, args.smoke, workdir, args.variant, args.trials,
                         args.timeout)
        save_result(args.out, result, key=("stack", "variant", "seed"))
        print(f"stack {args.stack} {args.variant} seed {args.seed}: {result['wall_time_s']:.1f} s, "
              f"{_fmt(result['trials_per_min'], '.2f')} trials/min, test MSE {_fmt(result['test_mse'])}", flush=True)
        return 0
    stacks = args.stacks or list(SMOKE_STACKS if args.smoke else (1, 4, 8))
    seeds = args.seeds or ([42] if args.smoke else [42, 43, 44])
    try:
        for stack in stacks:  # refuse a study that cannot stack here, before any child starts
            make_config(args.study, stack, args.smoke, args.trials, args.timeout)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    passed = ((["--smoke"] if args.smoke else []) + (["--trials", str(args.trials)] if args.trials else [])
              + (["--timeout", str(args.timeout)] if args.timeout else []))
    for seed in seeds:
        for stack in stacks:
            for variant in (["pad"] if stack == 1 else args.variants):
                code = run_worker(__file__, ["--worker", "--stack", str(stack), "--variant", variant, "--seed",
                                             str(seed), "--study", str(args.study.resolve()), "--out",
                                             str(args.out.resolve()), *passed],
                                  f"stack {stack} seed {seed}" if stack == 1 else f"stack {stack} {variant} seed {seed}")
                if code:
                    return code
    return report(args.out)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
