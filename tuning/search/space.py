"""One search space, two readings: scipy distributions for scikit-learn, suggestions for Optuna."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from tuning.config.schema import CategoricalParam, FloatParam, IntParam

Space = dict[str, IntParam | FloatParam | CategoricalParam]


class IntLogUniform:
    """Integers whose logarithm is uniform on [log(low), log(high + 1)) (scipy has no such law)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = int(low), int(high)

    def rvs(self, random_state: Any = None) -> int:
        rng = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState(random_state)
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
    """Ask an Optuna trial for one value of every hyperparameter."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, CategoricalParam):
            params[name] = trial.suggest_categorical(name, list(spec.choices))
        elif isinstance(spec, IntParam):
            params[name] = trial.suggest_int(name, spec.low, spec.high, step=spec.step, log=spec.log)
        else:
            params[name] = trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)
    return params


def to_optuna_distributions(space: Space) -> dict[str, Any]:
    """The Optuna distributions ``suggest`` samples from, to rebuild a study from stored trials."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, spec in space.items():
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
