"""Reading a study file: YAML (1.2 floats, duplicate keys refused) and readable validation errors.

Every problem is reported at once, each with its dotted key path (``search.n_trials``), the YAML line where
it is and a readable message, as one `StudyConfigError`. The schema itself (`tuning.config.schema.StudyConfig`)
is passed in, so this module knows YAML and error wording, not the study's sections.
"""

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tuning.config.ownmodel import MODEL_TAGS, OwnModelConfig, model_kind
from tuning.config.paramspec import PARAM_MODELS, PARAM_TAGS
from tuning.config.validation import suggest
from tuning.errors import StudyConfigError

__all__ = ["parse", "read_text", "validate"]

M = TypeVar("M", bound=BaseModel)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as `1e-3` (YAML 1.1 would keep them strings)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a study file; a missing or unreadable file raises `StudyConfigError`."""
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyConfigError(f"{file}: study file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyConfigError(f"{file}: cannot read the study file: {exc}") from None


def parse(text: str, schema: type[M], file: str | os.PathLike[str]) -> M:
    """`schema` validated from the YAML `text` of `file` (named in errors; relative paths in it are
    relative to its folder); any problem raises `StudyConfigError` naming file, key and line."""
    file = Path(file)
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise StudyConfigError(f"{file}: invalid YAML{_yaml_where(exc)}: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise StudyConfigError(
            f"{file}: the top level must be a mapping (name:, dataset:, space:, ...), got {kind}"
        )
    duplicates = list(_duplicate_keys(root, ()))
    if duplicates:
        lines = [f"  {_dotted(loc)} (line {line}): duplicate key" for loc, line in duplicates]
        raise StudyConfigError(f"{file}: {_count(len(lines))}\n" + "\n".join(lines))
    return validate(schema, data, str(file), root, file.parent)


def validate(
    schema: type[M],
    data: dict[str, Any],
    source: str,
    root: yaml.Node | None = None,
    base_dir: Path | None = None,
) -> M:
    """`schema` validated from `data`, or one `StudyConfigError` listing every problem (with lines when `root`)."""
    if not isinstance(data, dict):
        raise StudyConfigError(f"{source}: the study must be a mapping, got a {type(data).__name__}")
    try:
        return schema.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        found = []
        for err in exc.errors(include_url=False):
            loc = _clean_loc(err)
            found.append((_line_of(root, loc), _dotted(loc), _message(err, loc, data, schema)))
        found.sort(key=lambda item: (item[0] is None, item[0] or 0))  # stable: file order, then the rest
        lines = [f"  {path}{f' (line {line})' if line else ''}: {msg}" for line, path, msg in found]
        raise StudyConfigError(f"{source}: {_count(len(lines))}\n" + "\n".join(lines)) from exc


def _count(n: int) -> str:
    return f"{n} error{'s' if n != 1 else ''}"


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<top level>"


def _clean_loc(err: Any) -> tuple[Any, ...]:
    """Drop pydantic's internal segments ('[key]', union tags) and point tag errors at `type`."""
    loc = [part for part in err["loc"] if part != "[key]"]
    if len(loc) >= 3 and loc[0] == "space" and loc[2] in PARAM_TAGS:
        del loc[2]
    if len(loc) >= 2 and loc[0] == "model" and loc[1] in MODEL_TAGS:
        del loc[1]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("type")
    return tuple(loc)


def _message(err: Any, loc: tuple[Any, ...], data: dict[str, Any], schema: type[BaseModel]) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(schema, loc[:-1], data)
        if allowed is None:
            return f"unknown key '{key}'"
        hint = suggest(key, allowed) or f"; allowed: {', '.join(allowed)}"
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_not_found":
        return "missing 'type' (one of: int, float, categorical)"
    if kind == "union_tag_invalid":
        tag = (err.get("ctx") or {}).get("tag", "?")
        return f"unknown type '{tag}'; use int, float or categorical"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value lines), got {type(value).__name__}"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind != "study" and isinstance(value, str | int | float | bool) and not message.startswith("unknown"):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        message += f" (got {shown})"
    return message


def _allowed_keys(schema: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str] | None:
    """Field names of the model found at `loc` (walking the raw input to pick the space entry's type)."""
    model: type[BaseModel] | None = schema
    node = data
    i = 0
    while i < len(loc):
        if model is None or loc[i] not in model.model_fields:
            return None
        node = node.get(loc[i]) if isinstance(node, dict) else None
        if model is schema and loc[i] == "space":
            if i + 1 >= len(loc):
                return None
            i += 1
            node = node.get(loc[i]) if isinstance(node, dict) else None
            tag = node.get("type") if isinstance(node, dict) else None
            model = PARAM_MODELS.get(tag) if isinstance(tag, str) else None
        elif model is schema and loc[i] == "model":  # our network's section, or a user's factory's
            model = OwnModelConfig if model_kind(node) == "own" else schema.model_fields["model"].default_factory()
            model = type(model) if isinstance(model, BaseModel) else model
        else:
            annotation = model.model_fields[loc[i]].annotation
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        i += 1
    return list(model.model_fields) if model is not None else None


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node of `loc` found in the composed YAML tree."""
    if root is None:
        return None
    node, line = root, None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child, line = value, key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _duplicate_keys(node: yaml.Node | None, loc: tuple[Any, ...]) -> Any:
    """Yield (loc, line) of keys repeated in a mapping (PyYAML would silently keep the last one)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            if name in seen:
                yield (*loc, name), key.start_mark.line + 1
            seen.add(name)
            yield from _duplicate_keys(value, (*loc, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, i))


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem and context:
        return f"{problem} ({context})"
    return str(problem or exc).replace("\n", " ")
