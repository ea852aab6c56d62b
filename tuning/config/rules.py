"""What a study may combine: the rules across sections of the study file (a stacked study of our MLP only,
the grid sampler on a fixed grid, ``train_on: train+valid`` with ``cv: validation``, ...). Each function
takes a validated :class:`~tuning.config.schema.StudyConfig` and returns its problems, which the schema
raises with the others (file, key and line each)."""

from __future__ import annotations

from typing import Any

from pydantic_core import InitErrorDetails

from estimators.common import hyperparams
from tuning.config.dataset import SHAPED
from tuning.config.paramspec import CategoricalParam, FloatParam, grid_size, uniform_grid
from tuning.config.validation import error as _error

__all__ = ["RECIPE_MODEL", "combination_errors", "is_set", "objective_errors"]

#: What the table recipe (tuning.config.recipe) gives our MLP's model section.
RECIPE_MODEL: dict[str, str] = {"optimizer": "adam", "lr_schedule": "plateau"}


def is_set(config: Any, dotted: str) -> bool:
    """Whether the study file gives the key `dotted` (``training.early_stopping.patience``) itself."""
    section, _, key = dotted.rpartition(".")
    return key in (config.value_of(section) if section else config).model_fields_set


def combination_errors(config: Any) -> list[InitErrorDetails]:
    """Every rule of this module that ``config`` breaks."""
    return [*sampler_errors(config), *train_on_errors(config), *input_shape_errors(config),
            *grid_budget_errors(config), *stack_errors(config), *objective_errors(config)]


def sampler_errors(config: Any) -> list[InitErrorDetails]:
    """The grid sampler needs one finite grid: no conditional entries, no hypermodel, no float range without
    a step."""
    if config.search.sampler != "grid":
        return []
    conditional = [name for name, spec in config.space.items() if spec.conditions()]
    factory = config.model.factory
    if conditional or (factory is not None and factory.takes_hp):
        what = f"space.{conditional[0]} is conditional (per / when)" if conditional else "the hp factory's space"
        return [_error(("search", "sampler"), f"the grid sampler needs one fixed grid, but {what} "
                       "changes from trial to trial; use tpe or random", "grid")]
    return [_error(("search", "sampler"),
                   f"the grid sampler needs a finite grid, but space.{name} is a float range without step", "grid")
            for name, spec in config.space.items() if isinstance(spec, FloatParam) and spec.step is None]


def train_on_errors(config: Any) -> list[InitErrorDetails]:
    """``train_on: train+valid`` replays each trial's best epoch count, which only ``cv: validation`` records."""
    if config.export.train_on == "train+valid" and config.search.cv != "validation":
        return [_error(("export", "train_on"),
                       "train_on: train+valid retrains each exported model for its trial's best epoch count, which "
                       "only cv: validation records; use cv: validation or train_on: train", config.export.train_on)]
    return []


def stack_errors(config) -> list[InitErrorDetails]:
    """`search.stack` > 1 trains several of our MLPs as one model (tuning.search.schedulers.stacking): what it
    cannot honour is refused here, with what to change."""
    stack = config.search.stack
    if stack == 1:
        return []
    fix = "or set search.stack: 1 to train each trial alone"

    def refuse(what: str) -> list[InitErrorDetails]:
        return [_error(("search", "stack"), f"stack: {stack} trains several trials of our MLP as one model; "
                       f"{what}, {fix}", stack)]

    if config.model.factory is not None:
        return refuse("a study with its own model (model.build) cannot be stacked: remove search.stack")
    if config.search.cv != "validation":
        return refuse(f"cv: {config.search.cv} is not stacked (each trial's folds): use cv: validation")
    fixed = config.model.fixed_params()
    rules = {  # knob -> (values a stack trains, what to set)
        "optimizer": (("adam",), "model.optimizer: adam"),
        "weight_decay": ((None, 0, 0.0), "no weight_decay (leave it out)"),
        "lr_schedule": (("constant", "plateau"), "lr_schedule: constant or plateau"),
        "members": ((1,), "members: 1 (leave it out)"),
        "feature_scaling": ((False,), "feature_scaling: false (leave it out)"),
    }
    for name, (allowed, change) in rules.items():
        spec = config.space.get(name)
        if spec is not None:
            if isinstance(spec, CategoricalParam):
                bad = [v for v in spec.choices if v not in allowed]
                what = f"space.{name} cannot be stacked ({bad[0]!r} is one of its choices)" if bad else ""
            else:
                what = f"space.{name} cannot be stacked (a {spec.type} range)"
        else:
            default = hyperparams.HYPERPARAMS[name].default
            if config.recipe == "tables":  # what the table recipe (tuning.config.recipe) will set
                default = RECIPE_MODEL.get(name, default)
            value = fixed.get(name, default)
            what = "" if value in allowed else f"{name} {value!r} cannot be stacked"
        if what:
            return refuse(f"{what}: set {change}")
    return []

