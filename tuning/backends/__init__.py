"""Search backends: a study store (state, resume, budget, export vote) and a trial scheduler each."""

from tuning.backends.base import StudyStore, TrialScheduler
from tuning.backends.registry import make_scheduler, make_store, register_backend

__all__ = ["StudyStore", "TrialScheduler", "make_scheduler", "make_store", "register_backend"]
