"""Before the search of a study with ``model.build``: one model built, run, saved and loaded back.

:func:`preflight` takes a few seconds after the data is loaded: it calls the user's factory with the
first trial's values (:func:`first_values`) and the facts of the data, runs two training rows forward,
saves the model as ``.keras`` in a temporary folder and loads it back with ``keras.saving.load_model``.
A factory that fails there would fail every trial (or the export), so the run stops at once with the
factory's own error, naming the study file and the factory (exit code 2, no traceback). It also refuses a
compile knob (``learning_rate``, ``optimizer`` ...) that the study sets or tunes when the factory compiles
the model itself and does not take it: the knob would change nothing.

:func:`fact_notes` says which defaults the factory gives to facts (``input_shape=[8]``) the data replaces.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from estimators import hyperparams
from estimators.factory import Factory
from tuning.config.schema import StudyConfig
from tuning.data.sources import DatasetSplit
from tuning.errors import StudyConfigError
from tuning.search import space
from tuning.search.space import estimator_params

__all__ = ["fact_notes", "facts_of", "first_values", "preflight"]


def first_values(config: StudyConfig) -> dict[str, Any]:
    """The values the preflight builds with: every active ``space`` entry at its low end (a categorical at its
    first choice; a ``per`` entry as a list of them), then the fixed ``model:`` arguments; the factory's own
    defaults give the rest (a KerasTuner hypermodel: its ``hp`` defaults)."""
    values = estimator_params(config, space.first_values(config.space))
    return {**values, **config.model.fixed_params()}


def facts_of(X: np.ndarray, y: np.ndarray, task: str, seed: Any) -> dict[str, Any]:
    """The facts a factory is given, as the estimators give them (one row's shape after preprocessing ...)."""
    n_classes = None if task == "regression" else int(len(np.unique(y)))
    model_task = task if task == "regression" else ("multiclass" if (n_classes or 2) > 2 else "binary")
    return {"input_shape": tuple(int(d) for d in X.shape[1:]), "n_features": int(X.shape[1]),
            "n_classes": n_classes, "task": model_task, "seed": seed}


def fact_notes(factory: Factory, facts: dict[str, Any]) -> list[str]:
    """One note for the defaults the factory gives facts, which the data's values replace."""
    replaced = [f"{name}={default!r} -> {facts[name]!r}" for name, default in factory.fact_defaults.items()
                if name in facts]
    if not replaced:
        return []
    return [f"model.build {factory.label}: its default{'s' if len(replaced) > 1 else ''} for "
            f"{', '.join(replaced)} (given from the data)"]


def preflight(config: StudyConfig, split: DatasetSplit, X_train: np.ndarray | None = None,
              knobs: tuple[str, ...] = ()) -> list[str]:
    """Check the study's factory on the data (see the module docstring); its notes to print.

    ``X_train``: the training rows after preprocessing (fitted here on the training rows when None);
    ``knobs``: compile knobs the caller sets besides the study's (the range test: ``learning_rate``).
    """
    factory = config.model.factory
    if factory is None:
        return []
    if X_train is None:
        from tuning.search.trial import PreparedData

        X_train = PreparedData.from_split(split, config.preprocessing).X_train
    X = np.asarray(X_train[:2], dtype=np.float32)
    facts = facts_of(np.asarray(X_train[:1]), split.y_train, split.task, config.search.seed)
    values = first_values(config)
    arguments = {name: value for name, value in values.items() if factory.takes(name)}
    study = config.source.path if config.source is not None else config.name
    where = f"{study}: model.build {factory.label}"
    try:
        import keras

        model = factory.build(arguments, facts)
        np.asarray(model(X, training=False))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "preflight.keras"
            model.save(path)
            keras.saving.load_model(path)
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        raise StudyConfigError(f"{where} failed its check before the search (built with {shown or 'its defaults'}, "
                               f"run on 2 rows, saved and loaded): {_last_line(exc)}") from None
    finally:
        _clear()
    if model.compiled:
        unused = [name for name in dict.fromkeys([*values, *knobs])
                  if name in _compile_names() and not factory.takes(name)]
        if unused:
            names = ", ".join(unused)
            raise StudyConfigError(
                f"{where} compiles the model itself and does not take {names}, so setting or tuning "
                f"{'it' if len(unused) == 1 else 'them'} would change nothing; make {names} an argument of the "
                "factory, or return the model uncompiled (the study then compiles it)"
            )
    return fact_notes(factory, facts)


def _compile_names() -> set[str]:
    return {p.name for p in hyperparams.compile_knobs()}


def _clear() -> None:
    import keras

    keras.backend.clear_session(free_memory=False)


def _last_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
