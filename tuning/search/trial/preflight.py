"""Before the search of a study with ``model.build``: one model built, run, saved and loaded back.

:func:`preflight` takes a few seconds after the data is loaded: it calls the user's factory with the
first trial's values (:func:`first_values`) and the facts of the data, runs two training rows forward,
saves the model as ``.keras`` in a temporary folder and loads it back with ``keras.saving.load_model``.
With ``model.inputs``, the model's ``keras.Input`` names must be exactly its keys (the message shows both
lists). A factory that fails there would fail every trial (or the export), so the run stops at once with
the factory's own error, naming the study file and the factory (exit code 2, no traceback). It also refuses
a compile knob (``learning_rate``, ``optimizer`` ...) that the study sets or tunes when the factory compiles
the model itself and does not take it: the knob would change nothing.

:func:`fact_notes` says which defaults the factory gives to facts (``input_shape=[8]``) the data replaces.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from estimators.common import hyperparams
from estimators.own_model.factory import Factory
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


def facts_of(X: np.ndarray, y: np.ndarray, task: str, seed: Any, inputs: dict[str, list[int]] | None = None,
             vocab_size: int | None = None) -> dict[str, Any]:
    """The facts a factory is given, as the estimators give them (one row's shape after preprocessing ...;
    with ``inputs``, shapes and feature counts by input name; for integer rows, the token facts)."""
    n_classes = None if task == "regression" else int(len(np.unique(y)))
    model_task = task if task == "regression" else ("multiclass" if (n_classes or 2) > 2 else "binary")
    shape = tuple(int(d) for d in X.shape[1:])
    if vocab_size is None and X.ndim == 2 and X.dtype.kind in "iu":
        vocab_size = int(X.max()) + 1
    return {"input_shape": shape if not inputs else {n: (len(c),) for n, c in inputs.items()},
            "n_features": int(np.prod(shape)) if not inputs else {n: len(c) for n, c in inputs.items()},
            "n_classes": n_classes, "task": model_task, "seed": seed, "vocab_size": vocab_size,
            "sequence_length": shape[0] if len(shape) == 1 and vocab_size is not None else None}


def fact_notes(factory: Factory, facts: dict[str, Any]) -> list[str]:
    """One note for the defaults the factory gives facts, which the data's values replace."""
    replaced = [f"{name}={default!r} -> {facts[name]!r}" for name, default in factory.fact_defaults.items()
                if name in facts]
    if not replaced:
        return []
    return [f"model.build {factory.label}: its default{'s' if len(replaced) > 1 else ''} for "
            f"{', '.join(replaced)} (given from the data)"]


def preflight(config: StudyConfig, split: DatasetSplit, data: Any = None,
              knobs: tuple[str, ...] = ()) -> list[str]:
    """Check the study's factory on the data (see the module docstring); its notes to print.

    ``data``: the :class:`~tuning.data.prepared.PreparedData` (fitted here on the training rows when None);
    ``knobs``: compile knobs the caller sets besides the study's (the range test: ``learning_rate``).
    """
    factory = config.model.factory
    if factory is None:
        return []
    if data is None:
        from tuning.data.prepared import PreparedData

        data = PreparedData.from_split(split, config.preprocessing, getattr(config.model, "inputs", None))
    X_train, inputs = np.asarray(data.X_train), data.inputs
    X = np.asarray(X_train[:2], dtype=np.float32)
    if inputs:
        X = {name: X[:, columns] for name, columns in inputs.items()}
    facts = facts_of(X_train[:2], split.y_train, split.task, config.search.seed, inputs, split.vocab_size)
    values = first_values(config)
    facts.update(_scikeras_facts(factory, X_train[:2], split.y_train, split.task, values))
    arguments = {name: value for name, value in values.items() if factory.takes(name)}
    study = config.source.path if config.source is not None else config.name
    where = f"{study}: model.build {factory.label}"
    try:
        import keras

        model = factory.build(arguments, facts)
        _check_input_names(model, inputs, where)
        np.asarray(model(X, training=False))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "preflight.keras"
            model.save(path)
            keras.saving.load_model(path)
    except StudyConfigError:
        raise
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        mapped = f" (model.inputs names {sorted(inputs)})" if inputs else ""
        raise StudyConfigError(f"{where} failed its check before the search (built with {shown or 'its defaults'}, "
                               f"run on 2 rows, saved and loaded){mapped}: {_last_line(exc)}") from None
    finally:
        _clear()
    if model.compiled:
        unused = [name for name in dict.fromkeys([*values, *knobs])
                  if name in _compile_names() and not factory.takes(name)
                  and not ("compile_kwargs" in factory.facts and name in _OPTIMIZER_KNOBS)]
        if unused:
            names = ", ".join(unused)
            raise StudyConfigError(
                f"{where} compiles the model itself and does not take {names}, so setting or tuning "
                f"{'it' if len(unused) == 1 else 'them'} would change nothing; make {names} an argument of the "
                "factory, or return the model uncompiled (the study then compiles it)"
            )
    return fact_notes(factory, facts)


def _check_input_names(model: Any, inputs: dict[str, list[int]] | None, where: str) -> None:
    """With ``model.inputs``: the model's ``keras.Input`` names are exactly its keys (both lists shown)."""
    if not inputs:
        return
    names = [t.name for t in getattr(model, "inputs", None) or []]
    if sorted(names) != sorted(inputs):
        raise StudyConfigError(
            f"{where}: model.inputs names {sorted(inputs)}, but the model's inputs are named {sorted(names)}; "
            "name each keras.Input(name=...) as a key of model.inputs (or rename the keys)")


#: compile knobs a factory taking scikeras' ``compile_kwargs`` uses: they make its ``optimizer``
_OPTIMIZER_KNOBS = ("optimizer", "learning_rate", "momentum", "weight_decay")


def _scikeras_facts(factory: Factory, X: np.ndarray, y: np.ndarray, task: str, values: dict[str, Any]) -> dict:
    """scikeras' ``meta`` and ``compile_kwargs`` for a factory that takes them, as the estimators give them."""
    from estimators.own_model import scikeras_args

    out: dict[str, Any] = {}
    if "meta" in factory.facts or "compile_kwargs" in factory.facts:
        meta = scikeras_args.meta_from_data(X, y, task)
        out["meta"] = meta
        if "compile_kwargs" in factory.facts:
            from estimators.mlp.build import make_optimizer

            knob = {name: values.get(name, hyperparams.HYPERPARAMS[name].default) for name in _OPTIMIZER_KNOBS}
            optimizer = make_optimizer(str(knob["optimizer"]), float(knob["learning_rate"]),
                                       float(knob["momentum"]), knob["weight_decay"])
            loss = scikeras_args.task_loss(task, meta.get("n_classes_"))
            out["compile_kwargs"] = scikeras_args.compile_kwargs(optimizer, loss, scikeras_args.task_metrics(task))
    return out


def _compile_names() -> set[str]:
    return {p.name for p in hyperparams.compile_knobs()}


def _clear() -> None:
    import keras

    keras.backend.clear_session(free_memory=False)


def _last_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
