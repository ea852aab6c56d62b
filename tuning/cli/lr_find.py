"""Command line: ``python -m tuning.lr_find STUDY.yaml [--out DIR] [--min-lr] [--max-lr] [--seed]``.

Runs the learning-rate range test (:mod:`tuning.search.lr_range`) on the study's network and training rows,
prints the suggestion and writes ``lr_range.png`` and ``lr_range.json`` to DIR (default: the study's
export directory, where ``search.lr_range_test: true`` reuses them).

Exit codes: 0 success, 2 bad study file, data or option (message, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuning.lr_find",
                                description="Learning-rate range test of a study's network.")
    p.add_argument("study", help="path to the study YAML file")
    p.add_argument("--out", metavar="DIR", help="where lr_range.png and lr_range.json go (default: the study's "
                                                "export directory)")
    p.add_argument("--min-lr", type=float, default=1e-5, help="first learning rate (default 1e-5)")
    p.add_argument("--max-lr", type=float, default=1.0, help="last learning rate (default 1)")
    p.add_argument("--steps", type=int, help="mini-batches (default: one epoch, 100 to 1000)")
    p.add_argument("--seed", type=int, help="seed of weights and shuffling (default: search.seed)")
    args = p.parse_args(argv)
    if not 0 < args.min_lr < args.max_lr:
        p.error("need 0 < --min-lr < --max-lr")
    if args.steps is not None and args.steps < 2:
        p.error("--steps must be >= 2")
    return args


def stored_suggestion_in_use(config, out_dir) -> bool:
    """Whether ``out_dir`` holds the suggestion a started study with ``search.lr_range_test`` searches
    (overwriting it would change the space of its resumes)."""
    from tuning.search import lr_bounds
    from tuning.search.schedulers import make_store
    from tuning.search.store.base import SPACE_DIGEST

    if out_dir.resolve() != config.export_dir.resolve() or not lr_bounds.wanted(config):
        return False
    if lr_bounds.read_stored(config) is None:
        return False
    return make_store(config, config.export_dir).peek_attr(SPACE_DIGEST) is not None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tuning.parallel import interrupt
    from tuning.parallel.process import configure_study_process

    interrupt.install_handlers()
    configure_study_process()  # before TensorFlow loads (see tuning/parallel/process.py)
    from pathlib import Path

    from rich.console import Console

    from tuning.cli.messages import interrupted, user_error
    from tuning.errors import StudyError

    console = Console(stderr=True, log_path=False)
    try:
        from tuning.cli.run import start_tensorflow_for_factory
        from tuning.config.schema import load_study
        from tuning.config.studyfile import read_text

        text = read_text(args.study)
        start_tensorflow_for_factory(text, 1)
        config = load_study(args.study, text)  # a bad study fails here, before TensorFlow (unless model.build)
        out_dir = Path(args.out) if args.out else config.export_dir
        if stored_suggestion_in_use(config, out_dir):
            raise StudyError(f"{out_dir / 'lr_range.json'} holds the learning-rate bounds study '{config.name}' "
                             "(search.lr_range_test) already searches; pass --out DIR to write elsewhere")
        configure_study_process(start_tensorflow=True)
        from tuning.config import recipe
        from tuning.data.sources import load_dataset
        from tuning.search import lr_bounds
        from tuning.search.lr_range import lr_range_test

        split = load_dataset(config.dataset)
        config = recipe.resolve(config, split).config  # the optimizer, network and space the study will run
        result = lr_range_test(config, split, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                               seed=args.seed)
        spec = config.space.get("learning_rate")
        range_of = lr_bounds.spec_json(spec) if spec is not None else None
        files = lr_bounds.write(result, out_dir, range_of)
    except StudyError as exc:
        return user_error(console, exc)
    except KeyboardInterrupt:
        return interrupted(console)
    low, high = result.suggested_bounds
    print(f"learning-rate range test of study '{config.name}': {len(result.learning_rates)} of {result.steps} "
          f"steps, batch size {result.batch_size} ({result.stopped})")
    print(f"  best learning rate       {result.best_lr:.3g}   (lowest smoothed loss "
          f"{min(result.smoothed_losses):.4g})")
    print(f"  suggested learning rate  {result.suggested_lr:.3g}   (half the best)")
    print(f"  suggested bounds         {low:.2g} .. {high:.2g}   (log; space.learning_rate)")
    for path in files:
        print(f"  wrote {path}")
    return 0
