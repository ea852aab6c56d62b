"""The search-space entries of a study file (int / float / categorical) and their checks.

What values a hyperparameter takes (type, bounds, choices) comes from the one table,
`estimators.common.hyperparams`; this module checks a space entry against it.
"""

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails

from estimators.common import hyperparams
from tuning.config.validation import Float, Int, StrictModel, error, raise_errors, suggest

__all__ = [
    "PARAM_TAGS",
    "Conditional",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "ParamSpec",
    "TunableName",
    "check_tunable",
    "conditional_errors",
    "gates",
    "grid_size",
    "space_errors",
    "uniform_grid",
]

PARAM_TAGS = ("int", "float", "categorical")


class Conditional(StrictModel):
    """What every space entry may add: ``per`` (a list, one value per unit of the int parameter it names,
    drawn as ``<name>_1`` .. ``<name>_k``) and ``when`` (drawn only when the parameter it names is truthy)."""

    per: str | None = None
    when: str | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """``per`` / ``when`` only where given: a space without them dumps (and digests, and logs) as before."""
        data = handler(self)
        for key in ("per", "when"):
            if data.get(key, 0) is None:
                del data[key]
        return data

    def conditions(self) -> dict[str, str]:
        """The ``per`` / ``when`` keys given (what the space digest adds for this entry)."""
        return {key: value for key, value in (("per", self.per), ("when", self.when)) if value is not None}


class IntParam(Conditional):
    """An integer hyperparameter in [low, high] (both included)."""

    type: Literal["int"]
    low: Int
    high: Int
    step: Int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> "IntParam":
        errors = _range_errors(self.low, self.high, self.log)
        if self.log and self.step != 1:
            errors.append(error(("step",), "step must be 1 when log is true", self.step))
        raise_errors("IntParam", errors)
        return self

    def grid_values(self) -> list[int]:
        """Every value of the range (for grid search)."""
        return list(range(self.low, self.high + 1, self.step))


