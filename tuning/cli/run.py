"""Command line: ``python -m tuning.run STUDY.yaml [options]``.

Exit codes: 0 success, 2 bad study file or data (message, no traceback), 1 any other failure (also a
study in which no trial completed: the reasons are summarised; or whose every exportable model diverged:
the message says which, the study's MLflow run is FAILED), 130 interrupted (the running trial and
the study's MLflow run are marked KILLED first).

Re-running the same command resumes the study (its state is kept under its name); once it is finished,
it shows the stored result and trains nothing (``--n-trials`` extends it, ``--fresh`` starts it over).
``--workers N`` runs N processes on it; on several machines, give each the same ``--storage`` (a
PostgreSQL URL) and ``--tracking-uri`` (an MLflow server). See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os

from tuning.config.overrides import Overrides, add_arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuning.run", description="Run a hyperparameter study from a YAML file.")
    p.add_argument("study", help="path to the study YAML file")
    add_arguments(p)  # --n-trials --timeout --seed --tracking-uri --experiment --output-dir
    p.add_argument("--dry-run", action="store_true", help="validate the study and print the plan; train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes on this machine (default: the study's search.workers, 1); TensorFlow "
                        "threads are divided among them")
    p.add_argument("--storage", metavar="URL", default=os.environ.get("TUNING_STORAGE") or None,
                   help="Optuna storage shared by all workers, e.g. postgresql://user@host/db (default: "
                        "$TUNING_STORAGE, else SQLite in the output directory)")
    p.add_argument("--fresh", action="store_true",
                   help="start the study over instead of resuming it (deletes its stored trials)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a process started by --workers
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tuning.parallel import interrupt
    from tuning.parallel.process import configure_study_process

    interrupt.install_handlers()
    configure_study_process()  # before TensorFlow loads (see tuning/parallel/process.py)
    from rich.console import Console

    from tuning.cli.messages import export_failed, interrupted, user_error
    from tuning.errors import ExportFailed, StudyError

    console = Console(stderr=True, log_path=False)
    out = Console()
    try:
        from tuning.config.schema import load_study
        from tuning.config.studyfile import read_text

        text = read_text(args.study)  # the one read of the study file
        start_tensorflow_for_factory(text, args.workers)
        # the overrides applied once; a bad study fails here, before TensorFlow (unless it brings its own
        # model: its factory's module imports Keras)
        config = load_study(args.study, text).with_overrides(Overrides.from_args(args))
        from tuning.plan import draft

        # what earlier runs stored (the recipe's data facts, the range test's bounds), applied once: the
        # plan printed, the resume checked and the study run are this one
        planned = draft(config, retest=args.fresh and not args.worker)
        if args.dry_run:
            from tuning.cli.plan import describe_plan

            out.print(describe_plan(planned.config))
            return 0
        from tuning.coordination import check_resumable

        check_resumable(planned.config, args.storage, args.fresh or args.worker)
        from tuning.parallel.workers import limit_threads

        workers = args.workers or planned.config.search.workers
        limit_threads(workers)  # before TensorFlow starts its thread pools
        configure_study_process(start_tensorflow=True)
        from tuning.study import run_study

        result = run_study(planned, quiet=args.quiet, console=console, workers=workers, storage=args.storage,
                           fresh=args.fresh, worker=args.worker)
    except StudyError as exc:
        return user_error(console, exc)
    except ExportFailed as exc:  # the study ran; nothing it made predicts finite values
        return export_failed(console, exc)
    except KeyboardInterrupt:
        return interrupted(console)
    if args.worker:
        return 130 if result.interrupted else 0
    return report(result, console, out)


def start_tensorflow_for_factory(text: str, workers: int | None) -> None:
    """A study with ``model.build`` imports its factory's module, and so Keras, when it loads: start
    TensorFlow first, quietly and with the thread limit of its workers, as a study without one does later.
    The file's text is only peeked at here (anything invalid is left to the real load to report)."""
    try:
        import yaml

        data = yaml.safe_load(text)
        model, search = data.get("model"), data.get("search") or {}
        if not (isinstance(model, dict) and "build" in model):
            return
        workers = workers or int(search.get("workers", 1) or 1)
    except Exception:
        return
    from tuning.parallel.process import configure_study_process
    from tuning.parallel.workers import limit_threads

    limit_threads(workers)
    configure_study_process(start_tensorflow=True)


def report(result, console, out) -> int:
    """Print the outcome of a study; its exit code."""
    from rich.markup import escape

    from tuning.tracking.progress import summary_table

    if result.already_complete:
        console.print(f"study '{escape(result.name)}' is already complete ({len(result.records)} trials, "
                      f"{result.n_trials} asked): nothing to run. Extend it with --n-trials N (N > {result.n_trials}) "
                      "or start it over with --fresh.", highlight=False)
    out.print(summary_table(result))
    if result.interrupted:
        console.print("[bold yellow]interrupted:[/] the running trial and the study run were marked KILLED")
        return 130
    if result.best is None:
        reasons = "; ".join(f"{count} x {escape(reason)}" for reason, count in result.failure_reasons())
        console.print(f"[bold red]error:[/] no trial completed, nothing was exported ({len(result.records)} "
                      f"trials: {reasons or 'none ran'})", highlight=False)
        return 1
    return 0
