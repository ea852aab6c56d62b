"""The trial schedulers: each backend's (Optuna, random), the stacked one that trains K trials as one model,
and the registry that builds a backend's store (:mod:`tuning.search.store`) and scheduler by name."""

from tuning.search.schedulers.base import TrialScheduler
from tuning.search.schedulers.registry import make_scheduler, make_store, register_backend
from tuning.search.store.base import StudyStore

__all__ = ["StudyStore", "TrialScheduler", "make_scheduler", "make_store", "register_backend"]
