"""A user's model factory: a function that returns a Keras model, where it lives and what it takes.

:func:`resolve` turns what a user gives (the function itself, ``"package.module:function"`` or
``"path/to/file.py:function"``) into a :class:`Factory`: the function, the file it comes from (shipped with
an export, hashed to notice a changed factory), its own arguments (the estimator's parameters, by their
names and defaults) and the facts it takes (arguments named in :data:`FACTS`, given from the data).
Every problem raises :class:`FactoryError` naming the factory. Pure Python: no TensorFlow until the factory
itself is imported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from estimators.common import hyperparams

__all__ = ["FACTS", "HP_VALUES", "Factory", "FactoryError", "import_file", "is_hypermodel", "reserved_names", "resolve"]

#: Factory arguments given from the data, never by the user: the shape of one row after preprocessing
#: (a tuple; with ``inputs``, a dict of them by input name), the number of features (the product of that
#: shape; with ``inputs`` a dict), of classes (None for regression), the task
#: (``regression``/``binary``/``multiclass``), the fit's seed (an int, or None), and for rows of token ids
#: the vocabulary size (ids are 0 to ``vocab_size - 1``; the largest id + 1 unless the estimator is given
#: it) and the sequence length (None for other data); and scikeras' own two, ``meta`` and ``compile_kwargs``
#: (:mod:`estimators.own_model.scikeras_args`), so that a model function written for scikeras runs unchanged.
FACTS: tuple[str, ...] = ("input_shape", "n_features", "n_classes", "task", "seed", "vocab_size", "sequence_length",
                          "meta", "compile_kwargs")


class FactoryError(ValueError):
    """A model factory that cannot be used; the message names it and says what to do."""


def reserved_names() -> dict[str, str]:
    """Names no factory argument may have, each with what it already is."""
    names = {"build": "the estimator's factory", "inputs": "the estimator's mapping of columns to model inputs"}
    for estimator in ("regressor", "classifier"):
        for knob in hyperparams.training_knobs(estimator):
            names[knob.name] = "a training setting of the estimator"
    return names


@dataclass(frozen=True)
class Factory:
    """A resolved factory: ``function`` and what the estimators and the study need to know of it."""

    function: Callable[..., Any]
    #: how the user named it (``models/handson.py:build_model``), for messages
    label: str
    #: the module it is imported from (``handson`` for a file, ``package.module``)
    module: str
    #: the file that defines it (None when Python has no file for it)
    source: Path | None
    #: its own arguments, in signature order (facts not included)
    parameters: tuple[inspect.Parameter, ...] = ()
    #: the facts it takes (names of :data:`FACTS`)
    facts: tuple[str, ...] = ()
    #: whether it takes ``**kwargs`` (any name is then one of its arguments)
    accepts_kwargs: bool = False
    #: defaults it gives to facts, which the data replaces
    fact_defaults: Mapping[str, Any] = field(default_factory=dict)
    #: imported from a file path (``file.py:function``): other processes import it by that path, not by name
    from_file: bool = False
    #: a KerasTuner hypermodel ``build(hp)``: its one argument is KerasTuner's ``hp``, and its parameter is
    #: ``hp_values`` (the values it drew, replayed by :class:`estimators.own_model.keras_tuner_hp.HyperParameters`)
    takes_hp: bool = False
    #: with ``takes_hp``, how it is given ``hp``: ``hp`` (``build(hp)``), ``trial`` (an Optuna ``create_model(trial)``)
    #: or ``class`` (a KerasTuner ``HyperModel`` class): :mod:`estimators.own_model.define_by_run`
    hp_style: str = "hp"

    @property
    def name(self) -> str:
        return self.function.__qualname__

    @property
    def argument_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def defaults(self) -> dict[str, Any]:
        """Its arguments that have defaults, with them."""
        return {p.name: p.default for p in self.parameters if p.default is not inspect.Parameter.empty}

    def required(self) -> list[str]:
        """Its arguments without a default."""
        return [p.name for p in self.parameters if p.default is inspect.Parameter.empty]

    def takes(self, name: str) -> bool:
        """Whether ``name`` is one of its own arguments (any name but a fact or the estimator's ``inputs``, when
        it takes ``**kwargs``)."""
        return name in self.argument_names or (self.accepts_kwargs and name not in FACTS and name != "inputs")

    def reference(self) -> Any:
        """What to give ``build`` in another process (joblib workers): the function, which pickles by
        reference to its module, or for a file factory ``"/absolute/file.py:function"``, since no other
        process can import a file's module by its name."""
        if self.from_file and self.source is not None:
            return f"{self.source}:{self.function.__name__}"
        return self.function

    def digest(self) -> str:
        """sha256 of its source file ("" when there is none): a changed factory has another digest."""
        if self.source is None or not self.source.is_file():
            return ""
        return hashlib.sha256(self.source.read_bytes()).hexdigest()

    def build(self, arguments: Mapping[str, Any], facts: Mapping[str, Any]) -> Any:
        """Call the factory with ``arguments`` and the facts it takes; check that it returned a Keras model."""
        import keras

        given = {**arguments, **{name: facts[name] for name in self.facts}}
        missing = [name for name in self.required() if name not in given]
        if missing:
            raise TypeError(
                f"{self.label} needs argument{'s' if len(missing) > 1 else ''} {_names(missing)}: give "
                f"{'them' if len(missing) > 1 else 'it'} to the estimator (or in the study's model: or space:)"
            )
        if self.takes_hp:
            model = self.build_with(_replaying_hp(given.get(HP_VALUES)))
        else:
            model = self.function(**given)
        if not isinstance(model, keras.Model):
            raise TypeError(f"{self.label} returned {type(model).__name__}, not a Keras model")
        return model

    def build_with(self, hp: Any) -> Any:
        """What a define-by-run factory (``takes_hp``) returns when given ``hp``, whichever its style."""
        from estimators.own_model.define_by_run import build_with

        return build_with(self.function, self.hp_style, hp, self.label)


