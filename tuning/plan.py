"""The study as it will run, resolved once, in one place, before the search.

A study file with its command-line overrides (one :class:`~tuning.config.schema.StudyConfig`) is not yet the
study that runs: the table recipe sizes the keys the file leaves out on the loaded rows, and the
learning-rate range test may replace ``space.learning_rate`` by the bounds it measures. Both are stored in
the export directory, so that re-runs, resumes and ``--workers`` helpers see the same study. Two steps
resolve it, each once:

1. :func:`draft` (before the data loads): what earlier runs stored applied (the recipe's data facts, the
   range test's bounds). The command checks the draft (``--dry-run`` prints it, a resume is checked
   against it) and hands it to :func:`~tuning.study.run_study`, which resolves nothing of it again.
2. :func:`resolve` (the data loaded): the recipe sized by the rows, the user's factory built once
   (preflight), the range test run (or its stored bounds reused): a :class:`StudyPlan`, immutable, whose
   ``config`` the search runs. What each step decided is in its ``notes``; what is to be stored once the
   study store accepted the space is in ``recipe_step`` and ``lr_step``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuning.config import recipe
from tuning.config.schema import StudyConfig
from tuning.data.sources import DatasetSplit, load_dataset
from tuning.search import lr_bounds
from tuning.search.trial.preflight import preflight

__all__ = ["Draft", "StudyPlan", "draft", "resolve"]


@dataclass(frozen=True)
class Draft:
    """A study before its data loads: ``given`` (the file and the overrides) and ``config`` (``given`` with
    what earlier runs of it stored); ``retest``: whether to run the range test again (``--fresh``)."""

    given: StudyConfig
    config: StudyConfig
    retest: bool = False


@dataclass(frozen=True)
class StudyPlan:
    """The study its search runs: ``config`` sized by ``split``'s rows and with its learning-rate bounds;
    ``notes``: what resolving decided (the recipe's settings, the factory's facts, the bounds)."""

    config: StudyConfig
    split: DatasetSplit
    notes: tuple[str, ...]
    recipe_step: recipe.RecipeStep
    lr_step: lr_bounds.LRStep


def draft(config: StudyConfig, retest: bool = False) -> Draft:
    """``config`` with what earlier runs of the study stored: the recipe's data facts, the range test's
    bounds (measured again when ``retest``)."""
    return Draft(config, lr_bounds.with_stored_bounds(recipe.with_stored(config), fresh=retest), retest)


def resolve(planned: Draft, worker: bool = False) -> StudyPlan:
    """Load the data and resolve the study on it: the recipe sized by the rows, the user's factory built and
    checked once (not in a ``--workers`` helper: its launcher did), the learning-rate bounds."""
    split = load_dataset(planned.config.dataset)
    recipe_step = recipe.resolve(planned.given, split)  # recipe: tables, sized by the loaded rows
    config = recipe_step.config
    factory_notes = [] if worker else preflight(config, split)
    lr_step = lr_bounds.resolve(config, split, fresh=planned.retest)
    return StudyPlan(lr_step.config, split, tuple(recipe_step.notes + factory_notes), recipe_step, lr_step)
