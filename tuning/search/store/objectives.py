"""A study of several objectives (``search.objectives``) in its Optuna store: one multi-objective Optuna study
(``directions``), and the pruning rule of our own on the first objective.

Optuna cannot prune a multi-objective trial (``trial.report`` takes one value), so the Optuna scheduler asks
:class:`MedianRule` instead, Optuna's median rule (``MedianPruner``: ``n_startup_trials`` 5, warm-up
``min_resource`` epochs) applied to the first objective: after epoch ``s``, a trial whose best value so far
is worse than the median of the complete trials' values at epoch ``s`` is pruned. The complete trials'
per-epoch values are their user attr ``epoch_values`` (each worker's trials, read from the storage); a
pruned trial keeps the last value the rule was given as its value (user attr ``value``), its other
objectives unmeasured. A study of one objective stores none of these attributes.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState

EPOCH_VALUES = "epoch_values"  # user attr: the first objective after each epoch (complete trials)
MEASURES = "measures"  # user attr: a complete trial's other objectives, and latency_ms_b256
PRUNED_VALUE = "value"  # user attr: the first objective a pruned trial was last given
OBJECTIVES = "objectives"  # study attr: the objectives' names (a study of several)
N_STARTUP = 5  # complete trials before the rule prunes (Optuna's MedianPruner as search.pruner: median)

__all__ = ["EPOCH_VALUES", "MEASURES", "N_STARTUP", "OBJECTIVES", "PRUNED_VALUE", "MedianRule", "directions",
           "names", "stored_directions"]


def names(config, metric: str) -> list[str]:
    """The study's objectives, ``metric`` first."""
    return [metric, *(name for name, _ in config.search.other_objectives())]


def directions(config, direction: str) -> list[str]:
    """The direction of each objective, the metric's (``direction``) first."""
    return [direction, *(d for _, d in config.search.other_objectives())]


def stored_directions(study: optuna.Study) -> list[str]:
    """The directions a stored study was created with (one for a study of one objective)."""
    return [d.name.lower() for d in study.directions]


class MedianRule:
    """Optuna's median pruning rule on the first objective, across the study's complete trials (see the
    module docstring): ``should_prune(step, values, completed)``."""

    def __init__(self, direction: str, warmup: int, n_startup: int = N_STARTUP) -> None:
        self.minimize = direction == "minimize"
        self.warmup, self.n_startup = warmup, n_startup

    def should_prune(self, step: int, values: list[float], completed: list[list[float]]) -> bool:
        """Whether a trial whose first objective was ``values`` after epochs 1 .. ``step`` stops now;
        ``completed``: the per-epoch values of each complete trial."""
        if len(completed) < self.n_startup or step < self.warmup or not values:
            return False
        at_step = [epochs[step - 1] for epochs in completed if len(epochs) >= step]
        if not at_step:
            return False
        median = float(np.median(at_step))
        best = min(values) if self.minimize else max(values)
        return best > median if self.minimize else best < median

    @staticmethod
    def completed(trials: list[optuna.trial.FrozenTrial]) -> list[list[float]]:
        """The per-epoch first objective of each complete trial of ``trials``."""
        return [list(t.user_attrs[EPOCH_VALUES]) for t in trials
                if t.state == TrialState.COMPLETE and t.user_attrs.get(EPOCH_VALUES)]
