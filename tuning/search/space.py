"""One search space, two readings: scipy distributions for scikit-learn, suggestions for Optuna.

A space may be conditional (``per`` / ``when``, :mod:`tuning.config.paramspec`). Trials then hold flat values,
drawn define-by-run: ``n_neurons_1`` .. ``n_neurons_k`` for ``n_neurons: {per: n_hidden}`` (k the trial's
``n_hidden``), nothing for an entry whose ``when`` parameter is falsy. :func:`estimator_params` turns such
values into the estimator's arguments (``n_neurons=[...]``, a flag that only gates others left out); the
records, MLflow and the report keep them flat, flags included.
A KerasTuner hypermodel (``build(hp)``) has no declared space: :func:`draw` calls it with an ``hp`` bound to
the trial, and the estimator gets the values drawn as ``hp_values``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from tuning.config.paramspec import draw_order
from tuning.config.schema import CategoricalParam, FloatParam, IntParam

Space = dict[str, IntParam | FloatParam | CategoricalParam]


class IntLogUniform:
    """Integers whose logarithm is uniform on [log(low), log(high + 1)) (scipy has no such law)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = int(low), int(high)

    def rvs(self, random_state: Any = None) -> int:
        generators = (np.random.RandomState, np.random.Generator)
        rng = random_state if isinstance(random_state, generators) else np.random.RandomState(random_state)
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
        return int(min(self.high, max(self.low, math.floor(value))))

    def __repr__(self) -> str:
        return f"IntLogUniform({self.low}, {self.high})"


def to_distributions(space: Space) -> dict[str, Any]:
    """scipy distributions (or lists) for ``ParameterSampler`` / ``RandomizedSearchCV``.

    ``float`` with ``log: true`` is ``scipy.stats.loguniform`` (the "reciprocal" of the classic
    recipe), ``int`` is ``scipy.stats.randint(low, high + 1)``; stepped ranges become lists.
    """
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, CategoricalParam):
            out[name] = list(spec.choices)
        elif isinstance(spec, IntParam):
            if spec.log:
                out[name] = IntLogUniform(spec.low, spec.high)
            elif spec.step != 1:
                out[name] = spec.grid_values()
            else:
                out[name] = stats.randint(spec.low, spec.high + 1)
        elif spec.step is not None:
            out[name] = spec.grid_values()
        elif spec.log:
            out[name] = stats.loguniform(spec.low, spec.high)
        else:
            out[name] = stats.uniform(spec.low, spec.high - spec.low)
    return out


def suggest(trial: Any, space: Space) -> dict[str, Any]:
    """Ask an Optuna trial for one value of every active hyperparameter (define-by-run: ``per`` entries as
    ``<name>_1`` .. ``<name>_k``, ``when`` entries only when their parameter is truthy)."""
    params: dict[str, Any] = {}
    for name in draw_order(space):
        spec = space[name]
        if not is_active(spec, params):
            continue
        for key in drawn_names(name, spec, params):
            params[key] = _suggest_one(trial, key, spec)
    return params


def _suggest_one(trial: Any, name: str, spec: Any) -> Any:
    if isinstance(spec, CategoricalParam):
        return trial.suggest_categorical(name, list(spec.choices))
    if isinstance(spec, IntParam):
        return trial.suggest_int(name, spec.low, spec.high, step=spec.step, log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)


def is_active(spec: Any, params: dict[str, Any]) -> bool:
    """Whether an entry is drawn, given the values drawn before it: its ``when`` parameter was drawn and is
    truthy, its ``per`` count was drawn."""
    if spec.when is not None and not params.get(spec.when):
        return False
    return spec.per is None or spec.per in params


def drawn_names(name: str, spec: Any, params: dict[str, Any]) -> list[str]:
    """The names an active entry is drawn as: itself, or ``<name>_1`` .. ``<name>_k`` for ``per``."""
    if spec.per is None:
        return [name]
    return [f"{name}_{i}" for i in range(1, int(params[spec.per]) + 1)]


def is_conditional(space: Space) -> bool:
    return any(spec.conditions() for spec in space.values())


