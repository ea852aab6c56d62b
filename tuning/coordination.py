"""What the processes working on one study share, wired between its study store and the MLflow tracker.

The study store is the arbiter (it knows which process created the study and which trials
still run); the tracker only writes runs. Neither knows the other: these functions connect them.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tuning.config.schema import StudyConfig
from tuning.parallel.workers import limit_threads, spawn_workers, usable_cores
from tuning.search.store.base import PARENT_RUN

WORKER_STUDY_FILE = "worker_study.yaml"
DIED = "its worker process stopped before the trial ended"


def study_file(config: StudyConfig) -> tuple[Path | None, str]:
    """The study file and its text as loaded (``config.source``, not read again); for a study built in
    code, no file and its settings as YAML."""
    if config.source is not None:
        return config.source.path, config.source.text
    return None, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def open_parent_run(tracker: Any, store: Any, config: StudyConfig, settings: dict[str, Any], split: Any) -> bool:
    """Attach ``tracker`` to the study's one parent run, creating it (with the dataset and the study file's
    text) only if this process created the study; True when it did. Re-runs and other workers re-open the
    same run."""
    path, text = study_file(config)

    def create() -> str:
        run_id = tracker.start_study(config.name, settings, path, text)
        tracker.log_dataset(split)
        return run_id

    run_id, created = store.shared_attr(PARENT_RUN, create)
    if not created:
        tracker.start_study(config.name, settings, path, text, run_id=run_id)
    return created


def close_orphan_runs(tracker: Any, store: Any) -> list[int]:
    """Trial runs left RUNNING by a process that died (``kill -9``, a lost machine) become KILLED.

    Order matters with live workers around: a worker ends its trial's run before the backend's trial
    state changes, so a run still RUNNING after the store said its trial is not running is an orphan.
    A trial that this process found dead before its run was even created gets a KILLED run, so MLflow
    keeps one run per trial. Returns the numbers of the trials concerned.
    """
    store.recover()
    candidates = tracker.trial_runs_of_study(running_only=True)
    running = store.running_numbers()
    closed = []
    for run_id, number in candidates.items():
        if number not in running and tracker.still_running(run_id):
            tracker.mark_killed(run_id, DIED)
            closed.append(number)
    interrupted = store.take_interrupted()
    if interrupted:
        tracked = set(tracker.trial_runs_of_study().values())
        for number, params in interrupted.items():
            if number not in tracked:
                tracker.record_killed(number, params, DIED)
                closed.append(number)
    return sorted(closed)


def check_resumable(config: StudyConfig, storage: str | None = None, fresh: bool = False) -> None:
    """Refuse, before anything is loaded or trained, to resume a stored study whose space or model factory
    changed."""
    from tuning.search.schedulers import make_store
    from tuning.search.store.base import FACTORY_DIGEST, SPACE_DIGEST, resume_problem

    if fresh:
        return
    store = make_store(config, config.export_dir, storage=storage)
    problem = resume_problem(config, store.location, store.peek_attr(SPACE_DIGEST), store.peek_attr(FACTORY_DIGEST))
    if problem is not None:
        raise problem


def write_worker_study(config: StudyConfig, out_dir: Path, tracking_uri: str) -> Path:
    """The resolved study (command-line overrides applied, tracking URI fixed) for worker processes, in a
    temporary folder of its own (not the export directory: it is no file of the user's) that goes when
    this process ends; the workers read it as they start."""
    data = config.model_dump(mode="json", exclude_unset=True)
    data.setdefault("mlflow", {})["tracking_uri"] = tracking_uri
    data.setdefault("export", {})["dir"] = str(out_dir)
    folder = Path(tempfile.mkdtemp(prefix="tuning-workers-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / WORKER_STUDY_FILE
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_helpers(config: StudyConfig, store: Any, workers: int, out_dir: Path,
                  tracking_uri: str) -> list[subprocess.Popen]:
    """For ``--workers N``: start N-1 worker processes on this study (this process is the N-th); the random
    backend's ``search.n_jobs`` asks for as many. TensorFlow threads are divided between the N processes."""
    workers = max(workers, candidate_jobs(config))
    if workers <= 1:
        return []
    limit_threads(workers)
    study_file = write_worker_study(config, out_dir, tracking_uri)
    return spawn_workers(workers - 1, study_file, store.url, store.worker.group)


def candidate_jobs(config: StudyConfig) -> int:
    """Processes the random backend runs candidates in: ``search.n_jobs`` as in RandomizedSearchCV (-1:
    every core); 1 for other backends, whose ``n_jobs`` is about folds."""
    if config.search.backend != "random":
        return 1
    return usable_cores() if config.search.n_jobs == -1 else config.search.n_jobs