def grid_budget_errors(config) -> list[InitErrorDetails]:
    """The random backend runs each combination of a finite grid at most once (`uniform_grid`): more
    trials than the grid holds are refused."""
    size = grid_size(config.space) if config.search.backend == "random" else None
    n_trials = config.search.n_trials
    if size is None or n_trials <= size:
        return []
    axes = " x ".join(f"{len(values)} {name}" for name, values in uniform_grid(config.space).items())
    default = "" if is_set(config, "search.n_trials") else " (not set: the default)"
    return [_error(("search", "n_trials"), f"{n_trials} trials{default}, but the space holds only {size} "
                   f"combinations ({axes}) and the random backend runs each at most once; set "
                   f"search.n_trials to {size} or less, or widen the space", n_trials)]

def input_shape_errors(config) -> list[InitErrorDetails]:
    """`dataset.shape: images / sequences` only feed a user's model; `model.inputs` maps table columns."""
    shape = config.dataset.row_shape
    if shape in SHAPED and config.model.factory is None:
        return [_error(("dataset", "shape"), f"shape '{shape}' feeds your own Keras model (model.build); our "
                       "MLP takes flat rows: add model.build or leave shape out", shape)]
    if getattr(config.model, "inputs", None) and shape in SHAPED:
        return [_error(("model", "inputs"), f"inputs maps table columns to model inputs; with dataset.shape "
                       f"'{shape}' the rows are not a table", None)]
    return []


def objective_errors(config) -> list[InitErrorDetails]:
    """``search.objectives`` (several: a Pareto front, pruned on the first by our own rule) and
    ``export.choose`` (a point of that front): the metric they start with, and what they cannot be combined
    with."""
    search, choose = config.search, config.export.choose
    errors = []
    objectives = search.objectives or []
    first = objectives[0] if objectives else None
    first = next(iter(first)) if isinstance(first, dict) else first
    if first is not None and search.metric not in ("auto", first):
        errors.append(_error(("search", "objectives"), f"the first objective is the study's metric: search.metric "
                             f"is {search.metric}, but objectives start with {first}; make them the same (or leave "
                             "search.metric out)", first))
    if choose is not None and not search.multi_objective:
        errors.append(_error(("export", "choose"), "choose picks a point of the Pareto front of several "
                             "objectives: list them in search.objectives (e.g. [mse, latency_ms]), or remove "
                             "export.choose", None))
    elif choose is not None:
        names = [next(iter(e)) if isinstance(e, dict) else e for e in objectives]
        if search.metric != "auto":
            names[0] = search.metric
        for key, name in [("best", choose.best), *(("where", n) for n in choose.where)]:
            if name is not None and name not in names:
                errors.append(_error(("export", "choose", key), f"'{name}' is none of the study's objectives "
                                     f"({', '.join(names)})", name))
    if not search.multi_objective:
        return errors
    refuse = [
        (search.stack > 1, ("search", "stack"), "stacked trials cannot have several objectives; set "
         "search.stack: 1 or keep one objective", search.stack),
        (config.export.ensemble.enabled, ("export", "ensemble", "size"), "with several objectives the export "
         "is one chosen point of the Pareto front (export.choose), not an ensemble; set size: 0",
         config.export.ensemble.size),
        (search.sampler == "cmaes", ("search", "sampler"), "CMA-ES optimises one objective; with several use "
         "tpe, nsga2, random or grid", search.sampler),
        (search.pruner in ("hyperband", "successive_halving") and is_set(config, "search.pruner"),
         ("search", "pruner"), "with several objectives trials are pruned on the first by a median rule of our "
         "own (Optuna's pruners take one value): use median or none", search.pruner),
    ]
    errors += [_error(loc, message, value) for wrong, loc, message, value in refuse if wrong]
    return errors
