"""KerasTuner's ``hp`` for a hypermodel ``build(hp)``, without KerasTuner: drawing or replaying values.

A function of one argument named ``hp`` is a KerasTuner hypermodel: it asks ``hp`` for its values as it
builds (``hp.Int("units", 32, 512, step=32)``). :class:`HyperParameters` answers those calls with the
signatures KerasTuner documents, in one of two modes:

* **drawing** (``suggest`` given): each value is asked of a search, define-by-run, the moment the factory
  asks for it. A study binds it to the Optuna trial (:func:`optuna_suggester`), so only the values the
  factory reaches are drawn: ``units_2`` only when the layer loop reaches it, a value inside
  ``hp.conditional_scope`` only when the parent has one of the given values.
* **replaying** (``values`` given): the values a search drew come back by name, so the estimator rebuilds the
  same model (refit, clone, export); a name without a value gets its default (KerasTuner's: ``default``, else
  the low end, the first choice, False).

As in KerasTuner, a value asked for inside a conditional scope whose condition does not hold is None, and
asking again for a name returns the value it already has. ``hp.values`` holds the active values (fixed ones
included), ``hp.drawn`` only those the search drew (what a study records and logs).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

__all__ = ["HyperParameters", "optuna_suggester"]

#: ``suggest(kind, name, **spec)`` -> value; kind ``int`` (low, high, step, log), ``float`` (low, high, step,
#: log) or ``categorical`` (choices)
Suggest = Callable[..., Any]


class HyperParameters:
    """KerasTuner's ``hp`` object (see the module docstring)."""

    def __init__(self, values: Mapping[str, Any] | None = None, suggest: Suggest | None = None) -> None:
        self._given = dict(values or {})
        self._suggest = suggest
        self._scopes: list[tuple[str, list[Any]]] = []
        self.values: dict[str, Any] = {}
        self.drawn: dict[str, Any] = {}

    # ---- KerasTuner's methods -------------------------------------------------------------------------
    def Int(self, name: str, min_value: int, max_value: int, step: int | None = None, sampling: str = "linear",
            default: int | None = None, parent_name: str | None = None, parent_values: Any = None) -> int | None:
        """An integer in [min_value, max_value] (``step`` apart; ``sampling="log"``: on a log scale, and a step
        there multiplies, as in KerasTuner)."""
        min_value, max_value = int(min_value), int(max_value)
        log = _is_log(sampling)
        if log and step not in (None, 1):
            values = _geometric(min_value, max_value, step)
            return self._value(name, "categorical", {"choices": values}, default, parent_name, parent_values)
        spec = {"low": min_value, "high": max_value, "step": int(step or 1), "log": log}
        return self._value(name, "int", spec, min_value if default is None else default, parent_name, parent_values)

    def Float(self, name: str, min_value: float, max_value: float, step: float | None = None,
              sampling: str = "linear", default: float | None = None, parent_name: str | None = None,
              parent_values: Any = None) -> float | None:
        """A real number in [min_value, max_value] (``sampling="log"`` on a log scale; ``reverse_log`` is drawn
        as ``log``)."""
        min_value, max_value = float(min_value), float(max_value)
        log = _is_log(sampling)
        if log and step is not None:
            values = _geometric(min_value, max_value, step)
            return self._value(name, "categorical", {"choices": values}, default, parent_name, parent_values)
        spec = {"low": min_value, "high": max_value, "step": None if step is None else float(step), "log": log}
        return self._value(name, "float", spec, min_value if default is None else default, parent_name,
                           parent_values)

    def Choice(self, name: str, values: Sequence[Any], ordered: bool | None = None, default: Any = None,
               parent_name: str | None = None, parent_values: Any = None) -> Any:
        """One of ``values`` (``ordered`` is accepted; the search treats the values as categories)."""
        choices = list(values)
        if not choices:
            raise ValueError(f"hp.Choice({name!r}): values is empty")
        return self._value(name, "categorical", {"choices": choices}, choices[0] if default is None else default,
                           parent_name, parent_values)

    def Boolean(self, name: str, default: bool = False, parent_name: str | None = None,
                parent_values: Any = None) -> bool | None:
        """True or False."""
        return self._value(name, "categorical", {"choices": [False, True]}, bool(default), parent_name,
                           parent_values)

    def Fixed(self, name: str, value: Any, parent_name: str | None = None, parent_values: Any = None) -> Any:
        """Always ``value`` (in ``values``, never drawn)."""
        with self._maybe_scope(parent_name, parent_values):
            if not self._active():
                return None
            self.values[name] = value
            return value

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Values asked for inside are active only while ``parent_name`` has one of ``parent_values``."""
        self._scopes.append((parent_name, _as_list(parent_values)))
        try:
            yield
        finally:
            self._scopes.pop()

    def get(self, name: str) -> Any:
        """The value ``name`` has (KeyError when it has none yet, or is inactive)."""
        if name in self.values:
            return self.values[name]
        raise KeyError(f"{name} does not exist (or is inactive): ask for it with hp.Int, hp.Choice ... first")

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def is_active(self, name: str) -> bool:
        return name in self.values

    # ---- drawing and replaying --------------------------------------------------------------------------
    def _value(self, name: str, kind: str, spec: dict[str, Any], default: Any, parent_name: str | None,
               parent_values: Any) -> Any:
        with self._maybe_scope(parent_name, parent_values):
            if not self._active():
                return None
            if name in self.values:
                return self.values[name]
            if self._suggest is not None:
                value = self._suggest(kind, name, **spec)
                self.drawn[name] = value
            else:
                value = self._given.get(name, default)
            self.values[name] = value
            return value

    def _active(self) -> bool:
        return all(parent in self.values and self.values[parent] in allowed for parent, allowed in self._scopes)

    @contextlib.contextmanager
    def _maybe_scope(self, parent_name: str | None, parent_values: Any) -> Iterator[None]:
        if parent_name is None:
            yield
        else:
            with self.conditional_scope(parent_name, parent_values):
                yield

    def __repr__(self) -> str:
        return f"HyperParameters({self.values!r})"


def optuna_suggester(trial: Any) -> Suggest:
    """``suggest`` asking an Optuna trial (``trial.suggest_int`` / ``suggest_float`` / ``suggest_categorical``)."""

    def suggest(kind: str, name: str, **spec: Any) -> Any:
        if kind == "categorical":
            return trial.suggest_categorical(name, spec["choices"])
        if kind == "int":
            return trial.suggest_int(name, spec["low"], spec["high"], step=spec["step"], log=spec["log"])
        return trial.suggest_float(name, spec["low"], spec["high"], step=spec["step"], log=spec["log"])

    return suggest


def _is_log(sampling: str | None) -> bool:
    sampling = (sampling or "linear").lower()
    if sampling not in ("linear", "log", "reverse_log"):
        raise ValueError(f"sampling must be 'linear', 'log' or 'reverse_log', got {sampling!r}")
    return sampling != "linear"


def _geometric(low: float, high: float, step: float) -> list[Any]:
    """KerasTuner's log sampling with a step: low, low * step, ... up to high."""
    if step <= 1:
        raise ValueError(f"with sampling='log', step multiplies and must be > 1, got {step}")
    count = int(math.floor(math.log(high / low, step) + 1e-9)) + 1
    values = [low * step**i for i in range(count)]
    return [int(v) for v in values] if isinstance(low, int) and isinstance(step, int) else values


def _as_list(values: Any) -> list[Any]:
    return list(values) if isinstance(values, list | tuple | set | frozenset) else [values]