def estimator_params(config: Any, params: dict[str, Any]) -> dict[str, Any]:
    """:func:`estimator_arguments` of ``config``'s space, flags and model."""
    factory = config.model.factory
    return estimator_arguments(config.space, config.space_flags(), factory is not None and factory.takes_hp, params)


def estimator_arguments(space: Space, flags: frozenset[str], takes_hp: bool, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as the estimator's arguments: ``per`` lists assembled (``n_neurons_1``, ``n_neurons_2``
    -> ``n_neurons=[..]``), the space's ``flags`` left out (keys that only gate others:
    ``StudyConfig.space_flags``); with a KerasTuner hypermodel (``takes_hp``), all of them as ``hp_values``."""
    if takes_hp:
        return {"hp_values": dict(params)}
    out = {name: value for name, value in params.items() if name not in flags}
    for name, spec in space.items():
        if spec.per is not None and spec.per in out:
            keys = [f"{name}_{i}" for i in range(1, int(out[spec.per]) + 1)]
            if all(key in out for key in keys):
                out[name] = [out.pop(key) for key in keys]
    return out


class _LowEnd:
    """A stand-in trial that answers every suggestion with the low end (a categorical: its first choice)."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return choices[0]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return low

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return low


def first_values(space: Space) -> dict[str, Any]:
    """The values of a first trial: every active entry at its low end (or first choice), flat."""
    return suggest(_LowEnd(), space)


def draw(trial: Any, config: Any) -> dict[str, Any]:
    """One trial's values: the space's suggestions, or the values a define-by-run factory draws when called
    with an ``hp`` bound to ``trial`` (a KerasTuner ``build(hp)``, an Optuna ``create_model(trial)``, a
    HyperModel class's ``build`` and ``fit``; in this process; a factory that raises leaves the values drawn
    until then, and the trial builds it again and fails with the factory's own error)."""
    factory = config.model.factory
    if factory is None or not factory.takes_hp:
        return suggest(trial, config.space)
    from estimators.own_model.define_by_run import rehearse_fit
    from estimators.own_model.keras_tuner_hp import HyperParameters, optuna_suggester

    hp = HyperParameters(suggest=optuna_suggester(trial))
    try:
        model = factory.build_with(hp)
        rehearse_fit(factory.function, factory.hp_style, hp, model)  # a HyperModel class's fit draws too
    except Exception:
        pass
    finally:
        import keras

        keras.backend.clear_session(free_memory=False)
    return dict(hp.drawn)


def flat_space(space: Space) -> Space:
    """Every name a trial may hold, each with its entry: ``per`` entries as ``<name>_1`` .. ``<name>_max``
    (max: the high end of the count), without ``per`` / ``when`` (what the report plots)."""
    out: Space = {}
    for name, spec in space.items():
        plain = spec.model_copy(update={"per": None, "when": None})
        if spec.per is None:
            out[name] = plain
        else:
            count = space[spec.per]
            out.update({f"{name}_{i}": plain for i in range(1, int(count.high) + 1)})
    return out


def active(space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """The values of ``params`` (every name of :func:`flat_space`) that a define-by-run draw would hold."""
    out: dict[str, Any] = {}
    for name in draw_order(space):
        spec = space[name]
        if is_active(spec, out):
            out.update({key: params[key] for key in drawn_names(name, spec, out)})
    return out


def to_optuna_distributions(space: Space) -> dict[str, Any]:
    """The Optuna distributions ``suggest`` samples from, to rebuild a study from stored trials."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, spec in flat_space(space).items():
        if isinstance(spec, CategoricalParam):
            out[name] = CategoricalDistribution(list(spec.choices))
        elif isinstance(spec, IntParam):
            out[name] = IntDistribution(spec.low, spec.high, step=spec.step, log=spec.log)
        else:
            out[name] = FloatDistribution(spec.low, spec.high, step=spec.step, log=spec.log)
    return out


def grid(space: Space) -> dict[str, list[Any]]:
    """Every value of every hyperparameter, for Optuna's GridSampler."""
    return {name: spec.grid_values() for name, spec in space.items()}


def to_python(params: dict[str, Any]) -> dict[str, Any]:
    """Plain Python scalars (numpy ints/floats from samplers are not JSON- or Keras-friendly)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