#: the parameter of a KerasTuner hypermodel's estimator: the values its ``hp`` gives, by name
HP_VALUES = "hp_values"
_HP_PARAMETER = inspect.Parameter(HP_VALUES, inspect.Parameter.KEYWORD_ONLY, default=None)


def _replaying_hp(values: Any) -> Any:
    from estimators.own_model.keras_tuner_hp import HyperParameters

    if values is not None and not isinstance(values, Mapping):
        raise TypeError(f"hp_values must be a dict of the values hp gives by name, got {type(values).__name__}")
    return HyperParameters(values=values)


def is_hypermodel(signature: inspect.Signature) -> bool:
    """Whether a signature is define-by-run: one argument, named ``hp`` (KerasTuner's ``build(hp)``) or
    ``trial`` (an Optuna model function)."""
    from estimators.own_model.define_by_run import style_of

    return style_of(signature) is not None


def resolve(build: Any, base_dir: str | Path | None = None) -> Factory:
    """The :class:`Factory` of ``build``: a function, ``"package.module:function"`` or ``"file.py:function"``
    (a relative path is relative to ``base_dir``, default the working directory)."""
    if isinstance(build, str):
        return _resolve_string(build, Path(base_dir) if base_dir is not None else Path.cwd())
    if not callable(build):
        raise FactoryError(
            f"build must be a function returning a Keras model, 'package.module:function' or "
            f"'path/to/file.py:function', got {build!r}"
        )
    label = f"{getattr(build, '__module__', '?')}:{getattr(build, '__qualname__', repr(build))}"
    return _describe(build, label)


def _resolve_string(text: str, base_dir: Path) -> Factory:
    where, sep, name = text.strip().rpartition(":")
    if not sep or not where or not name:
        raise FactoryError(
            f"build {text!r}: write 'path/to/file.py:function' or 'package.module:function'"
        )
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise FactoryError(f"build {text!r}: no file {path}")
        module = _import_path(path, text)
        label = f"{where}:{name}"
        from_file = True
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:  # the user's module failed to import: its own last line says why
            raise FactoryError(f"build {text!r}: cannot import {where}: {_last_line(exc)}") from None
        label = text.strip()
        from_file = False
    function = getattr(module, name, None)
    if function is None:
        functions = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        hint = _suggest(name, functions)
        raise FactoryError(f"build {text!r}: {where} has no function '{name}'{hint}")
    if not callable(function):
        raise FactoryError(f"build {text!r}: '{name}' in {where} is a {type(function).__name__}, not a function")
    factory = _describe(function, label)
    return dataclasses.replace(factory, from_file=from_file) if from_file else factory


