"""The search contract, in two parts (as scikit-learn's ``BaseSearchCV`` owns the loop and leaves
``_run_search`` to subclasses, and Optuna keeps samplers apart from storages):

* a :class:`~tuning.search.store.base.StudyStore` keeps the study's state between runs and between workers: the stored trials
  (resume), study attributes (the search-space digest, the shared parent-run id the study layer stores
  there), the trial budget (which trials count, which still run somewhere, which a dead worker left) and
  who exports. It is built from the config alone (no runner), so a command can look at a stored study
  before it loads any data.
* a :class:`TrialScheduler` runs trials on a :class:`~tuning.search.trial.runner.TrialRunner`: it proposes parameters,
  passes the runner a ``report(epoch, value)`` hook that may prune, and records each outcome in its store.

Neither knows anything of MLflow or export; :mod:`tuning.search.schedulers.registry` builds them by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from tuning.search.store.base import StudyStore

if TYPE_CHECKING:  # the backends import without TensorFlow (the CLI checks a study before loading it)
    from tuning.search.trial.runner import TrialRunner


class TrialScheduler(ABC):
    """Runs a study's trials on a runner until its store holds ``n_trials`` counted trials."""

    def __init__(self, store: StudyStore) -> None:
        self.store = store
        self.config = store.config

    @abstractmethod
    def run(self, runner: TrialRunner, n_trials: int, timeout: float | None) -> None:
        """Run trials until the study has ``n_trials`` counted trials (or ``timeout`` seconds pass)."""
