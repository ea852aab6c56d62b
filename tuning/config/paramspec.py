"""The search-space entries of a study file (int / float / categorical) and their checks.

What values a hyperparameter takes (type, bounds, choices) comes from the one table,
`estimators.hyperparams`; this module checks a space entry against it.
"""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator
from pydantic_core import InitErrorDetails

from estimators import hyperparams
from tuning.config.validation import Float, Int, StrictModel, error, raise_errors, suggest

__all__ = [
    "PARAM_TAGS",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "ParamSpec",
    "TunableName",
    "check_tunable",
    "space_errors",
]

PARAM_TAGS = ("int", "float", "categorical")


class IntParam(StrictModel):
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


class FloatParam(StrictModel):
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


class CategoricalParam(StrictModel):
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