def import_file(path: str | Path, module: str) -> types.ModuleType:
    """Import the Python file ``path`` as module ``module`` (dotted names get empty parent packages where
    none imports); a module of that name already imported is returned as it is."""
    if module in sys.modules:
        return sys.modules[module]
    _ensure_package(module.rpartition(".")[0])
    spec = importlib.util.spec_from_file_location(module, Path(path))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[module]
        raise
    parent, _, child = module.rpartition(".")
    if parent:  # as the import system does: ``import package.module`` then ``package.module`` finds it
        setattr(sys.modules[parent], child, loaded)
    return loaded


def _ensure_package(name: str) -> None:
    """Make ``name`` importable: the real package where there is one, else an empty one."""
    if not name or name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    _ensure_package(name.rpartition(".")[0])
    stub = types.ModuleType(name)
    stub.__path__ = []  # a package without files: its submodules come from sys.modules
    sys.modules[name] = stub


def _import_path(path: Path, text: str) -> types.ModuleType:
    path = path.resolve()
    module = path.stem
    if not module.isidentifier():
        raise FactoryError(f"build {text!r}: '{path.name}' is not a Python module name; rename the file "
                           "(letters, digits and _)")
    known = sys.modules.get(module)
    if known is not None:
        if Path(getattr(known, "__file__", "") or "").resolve() == path:
            return known
        raise FactoryError(
            f"build {text!r}: a module named '{module}' is already imported from "
            f"{getattr(known, '__file__', None) or 'elsewhere'}; rename {path.name}"
        )
    try:
        return import_file(path, module)
    except Exception as exc:
        raise FactoryError(f"build {text!r}: cannot import {path.name}: {_last_line(exc)}") from None


def _describe(function: Callable[..., Any], label: str) -> Factory:
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    module_name = getattr(function, "__module__", None)
    put_it = "put the factory in a module (a .py file) and pass it, or 'file.py:function'"
    if name is None or module_name is None:
        raise FactoryError(f"build {function!r} is not a plain function; {put_it}")
    if name == "<lambda>":
        raise FactoryError(f"build is a lambda, which cannot be saved with the model; {put_it}")
    if "<locals>" in name:
        raise FactoryError(f"build {name} is defined inside another function, so it cannot be saved with "
                           f"the model; {put_it}")
    if module_name == "__main__":
        raise FactoryError(f"build {name} is defined in __main__ (the script or notebook being run), so no "
                           f"other process can import it; {put_it}")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise FactoryError(f"build {label}: cannot read its arguments: {exc}") from None
    module = sys.modules.get(module_name)
    source = _source_file(function, module)
    from estimators.own_model.define_by_run import class_problem, is_hypermodel_class, style_of

    if is_hypermodel_class(function):  # a KerasTuner HyperModel (or any class with build(hp))
        problem = class_problem(function)
        if problem:
            raise FactoryError(f"build {label}: {problem}")
        return Factory(function, label, module_name, source, (_HP_PARAMETER,), takes_hp=True, hp_style="class")
    style = style_of(signature)
    if style is not None:
        return Factory(function, label, module_name, source, (_HP_PARAMETER,), takes_hp=True, hp_style=style)
    reserved = reserved_names()
    own, facts, fact_defaults, kwargs = [], [], {}, False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            kwargs = True
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        elif parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise FactoryError(f"{label}: argument '{parameter.name}' is positional-only; the estimator passes "
                               "arguments by name")
        elif parameter.name in FACTS:
            facts.append(parameter.name)
            if parameter.default is not inspect.Parameter.empty:
                fact_defaults[parameter.name] = parameter.default
        elif parameter.name in reserved:
            raise FactoryError(
                f"{label}: argument '{parameter.name}' has the name of {reserved[parameter.name]}; rename it in "
                f"the factory (for example 'model_{parameter.name}')"
            )
        else:
            own.append(parameter)
    return Factory(function, label, module_name, source, tuple(own), tuple(facts), kwargs, fact_defaults)


def _source_file(function: Callable[..., Any], module: types.ModuleType | None) -> Path | None:
    try:
        file = inspect.getsourcefile(function) or getattr(module, "__file__", None)
    except TypeError:
        file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _suggest(word: str, candidates: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f" (it has: {', '.join(sorted(candidates))})" if candidates else ""


def _last_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[-1] if text else type(exc).__name__