class FloatParam(Conditional):
    """A real hyperparameter in [low, high], optionally on a log scale or discretised by `step`."""

    type: Literal["float"]
    low: Float
    high: Float
    log: bool = False
    step: Float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "FloatParam":
        errors = _range_errors(self.low, self.high, self.log)
        if self.log and self.step is not None:
            errors.append(error(("step",), "step cannot be combined with log: true", self.step))
        raise_errors("FloatParam", errors)
        return self

    def grid_values(self) -> list[float]:
        """Every value low, low+step, ... <= high (for grid search); needs `step`."""
        if self.step is None:
            raise ValueError("a float range without step has no finite grid")
        count = int((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]


def _range_errors(low: float, high: float, log: bool) -> list[InitErrorDetails]:
    errors = []
    if low > high:
        errors.append(error(("low",), f"low ({low}) must be <= high ({high})", low))
    if log and low <= 0:
        errors.append(error(("low",), f"log scale needs low > 0, got {low}", low))
    return errors


def _scalar_choices(values: Any) -> Any:
    """Choices must be a list of scalars (one clear error instead of one per union member)."""
    if isinstance(values, list):
        for i, value in enumerate(values):
            if not isinstance(value, str | int | float | bool | type(None)):
                raise ValueError(
                    f"choice #{i} must be a string, number, boolean or null, got {type(value).__name__}"
                )
    return values


class CategoricalParam(Conditional):
    """A hyperparameter taking one of `choices`."""

    type: Literal["categorical"]
    choices: Annotated[list[str | int | float | bool | None], BeforeValidator(_scalar_choices)] = Field(
        min_length=1
    )

    @field_validator("choices")
    @classmethod
    def _unique(cls, choices: list[Any]) -> list[Any]:
        seen = [(type(c), c) for c in choices]
        if len(set(seen)) != len(seen):
            raise ValueError("choices must not repeat a value")
        return choices

    def grid_values(self) -> list[Any]:
        """The choices (for grid search)."""
        return list(self.choices)


def uniform_grid(space: dict[str, IntParam | FloatParam | CategoricalParam]) -> dict[str, Sequence[Any]] | None:
    """Every value of every entry, when the space is a finite rectangle of equally likely points: each entry
    categorical, an int range without ``log`` or a float range with ``step``, and none conditional (``per`` /
    ``when`` make the set of combinations depend on other values). None for any other space."""
    out: dict[str, Sequence[Any]] = {}
    for name, spec in space.items():
        if spec.conditions():
            return None
        if isinstance(spec, CategoricalParam):
            out[name] = list(spec.choices)
        elif isinstance(spec, IntParam) and not spec.log:
            out[name] = range(spec.low, spec.high + 1, spec.step)  # not listed: an int range may be long
        elif isinstance(spec, FloatParam) and spec.step is not None:
            out[name] = spec.grid_values()
        else:
            return None
    return out or None


def grid_size(space: dict[str, IntParam | FloatParam | CategoricalParam]) -> int | None:
    """How many combinations a :func:`uniform_grid` space holds; None for any other space."""
    grid = uniform_grid(space)
    return None if grid is None else math.prod(len(values) for values in grid.values())


ParamSpec = Annotated[IntParam | FloatParam | CategoricalParam, Field(discriminator="type")]
#: The model of a space entry by its `type` tag.
PARAM_MODELS: dict[str, type[StrictModel]] = {
    "int": IntParam,
    "float": FloatParam,
    "categorical": CategoricalParam,
}


def check_tunable(name: str) -> str:
    tunable = hyperparams.tunable()
    if name not in tunable:
        meant = [p.name for p in hyperparams.HYPERPARAMS.values() if p.tunable and name in p.aliases]
        hint = f"; did you mean '{meant[0]}'?" if meant else suggest(name, tunable)
        raise ValueError(f"unknown hyperparameter '{name}'; tunable: {', '.join(sorted(tunable))}{hint}")
    return name


TunableName = Annotated[str, AfterValidator(check_tunable)]

#: The space types each kind of hyperparameter may use.
_SPACE_TYPES = {"int": ("int", "categorical"), "float": ("float", "categorical"), "str": ("categorical",),
                "bool": ("categorical",), "any": PARAM_TAGS}  # fmt: skip


def space_errors(name: str, spec: IntParam | FloatParam | CategoricalParam) -> list[InitErrorDetails]:
    """Values of `spec` that the estimator would refuse for hyperparameter `name` (the table's rules)."""
    param = hyperparams.HYPERPARAMS[name]
    loc: tuple[str | int, ...] = ("space", name)
    if isinstance(spec, CategoricalParam):
        return [
            error((*loc, "choices", i), f"{name}: {problem}", choice)
            for i, choice in enumerate(spec.choices)
            if (problem := param.problem(choice))
        ]
    allowed = _SPACE_TYPES[param.kind]
    if spec.type not in allowed:
        return [error((*loc, "type"), f"{name} must use type {' or '.join(allowed)}", spec.type)]
    return [
        error((*loc, key), f"{name}: {problem}", value)
        for key, value in (("low", spec.low), ("high", spec.high))
        if (problem := param.problem(value))
    ]


def conditional_errors(space: dict[str, IntParam | FloatParam | CategoricalParam]) -> list[InitErrorDetails]:
    """``per`` / ``when`` that name no key of the space, a ``per`` on anything but an int count, a ``when`` on a
    per-unit list, cycles, and drawn names (``<name>_<i>``) that clash with a key."""
    errors = []
    keys = list(space)
    for name, spec in space.items():
        for key, parent in spec.conditions().items():
            loc: tuple[str | int, ...] = ("space", name, key)
            if parent == name:
                errors.append(error(loc, f"{key}: '{name}' cannot depend on itself", parent))
            elif parent not in space:
                errors.append(error(loc, f"{key}: '{parent}' is not a key of space{suggest(parent, keys)} "
                                         f"(keys: {', '.join(keys)})", parent))
            elif key == "per" and (not isinstance(space[parent], IntParam) or space[parent].per is not None):
                what = "a per-unit list" if space[parent].per is not None else f"a {space[parent].type} parameter"
                errors.append(error(loc, f"per: '{parent}' must be an int parameter (how many values {name} "
                                         f"gets), but it is {what}", parent))
            elif key == "per" and space[parent].low < 0:
                errors.append(error(loc, f"per: '{parent}' can be negative (low: {space[parent].low}); a count "
                                         "needs low >= 0", parent))
            elif key == "when" and space[parent].per is not None:
                errors.append(error(loc, f"when: '{parent}' is a per-unit list (per: {space[parent].per}), not "
                                         "one value that can be true or false", parent))
        if spec.per is not None and spec.per in space and isinstance(space[spec.per], IntParam):
            clash = [f"{name}_{i}" for i in range(1, space[spec.per].high + 1) if f"{name}_{i}" in space]
            if clash:
                errors.append(error(("space", name, "per"), f"per: {name} is drawn as {name}_1, {name}_2, ...; "
                                                            f"rename the key {clash[0]}", spec.per))
    cycle = _cycle(space)
    if cycle:
        errors.append(error(("space", cycle[0], "when" if space[cycle[0]].when == cycle[1] else "per"),
                            f"per / when go round in a cycle: {' -> '.join(cycle)}", cycle[1]))
    return errors


def _cycle(space: dict[str, Any]) -> list[str] | None:
    """A cycle of ``per`` / ``when`` links (each name followed by the one it names), or None."""
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name):] + [name]
        if name in done or name not in space:
            return None
        for parent in space[name].conditions().values():
            if parent != name:
                found = walk(parent, [*path, name])
                if found:
                    return found
        done.add(name)
        return None

    for start in space:
        found = walk(start, [])
        if found:
            return found
    return None


def gates(space: Any) -> frozenset[str]:
    """The keys of a space that another entry's ``when`` names (parsed entries or the file's raw mappings)."""
    if not isinstance(space, dict):
        return frozenset()
    found = set()
    for spec in space.values():
        when = spec.get("when") if isinstance(spec, dict) else getattr(spec, "when", None)
        if isinstance(when, str) and when in space:
            found.add(when)
    return frozenset(found)


def draw_order(space: dict[str, Any]) -> list[str]:
    """The space's keys with every ``per`` / ``when`` parent before its children (file order otherwise)."""
    order: list[str] = []

    def visit(name: str, seen: tuple[str, ...] = ()) -> None:
        if name in order or name in seen or name not in space:
            return
        for parent in space[name].conditions().values():
            visit(parent, (*seen, name))
        order.append(name)

    for name in space:
        visit(name)
    return order
