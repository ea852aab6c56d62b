"""Search backends: they only choose parameters and schedule trials on a TrialRunner."""

from tuning.backends.base import SearchBackend, make_backend

__all__ = ["SearchBackend", "make_backend"]
