"""Search backends by name: ``search.backend`` -> a :class:`StudyStore` and a :class:`TrialScheduler`.

Implementations are imported on first use (the base module imports none of them). A new backend is a
module with ``STORE`` (a :class:`~tuning.search.store.base.StudyStore`, kept in ``tuning/search/store/``) and
``SCHEDULER`` classes (as :mod:`tuning.search.schedulers.optuna` names both), named here or with
:func:`register_backend` (and its name allowed in ``search.backend`` of the study-file schema).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tuning.config.schema import StudyConfig
from tuning.errors import StudyError
from tuning.parallel.workers import WorkerId
from tuning.search.schedulers.base import TrialScheduler
from tuning.search.store.base import StudyStore

BACKENDS: dict[str, str] = {"optuna": "tuning.search.schedulers.optuna", "random": "tuning.search.schedulers.random"}
SHARED_STORAGE = {"optuna", "random"}  # backends that can keep a study in a database given by --storage


def register_backend(name: str, module: str, shared_storage: bool = False) -> None:
    """Make ``search.backend: name`` use the ``STORE``/``SCHEDULER`` classes of ``module``."""
    BACKENDS[name] = module
    if shared_storage:
        SHARED_STORAGE.add(name)


def _module(name: str):
    try:
        return importlib.import_module(BACKENDS[name])
    except KeyError:
        raise StudyError(f"search.backend: unknown backend '{name}' (known: {', '.join(sorted(BACKENDS))})") from None


def make_store(config: StudyConfig, state_dir: Path, storage: str | None = None,
               worker: WorkerId | None = None) -> StudyStore:
    """The study store of ``search.backend`` (no runner, no data needed)."""
    name = config.search.backend
    if storage and name not in SHARED_STORAGE:
        raise StudyError(f"--storage needs a backend that keeps its study in a database "
                         f"({', '.join(sorted(SHARED_STORAGE))}); the {name} backend keeps it in the output directory")
    return _module(name).STORE(config, state_dir, storage=storage, worker=worker)


def make_scheduler(store: StudyStore) -> TrialScheduler:
    """The trial scheduler that goes with ``store``; with ``search.stack`` > 1, wrapped to train K trials at a
    time as one model (:class:`~tuning.search.schedulers.stacking.StackedScheduler`)."""
    scheduler = _module(store.config.search.backend).SCHEDULER(store)
    if store.config.search.stack > 1:
        from tuning.search.schedulers.stacking import StackedScheduler

        return StackedScheduler(scheduler)
    return scheduler
