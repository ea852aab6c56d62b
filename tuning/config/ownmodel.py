"""The ``model:`` section of a study that brings its own Keras model: ``model: {build: "models/x.py:f", ...}``.

With ``build``, the other ``model:`` keys are fixed arguments of the factory (any YAML value), compile knobs
it does not take (used when it returns an uncompiled model) or ``lr_schedule``; ``space:`` keys are the
factory's arguments or the tunable knobs that apply to :class:`estimators.KerasModelRegressor` /
``KerasModelClassifier``. The factory is resolved when the file loads (a relative path is relative to the
study file's folder), so a missing file or function, an import that fails or a key that is no argument is
a config error with its key path and line. The resolved :class:`~estimators.own_model.factory.Factory` is cached on
the section (``config.model.factory``) and resolved again where the config is unpickled (a worker process):
the section keeps the absolute form of ``build`` for that, and writes it when dumped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationInfo, field_serializer, model_validator
from pydantic_core import InitErrorDetails

from estimators.common import hyperparams
from estimators.own_model.factory import FACTS, Factory, FactoryError, resolve
from tuning.config.validation import error, raise_errors, suggest

__all__ = [
    "MODEL_EXTRA_KNOBS",
    "MODEL_TAGS",
    "OWN_TUNABLE_KNOBS",
    "OwnModelConfig",
    "absolute_build",
    "model_kind",
    "own_space_errors",
]

#: the tags of the two kinds of ``model:`` section (pydantic's union tags, dropped from error locations)
MODEL_TAGS = ("mlp", "own")
_COMPILE = {p.name for p in hyperparams.compile_knobs()}
#: ``model:`` keys besides the factory's arguments: compile knobs it does not take, and the schedule
MODEL_EXTRA_KNOBS: frozenset[str] = frozenset(_COMPILE | {"lr_schedule"})
#: ``space:`` keys besides the factory's arguments: the tunable training and compile knobs
OWN_TUNABLE_KNOBS: frozenset[str] = frozenset(
    p.name for p in [*hyperparams.training_knobs("regressor"), *hyperparams.compile_knobs()] if p.tunable
)
_FACT_MEANING = {
    "input_shape": "the shape of one preprocessed row",
    "n_features": "the number of features after preprocessing",
    "n_classes": "the number of classes",
    "task": "the task",
    "seed": "the trial's seed",
    "vocab_size": "dataset.num_words with dataset.shape: sequences",
    "sequence_length": "dataset.max_length with dataset.shape: sequences",
}


def model_kind(value: Any) -> str:
    """``own`` for a ``model:`` section with ``build`` (a user's factory), else ``mlp`` (our network)."""
    if isinstance(value, dict):
        return "own" if "build" in value else "mlp"
    return "own" if isinstance(value, OwnModelConfig) else "mlp"


def absolute_build(text: str, base_dir: Path | None) -> str:
    """``build`` with a relative file path made absolute against ``base_dir`` (default: the working
    directory); ``package.module:function`` and absolute paths unchanged."""
    where, sep, name = text.strip().rpartition(":")
    if not sep or not (where.endswith(".py") or "/" in where or "\\" in where):
        return text
    path = Path(where).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return f"{path.resolve()}:{name}"


class OwnModelConfig(BaseModel):
    """``model:`` with ``build``: the factory and its fixed arguments (see the module docstring)."""

    model_config = ConfigDict(extra="allow")

    build: str
    #: Keras input name -> the raw feature columns it takes (names, or 0-based positions); None: one input
    inputs: dict[str, list[str | int]] | None = None
    #: ``build`` with an absolute file path: what another process resolves, and what a dump writes
    _absolute: str = PrivateAttr("")
    _factory: Factory | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> OwnModelConfig:
        base_dir = (info.context or {}).get("base_dir")
        self._absolute = absolute_build(self.build, Path(base_dir) if base_dir is not None else None)
        try:
            self._factory = resolve(self.build, base_dir)
        except FactoryError as exc:
            raise_errors("OwnModelConfig", [error(("build",), str(exc), self.build)])
        raise_errors("OwnModelConfig", self._key_errors() + self._inputs_errors())
        return self

    def _inputs_errors(self) -> list[InitErrorDetails]:
        if self.inputs is None:
            return []
        if not self.inputs:
            return [error(("inputs",), "map at least one Keras input name to its columns", self.inputs)]
        return [error(("inputs", name), f"inputs.{name}: give a non-empty list of columns", columns)
                for name, columns in self.inputs.items() if not columns]

    def _key_errors(self) -> list[InitErrorDetails]:
        factory = self.factory
        errors = []
        for name, value in self.fixed_params().items():
            if name in FACTS:
                errors.append(error((name,), fact_given(name, factory, "model"), name))
            elif factory.takes(name):
                continue
            elif name in MODEL_EXTRA_KNOBS:
                problem = hyperparams.HYPERPARAMS[name].problem(value)
                if problem:
                    errors.append(error((name,), f"{name}: {problem}", value))
            else:
                errors.append(error((name,), unknown_key(name, factory, "model"), name))
        return errors

    @field_serializer("build")
    def _dump_build(self, build: str) -> str:
        return self._absolute or build

    @property
    def factory(self) -> Factory:
        """The resolved factory (resolved again after unpickling, from the absolute ``build``)."""
        if self._factory is None:
            self._factory = resolve(self._absolute or self.build)
        return self._factory

    def fixed_params(self) -> dict[str, Any]:
        """Every ``model:`` key but ``build``, as given (None included: a factory argument may take it)."""
        return dict(self.model_extra or {})

    def __eq__(self, other: object) -> bool:
        """The same factory (by its absolute ``build``) and the same arguments; the cache does not count."""
        if not isinstance(other, OwnModelConfig):
            return NotImplemented
        return ((self._absolute or self.build, self.model_extra, self.inputs)
                == (other._absolute or other.build, other.model_extra, other.inputs))

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private["_factory"] = None  # a function of a file module: imported again where unpickled
        state["__pydantic_private__"] = private
        return state


def fact_given(name: str, factory: Factory, section: str) -> str:
    return (f"'{name}' is given to {factory.label} from the data ({_FACT_MEANING.get(name, 'a fact')}); "
            f"leave it out of {section}:")


def unknown_key(name: str, factory: Factory, section: str) -> str:
    """An unknown ``model:`` / ``space:`` key of a study with ``build``, with what is allowed."""
    knobs = MODEL_EXTRA_KNOBS if section == "model" else OWN_TUNABLE_KNOBS
    table = hyperparams.HYPERPARAMS.get(name)
    if table is not None and table.study and not (section == "space" and table.tunable):
        return f"'{name}' is a training setting: set it in {table.study}"
    allowed = sorted(set(factory.argument_names) | knobs)
    hint = suggest(name, allowed) or f"; allowed: {', '.join(allowed)}"
    what = "a fixed argument" if section == "model" else "tuned"
    return f"'{name}' is not an argument of {factory.label} nor a knob that can be {what} here{hint}"


def own_space_errors(factory: Factory, name: str) -> str | None:
    """Why ``space.<name>`` is refused with this factory, or None."""
    if name in FACTS:
        return fact_given(name, factory, "space")
    if factory.takes(name) or name in OWN_TUNABLE_KNOBS:
        return None
    return unknown_key(name, factory, "space")
