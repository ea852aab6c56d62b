"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_STUDY = ROOT / "studies" / "housing.yaml"


def study_process() -> None:
    """The settings of a process that runs studies (oneDNN default, quiet libraries, heap freezing) and a
    quiet TensorFlow start, as ``python -m tuning.run`` applies them: call before TensorFlow loads. The
    classic recipe's runs do not (they only start TensorFlow quietly: :func:`quiet_tensorflow`)."""
    from tuning.parallel.process import configure_study_process

    configure_study_process(start_tensorflow=True)


def quiet_tensorflow() -> None:
    """Start TensorFlow without its C++ start-up lines (nothing else of a study process's settings)."""
    from tuning.parallel.process import start_tensorflow_quietly

    start_tensorflow_quietly()
SMOKE_DATASET = {"source": "diabetes"}  # ships with scikit-learn: 442 rows, works offline


# The search section of a smoke run: two trials in one process (extra worker processes would only add
# TensorFlow start-ups to a check that the script works; the workers have tests of their own).
SMOKE_SEARCH = {"n_trials": 2, "timeout": None, "workers": 1}


def study_config(study: str | os.PathLike, *, smoke: bool = False, dataset: dict[str, Any] | None = None,
                 search: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
                 name: str | None = None):
    """The study file as our CLI reads it, with sections replaced or updated for a benchmark.

    ``smoke`` swaps in the diabetes data set, ``dataset`` replaces the whole section; ``search`` and
    ``training`` entries update those sections (a ``None`` value removes a key, e.g. ``timeout``); ``name``
    renames the study (its MLflow experiment and report title).
    """
    from tuning.config.schema import load_study, load_study_dict

    config = load_study(study)
    if not (smoke or dataset or search or training or name):
        return config
    data = config.model_dump(exclude_unset=True)
    if name:
        data["name"] = name
    if dataset or smoke:
        data["dataset"] = dict(SMOKE_DATASET if smoke else dataset)
    for section, changes in (("search", search), ("training", training)):
        for key, value in (changes or {}).items():
            part = data.setdefault(section, {})
            if value is None:
                part.pop(key, None)
            else:
                part[key] = value
    return load_study_dict(data, source=f"{Path(study).name} (benchmark overrides)")


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; elsewhere the peak RSS)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


RESULTS = "results.jsonl"


def write_report(out: Path, summarize, plot=None) -> int:
    """A benchmark's ``--report``: its table (printed, and ``out/results.md``) and pictures (``plot``, which
    returns a path or a list of them) rebuilt from ``out/results.jsonl``; 1 when there are no results."""
    results = load_results(out)
    if not results:
        print(f"no results in {Path(out) / RESULTS}")
        return 1
    lines, md = summarize(results)
    print("\n".join(lines))
    (Path(out) / "results.md").write_text(md)
    written = [] if plot is None else plot(results, out)
    written = written if isinstance(written, list) else [written]
    print(f"wrote {Path(out) / 'results.md'}" + "".join(f", {p}" for p in written))
    return 0


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Layout, PNG, close: the end of a benchmark picture."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def finish(out: Path, failed: list[str], report) -> int:
    """The end of a benchmark run: its report from the results so far (``report(out)``), then the runs
    that failed, if any (exit code 1)."""
    code = report(out) if load_results(out) else 1
    if failed:
        print(f"failed: {'; '.join(failed)}")
        return 1
    return code


def load_results(out: Path) -> list[dict]:
    """The runs recorded in ``out/results.jsonl`` (one JSON object a line)."""
    import json

    path = Path(out) / RESULTS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_result(out: Path, result: dict, key: tuple[str, ...] = ("method", "seed")) -> None:
    """Add a run's result to ``out/results.jsonl``, replacing an earlier run with the same ``key`` fields."""
    import json

    kept = [r for r in load_results(out) if tuple(r.get(k) for k in key) != tuple(result.get(k) for k in key)]
    (Path(out) / RESULTS).write_text("".join(json.dumps(r) + "\n" for r in [*kept, result]))


def run_worker(script: str, args: list[str], label: str) -> int:
    """Run ``script`` (a benchmark file) with ``args`` in this process's directory (relative paths in
    ``args``, such as ``--out``, mean what they meant to the launcher), saying what runs and, if it fails,
    its exit code; returns that code. A real run starts a child process per worker, so every tool gets a
    fresh process and its own clock; a ``--smoke`` run (a check that the script works) calls the script's
    ``main`` in this process instead, sparing a TensorFlow start-up per worker."""
    import subprocess

    print(f"running {label} ...", flush=True)
    if "--smoke" in args:
        code = _run_in_process(script, args)
    else:
        code = subprocess.run([sys.executable, str(Path(script).resolve()), *args]).returncode
    if code != 0:
        print(f"{label} failed (exit {code})", flush=True)
    return code


def _run_in_process(script: str, args: list[str]) -> int:
    """``main(args)`` of the benchmark file ``script``; an exception is printed with its traceback and
    counts as exit code 1, as it would in a child process."""
    import importlib.util
    import traceback

    path = Path(script).resolve()
    module = sys.modules.get("__main__")
    if getattr(module, "__file__", None) is None or Path(module.__file__).resolve() != path:
        spec = importlib.util.spec_from_file_location(f"_benchmark_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    try:
        return int(module.main(list(args)) or 0)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except Exception:  # noqa: BLE001 - a failed worker is reported, as a child process's would be
        traceback.print_exc()
        return 1
