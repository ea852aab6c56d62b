"""Building blocks of the study-file schema: strict models, numbers that refuse booleans, error details."""

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["Float", "Int", "StrictModel", "error", "raise_errors", "suggest"]


def error(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    """One validation error at `loc` (relative to the model that raises it)."""
    return InitErrorDetails(
        type=PydanticCustomError("study", "{msg}", {"msg": message}), loc=loc, input=value
    )


def raise_errors(title: str, errors: list[InitErrorDetails]) -> None:
    """Raise all `errors` together; pydantic prefixes their locations with the enclosing fields' path."""
    if errors:
        raise ValidationError.from_exception_data(title, errors)


def _no_bool(value: Any) -> Any:
    """Refuse YAML booleans where a number is expected (pydantic would read `true` as 1)."""
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]


def suggest(word: str, candidates: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    """A " did you mean 'x'?" suffix, or "" when nothing is close."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class StrictModel(BaseModel):
    """A section of the study file: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
