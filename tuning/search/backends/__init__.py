"""Search backends: a study store (state, resume, budget, export vote) and a trial scheduler each."""

from tuning.search.backends.base import StudyStore, TrialScheduler
from tuning.search.backends.registry import make_scheduler, make_store, register_backend

__all__ = ["StudyStore", "TrialScheduler", "make_scheduler", "make_store", "register_backend"]
