"""The recipe: what a table study gets for the settings its file leaves out (``recipe: tables``, the default).

A study of our network on a table that gives only ``name`` and ``dataset`` gets the strongest settings we
know for tables (the default housing study's, benchmarks/README.md: Adam, quantile scaling, periodic
embeddings, dropout, a plateau schedule, two worker processes, a greedy ensemble of the best trials
retrained on training + validation rows; classification trials ranked by validation log loss), sized by the data once it is loaded: batch size, epochs,
patience and trials from the number of training rows, embeddings only for tables of up to
`MAX_EMBEDDED_COLUMNS` columns. Every key the file sets is kept; the recipe fills the rest, and the run
prints what it filled. ``recipe: plain`` keeps the schema's own defaults (the classic recipe's space and
an SGD estimator); a study of the user's own model (``model.build``) or of images / word sequences never
takes the recipe.

The sizing depends on the data, which loads after the config: :func:`resolve` applies it on the loaded
split and stores the data facts it used in ``recipe.json`` in the export directory, so that a re-run, a
resumed study and a check made before loading (:func:`with_stored`) see the same settings. Without stored
facts, :func:`with_stored` applies the part that does not depend on the data (workers, model, export).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuning.config.dataset import SHAPED
from tuning.config.rules import RECIPE_MODEL
from tuning.config.schema import StudyConfig, load_study_dict

RECIPES = ("tables", "plain")
FACTS_FILE = "recipe.json"
#: tables wider than this (pixels, multi-hot words) get no periodic embedding: it multiplies the first
#: layer's inputs by ``embedding_dim``
MAX_EMBEDDED_COLUMNS = 100
MAX_WORKERS = 2  # a second process fills the second core a small network leaves idle; more gain little


@dataclass(frozen=True)
class TableFacts:
    """What the sizing reads off the data: training rows, raw feature columns, the task."""

    rows: int
    columns: int
    task: str

    @classmethod
    def of(cls, split: Any) -> TableFacts:
        """The facts of a loaded ``DatasetSplit`` (its training rows)."""
        shape = getattr(split.X_train, "shape", (len(split.y_train), 1))
        return cls(int(shape[0]), int(shape[1]) if len(shape) > 1 else 1, split.task)


def applies(config: StudyConfig) -> bool:
    """Whether the recipe fills ``config``'s unset keys: ``recipe: tables``, our network, flat rows."""
    return config.recipe == "tables" and config.model.factory is None and config.dataset.row_shape not in SHAPED


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def sizing(rows: int) -> dict[str, int]:
    """Batch size, epochs, early-stopping patience and trials for ``rows`` training rows.

    About 24 batches per epoch (batch 32 .. 1024, a power of two: housing's 11,610 rows get 512); epochs so
    that a trial may take about 2,000 steps (100 .. 200 epochs: a 500-row table gets more epochs of few
    steps, each epoch's fixed cost - validation, pruning, tracking - bounding them); patience a tenth of the
    epochs (8 .. 20); more trials where trials are cheap (small tables).
    """
    batch = int(min(1024, max(32, 2 ** round(math.log2(max(rows, 1) / 24)))))
    steps = max(1, math.ceil(rows / batch))
    epochs = int(min(200, max(100, round(2000 / steps, -1))))
    patience = int(min(20, max(8, epochs // 10)))
    trials = 24 if rows < 2000 else 16 if rows < 20000 else 12
    return {"batch_size": batch, "epochs": epochs, "patience": patience, "n_trials": trials}


def table_recipe(facts: TableFacts | None, cores: int | None = None) -> dict[str, Any]:
    """The recipe's settings as a study file's sections; without ``facts``, the part the data does not size."""
    recipe: dict[str, Any] = {
        "preprocessing": {"scaling": "quantile"},
        "model": dict(RECIPE_MODEL),
        "search": {"workers": max(1, min(MAX_WORKERS, cores or _cores()))},
        "export": {"ensemble": {"method": "greedy", "size": 10, "candidates": 6}, "train_on": "train+valid"},
    }
    if facts is None:
        return recipe
    size = sizing(facts.rows)
    embedded = facts.columns <= MAX_EMBEDDED_COLUMNS
    recipe["model"]["numeric_embedding"] = "periodic" if embedded else "none"
    recipe["space"] = {
        "n_hidden": {"type": "int", "low": 2, "high": 3},
        "n_neurons": {"type": "int", "low": 64, "high": 256, "log": True},
        "learning_rate": {"type": "float", "low": 1.0e-3, "high": 5.0e-3, "log": True},
        "frequency_scale": {"type": "float", "low": 0.02, "high": 0.5, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    }
    recipe["search"]["n_trials"] = size["n_trials"]
    if facts.task != "regression":  # trials ranked by validation log loss: accuracy on a few hundred rows
        recipe["search"]["metric"] = "log_loss"  # ties and jumps by whole rows (the test scores show both)
    recipe["training"] = {"epochs": size["epochs"], "batch_size": size["batch_size"],
                          "early_stopping": {"patience": size["patience"]}}
    return recipe


#: Sections that are one setting: a study's own space or ensemble is never mixed with the recipe's.
ATOMIC = ("space", "ensemble")


def _fill(given: dict[str, Any], recipe: dict[str, Any], prefix: str = "") -> list[str]:
    """Add to ``given`` (in place) what ``recipe`` has and it lacks; the dotted keys added (a section of
    `ATOMIC` counts as one key)."""
    added = []
    for key, value in recipe.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ATOMIC:
            inner = given.setdefault(key, {})
            added += _fill(inner, value, f"{dotted}.")
        elif key not in given:
            given[key] = value
            added.append(dotted)
    return added


def _fit_to_study(recipe: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The recipe without what would contradict the study's own keys: space entries the study fixes in
    ``model`` (or embedding knobs without the embedding), the ensemble where trials are scored by K folds or
    where several objectives leave one point of a front to export."""
    model = {**recipe.get("model", {}), **given.get("model", {})}
    space = recipe.get("space")
    if space is not None:
        recipe["space"] = {name: spec for name, spec in space.items()
                           if name not in given.get("model", {})
                           and (name != "frequency_scale" or model.get("numeric_embedding") == "periodic")}
    if given.get("search", {}).get("cv", "validation") != "validation":
        recipe.pop("export", None)  # the ensemble and retraining read the trials' validation predictions
    if len(given.get("search", {}).get("objectives") or ()) > 1:
        recipe.get("export", {}).pop("ensemble", None)  # several objectives: one chosen point is exported
    return recipe


def with_recipe(config: StudyConfig, facts: TableFacts | None = None, cores: int | None = None,
                ) -> tuple[StudyConfig, list[str]]:
    """``config`` with the recipe's settings in every key its file leaves out, and the dotted keys filled
    (none when the recipe does not apply or everything is set)."""
    if not applies(config):
        return config, []
    given = config.model_dump(mode="json", exclude_unset=True)
    recipe = _fit_to_study(table_recipe(facts, cores), given)
    added = _fill(given, recipe)
    if not added:
        return config, []
    filled = load_study_dict(given, source="the study's recipe")
    filled._source = config.source
    return filled, added


def read_facts(config: StudyConfig) -> TableFacts | None:
    """The data facts stored by an earlier run of this study, or None."""
    try:
        data = json.loads((config.export_dir / FACTS_FILE).read_text())
        return TableFacts(int(data["rows"]), int(data["columns"]), str(data["task"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def with_stored(config: StudyConfig) -> StudyConfig:
    """``config`` as an earlier run sized it (stored facts), else with the recipe's data-free part: what a
    check before loading the data compares with the study store."""
    return with_recipe(config, read_facts(config))[0]


@dataclass
class RecipeStep:
    """What the recipe decided on the loaded data: the config to run, the note to print, the facts to store."""

    config: StudyConfig
    notes: list[str] = field(default_factory=list)
    facts: TableFacts | None = None


def resolve(config: StudyConfig, split: Any) -> RecipeStep:
    """Size the recipe on ``split`` (the loaded ``DatasetSplit``) and fill ``config``'s unset keys (``config``: the study as its file and
    overrides give it, not a config the recipe already filled)."""
    if not applies(config):
        return RecipeStep(config)
    facts = TableFacts.of(split)
    filled, added = with_recipe(config, facts)
    if not added:  # the file sets every key the recipe sizes: nothing to store
        return RecipeStep(filled)
    shown = ", ".join(_shown(filled, key) for key in added)
    note = (f"recipe for a table of {facts.rows:,} training rows x {facts.columns} columns: {shown}; "
            "set any of these keys in the study file to change it, or recipe: plain for the plain defaults")
    return RecipeStep(filled, [note], facts)


def _shown(config: StudyConfig, dotted: str) -> str:
    if dotted == "space":
        return "space " + ", ".join(config.space)
    value = config.value_of(dotted)
    if hasattr(value, "model_dump"):
        value = ", ".join(f"{k} {v}" for k, v in value.model_dump(mode="json").items())
    return f"{dotted} {value}"


def save(step: RecipeStep) -> list[Path]:
    """Store the facts ``step`` sized the study with (``recipe.json`` in its export directory)."""
    if step.facts is None:
        return []
    path = step.config.export_dir / FACTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(step.facts), indent=2) + "\n")
    return [path]
