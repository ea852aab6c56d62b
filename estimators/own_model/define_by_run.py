"""Define-by-run factories as other tools write them: an Optuna model function, a KerasTuner ``HyperModel`` class.

Both ride on KerasTuner's ``hp`` (:class:`~estimators.own_model.keras_tuner_hp.HyperParameters`): a study draws
their values through it from the live Optuna trial as the model builds, and the estimator replays the values
drawn (``hp_values``) in a refit, an export, a worker or a fresh process.

* **A function of one argument named** ``trial`` (optuna-examples' ``create_model(trial)``) is given a
  :class:`TrialAdapter`: its ``suggest_int`` / ``suggest_float`` / ``suggest_categorical`` (and the older
  ``suggest_uniform`` / ``suggest_loguniform`` / ``suggest_discrete_uniform``) are ``hp``'s draws, so the names
  it suggests are the trial's parameters, drawn by the study's sampler.
* **A class with** ``build(self, hp)`` (a ``keras_tuner.HyperModel`` subclass, or any class) is instantiated
  without arguments and its ``build`` is the hypermodel; its ``fit(self, hp, model, *args, **kwargs)``, when it
  has one, wraps the estimator's training: :func:`fit_through` gives it the rows as ``x, y`` and the
  estimator's own settings (epochs, callbacks: early stopping, pruning, the per-epoch metric) as keyword
  arguments, and a model whose ``fit`` trains on the estimator's seeded pipeline with the ``batch_size`` and
  ``shuffle`` the user's fit passes. A study draws the values that fit asks for by calling it once with a
  model that trains nothing (:func:`rehearse_fit`); a fit that needs the data before it draws gets its
  defaults for the values it did not reach there.

Pure Python until a model is built; KerasTuner itself is never imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["TrialAdapter", "build_with", "class_problem", "fit_through", "is_hypermodel_class", "rehearse_fit",
           "style_of", "user_fit"]

#: how a define-by-run factory is called: ``build(hp)``, ``create_model(trial)``, or a class's ``build``
STYLES = ("hp", "trial", "class")


def style_of(signature: inspect.Signature) -> str | None:
    """``hp`` or ``trial`` for a function of one positional argument of that name; else None."""
    parameters = list(signature.parameters.values())
    if len(parameters) != 1 or parameters[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                          inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return None
    return parameters[0].name if parameters[0].name in ("hp", "trial") else None


def is_hypermodel_class(obj: Any) -> bool:
    """A class with a ``build`` method that is no Keras layer or model (whose ``build`` takes a shape)."""
    if not inspect.isclass(obj) or not callable(getattr(obj, "build", None)):
        return False
    return not any(base.__name__ == "Layer" and base.__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow")
                   for base in obj.__mro__)


def class_problem(cls: type) -> str | None:
    """What keeps ``cls`` from being used as a hypermodel (None when nothing): it must be made without
    arguments, its ``build`` take ``hp`` and its ``fit`` (optional) take ``hp, model, *args, **kwargs``."""
    name = cls.__qualname__
    try:
        required = [p.name for p in inspect.signature(cls).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    except (TypeError, ValueError):
        required = []
    if required:
        return f"{name}() needs {', '.join(required)}: a hypermodel class is made without arguments"
    if _positional(cls.build) != 1:
        return (f"{name}.build{_shown(cls.build)} does not take hp: write build(self, hp), which builds the model "
                "with hp.Int, hp.Float, hp.Choice ...")
    fit = getattr(cls, "fit", None)
    if fit is not None and _positional(fit) < 2 and not _takes_varargs(fit):
        return f"{name}.fit{_shown(fit)} does not take (hp, model, *args, **kwargs) as KerasTuner's fit does"
    return None


def _positional(method: Callable[..., Any]) -> int:
    """How many positional arguments a class's method takes, ``self`` left out (-1: cannot tell)."""
    try:
        parameters = list(inspect.signature(method).parameters.values())[1:]
    except (TypeError, ValueError):
        return -1
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len([p for p in positional if p.default is inspect.Parameter.empty]) or len(positional[:1])


