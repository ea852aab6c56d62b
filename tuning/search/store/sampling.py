"""Optuna's sampler and pruner for a study, and the epochs at which the pruner is asked."""

from __future__ import annotations

import optuna

from tuning.search.space import grid
from tuning.search.store.storage import quiet_experimental


def make_sampler(config, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler of ``search.sampler``, seeded with ``seed`` (default ``search.seed``)."""
    seed = config.search.seed if seed is None else seed
    name = config.search.sampler
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return optuna.samplers.GridSampler(grid(config.space), seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    with quiet_experimental():  # multivariate / group TPE: "experimental" in Optuna, supported here
        # constant_liar: a stack's trials are asked together, so the pending ones must not be proposed again
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=min(10, max(3, config.search.n_trials // 5)),
                                          constant_liar=config.search.stack > 1)


def min_resource(config) -> int:
    """Epochs every trial gets before a pruner may stop it."""
    return max(1, config.training.epochs // 20)


def pruner_name(config) -> str:
    """The pruner a study runs: ``search.pruner``; with several objectives ``median`` (our rule on the first,
    :class:`tuning.search.store.objectives.MedianRule`) unless it is ``none``."""
    name = config.search.pruner
    return "median" if config.search.multi_objective and name != "none" else name


def make_pruner(config) -> optuna.pruners.BasePruner:
    """Optuna's pruner of ``search.pruner`` (none for several objectives: Optuna cannot prune those)."""
    name = "none" if config.search.multi_objective else config.search.pruner
    epochs = config.training.epochs
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min_resource(config))
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource(config), reduction_factor=3)
    return optuna.pruners.HyperbandPruner(min_resource=min_resource(config), max_resource=epochs, reduction_factor=3)


def pruning_steps(config) -> frozenset[int] | None:
    """The epochs at which the pruner can decide anything (None: every epoch).

    Successive halving and Hyperband only look at a trial when it reaches a rung (``min_resource`` times
    a power of 3), so reporting other epochs to the storage (two database round trips an epoch, ~10% of a
    small model's training time) changes nothing but the cost. The median pruner looks at every epoch.
    """
    name = pruner_name(config)
    if name == "none":
        return frozenset()
    if name in ("hyperband", "successive_halving"):
        steps, step = set(), min_resource(config)
        while step <= config.training.epochs:
            steps.add(step)
            step *= 3
        return frozenset(steps)
    return None
