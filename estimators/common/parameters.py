"""scikit-learn's parameter contract for our estimators: the parameters are exactly the ``__init__``
arguments, read and set by name (``get_params``, ``set_params``, ``clone``, ``repr``), through
scikit-learn's public API only."""

from __future__ import annotations

import inspect
from typing import Any

from sklearn.base import BaseEstimator


class InitParameters:
    """``get_params`` / ``set_params`` / ``repr`` over the ``__init__`` signature, as scikit-learn's
    ``BaseEstimator`` has them; before scikeras' wrappers in the MRO, which would take every public
    attribute as a parameter instead."""

    @classmethod
    def _parameter_names(cls) -> list[str]:
        """The ``__init__`` arguments, sorted."""
        return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters and their values (with ``deep``, those of parameters that are estimators too)."""
        out: dict[str, Any] = {}
        for name in self._parameter_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{key}", item) for key, item in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set parameters by name (``set_params(n_hidden=2)``); ``name__key`` sets a nested estimator's."""
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, delim, sub_key = key.partition("__")
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self}. "
                                 f"Valid parameters are: {self._parameter_names()!r}.")
            if delim:
                nested.setdefault(name, {})[sub_key] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, sub_params in nested.items():
            valid[name].set_params(**sub_params)
        return self

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        return BaseEstimator.__repr__(self, N_CHAR_MAX)


def init_params(estimator: Any, **params: Any) -> None:
    """``__init__``: each argument stored under its name, unchanged (scikit-learn's rule)."""
    for name, value in params.items():
        setattr(estimator, name, value)