def _takes_varargs(method: Callable[..., Any]) -> bool:
    try:
        return any(p.kind is p.VAR_POSITIONAL for p in inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False


def _shown(method: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(method))
    except (TypeError, ValueError):
        return "(...)"


def build_with(function: Any, style: str, hp: Any, label: str) -> Any:
    """What the factory returns when given ``hp`` (as ``hp``, through a :class:`TrialAdapter`, or to a new
    instance's ``build``)."""
    if style == "class":
        return function().build(hp)
    if style == "trial":
        return function(TrialAdapter(hp, label))
    return function(hp)


def user_fit(function: Any, style: str) -> Callable[..., Any] | None:
    """A hypermodel class's ``fit`` (on a new instance), or None."""
    if style != "class" or getattr(function, "fit", None) is None:
        return None
    return function().fit


class TrialAdapter:
    """An Optuna trial as a model function sees it: ``suggest_*`` answered by KerasTuner's ``hp`` (a draw from
    the live trial in a study, the recorded value in a refit). A name suggested again gives the value it has;
    with another range or other choices it is refused, naming the factory."""

    def __init__(self, hp: Any, label: str) -> None:
        self._hp = hp
        self._label = label
        self._specs: dict[str, tuple[Any, ...]] = {}

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        """An integer in [low, high] (``step`` apart; ``log``: on a log scale, with step 1)."""
        self._check(name, "suggest_int", (int(low), int(high), int(step), bool(log)))
        if log and step != 1:
            raise ValueError(f"{self._label}: trial.suggest_int({name!r}, ...) takes step or log, not both")
        return self._hp.Int(name, int(low), int(high), step=int(step), sampling="log" if log else "linear")

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        """A real number in [low, high] (``step`` apart, or on a log scale)."""
        self._check(name, "suggest_float", (float(low), float(high), step, bool(log)))
        if log and step is not None:
            raise ValueError(f"{self._label}: trial.suggest_float({name!r}, ...) takes step or log, not both")
        return self._hp.Float(name, float(low), float(high), step=step, sampling="log" if log else "linear")

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        """One of ``choices``."""
        self._check(name, "suggest_categorical", tuple(choices))
        return self._hp.Choice(name, list(choices))

    def suggest_uniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high, log=True)

    def suggest_discrete_uniform(self, name: str, low: float, high: float, q: float) -> float:
        return self.suggest_float(name, low, high, step=q)

    @property
    def params(self) -> dict[str, Any]:
        """The values suggested so far, by name."""
        return dict(self._hp.values)

    def _check(self, name: str, method: str, spec: tuple[Any, ...]) -> None:
        known = self._specs.setdefault(name, (method, *spec))
        if known != (method, *spec):
            raise ValueError(
                f"{self._label}: trial.{method}({name!r}, {_args(spec)}) after trial.{known[0]}({name!r}, "
                f"{_args(known[1:])}): a name is one parameter with one range; give each its own name "
                f"(for example {name!r} + a layer number)")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(
            f"{self._label}: trial.{name} is not available in a model function; it is given suggest_int, "
            "suggest_float, suggest_categorical (and params). The study reports and prunes each epoch itself")


def _args(spec: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in spec)


class _Rehearsal:
    """The model a hypermodel's ``fit`` gets while the study draws its values: ``fit`` trains nothing."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def fit(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def rehearse_fit(function: Any, style: str, hp: Any, model: Any) -> None:
    """Call a hypermodel class's ``fit`` with ``hp`` and a model that trains nothing, so that the values it
    asks ``hp`` for are drawn (no data: ``x`` and ``y`` are None)."""
    fit = user_fit(function, style)
    if fit is not None:
        fit(hp, _Rehearsal(model), None, None, epochs=1, verbose=0, callbacks=[])


class _TrainingModel:
    """The model a hypermodel's ``fit`` gets while the estimator trains: its ``fit(x, y, batch_size=...,
    shuffle=..., **kwargs)`` trains the estimator's model on a seeded ``tf.data`` pipeline of ``x, y``; every
    other attribute is the model's."""

    def __init__(self, model: Any, batch_size: int, seed: int | None, epochs_done: int = 0) -> None:
        self._model, self._batch_size, self._seed = model, batch_size, seed
        self._epochs_done = epochs_done  # a resumed fit: the pipeline reshuffles as after these epochs
        self.trained: Any = None  # the History of the last fit

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, shuffle: bool = True,
            sample_weight: Any = None, **kwargs: Any) -> Any:
        from estimators.common.data_pipeline import array_dataset
        from estimators.compat.keras import iterators_per_epoch

        rows = array_dataset((x, y, sample_weight), int(batch_size or self._batch_size), shuffle=bool(shuffle),
                             seed=self._seed, skip_orders=self._epochs_done * iterators_per_epoch() if shuffle else 0)
        self.trained = self._model.fit(rows, shuffle=False, **kwargs)
        return self.trained

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def fit_through(fit: Callable[..., Any], hp: Any, model: Any, rows: tuple[Any, Any, Any], batch_size: int,
                seed: int | None, label: str, epochs_done: int = 0, **settings: Any) -> Any:
    """Train ``model`` through a hypermodel's ``fit``: ``fit(hp, model, x, y, **settings)`` (with
    ``sample_weight`` among them when there is one); the History of the ``model.fit`` it made.
    ``epochs_done``: a resumed fit's epochs before its checkpoint (the shuffle goes on from there)."""
    x, y, sample_weight = rows
    if sample_weight is not None:
        settings["sample_weight"] = sample_weight
    training = _TrainingModel(model, batch_size, seed, epochs_done)
    fit(hp, training, x, y, **settings)
    if training.trained is None:
        raise RuntimeError(f"{label}: its fit returned without calling model.fit(...): the study trains the "
                           "model through that call")
    return training.trained
