"""Command line: ``python -m tuning.run STUDY.yaml [options]``.

Exit codes: 0 success, 2 bad study file or data (message, no traceback), 1 any other failure,
130 interrupted (the running trial and the study's MLflow run are marked KILLED first).

Re-running the same command resumes the study (its state is kept under its name); ``--fresh`` starts it
over. ``--workers N`` runs N processes on it; on several machines, give each the same ``--storage``
(a PostgreSQL URL) and ``--tracking-uri`` (an MLflow server). See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuning.run", description="Run a hyperparameter study from a YAML file.")
    p.add_argument("study", help="path to the study YAML file")
    p.add_argument("--n-trials", type=int, help="override search.n_trials")
    p.add_argument("--timeout", type=float, help="override search.timeout (seconds)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the study's, else MLflow's default)")
    p.add_argument("--experiment", help="MLflow experiment name (default: the study name)")
    p.add_argument("--output-dir", help="where state and the exported model go (default: exports/<name>)")
    p.add_argument("--seed", type=int, help="override search.seed")
    p.add_argument("--dry-run", action="store_true", help="validate the study and print the plan; train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes on this machine (default 1); TensorFlow threads are divided among them")
    p.add_argument("--storage", metavar="URL", default=os.environ.get("TUNING_STORAGE") or None,
                   help="Optuna storage shared by all workers, e.g. postgresql://user@host/db (default: "
                        "$TUNING_STORAGE, else SQLite in the output directory)")
    p.add_argument("--fresh", action="store_true",
                   help="start the study over instead of resuming it (deletes its stored trials)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a process started by --workers
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tuning import interrupt

    interrupt.install_handlers()
    from rich.console import Console

    from tuning.errors import StudyError

    console = Console(stderr=True, log_path=False)
    out = Console()
    overrides = dict(n_trials=args.n_trials, timeout=args.timeout, seed=args.seed, tracking_uri=args.tracking_uri,
                     experiment=args.experiment, output_dir=args.output_dir)
    try:
        from tuning.config import load_study

        config = load_study(args.study)  # a bad study file fails here, before TensorFlow loads
        if args.dry_run:
            from tuning.plan import describe_plan

            out.print(describe_plan(config.with_overrides(**overrides)))
            return 0
        from tuning.coordination import check_resumable

        check_resumable(config.with_overrides(**overrides), args.storage, args.fresh or args.worker)
        from tuning.quiet import import_tensorflow_quietly
        from tuning.workers import limit_threads

        limit_threads(args.workers)  # before TensorFlow starts its thread pools
        import_tensorflow_quietly()
        from tuning.progress import summary_table
        from tuning.study import run_study

        result = run_study(args.study, **overrides, quiet=args.quiet, console=console, workers=args.workers,
                           storage=args.storage, fresh=args.fresh, worker=args.worker)
    except StudyError as exc:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)  # brackets in it stay literal
        return 2
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return 130
    if args.worker:
        return 130 if result.interrupted else 0
    out.print(summary_table(result))
    if result.interrupted:
        console.print("[bold yellow]interrupted:[/] the running trial and the study run were marked KILLED")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
