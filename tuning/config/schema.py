"""Typed, validated study configuration: one YAML file describes one tuning study.

`load_study(path)` reads and validates a study file (once: the config remembers the file and its text, its
`source`); every problem is reported at once, each with its dotted
key path (``search.n_trials``), the YAML line where it is and a readable message, as a `StudyConfigError`
(reading and error wording: `tuning.config.studyfile`; search-space entries: `tuning.config.paramspec`; the ``dataset:``
section and the data-source names: `tuning.config.dataset`). Which hyperparameters exist, their bounds and
where a study sets them come from `estimators.common.hyperparams`.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from estimators.common import hyperparams
from estimators.own_model.factory import FACTS
from tuning.config import rules
from tuning.config.dataset import BUILTIN_TASKS, FILE_SOURCES, KERAS_FILE_SOURCES, DatasetConfig
from tuning.config.overrides import Overrides
from tuning.config.ownmodel import OwnModelConfig, model_kind, own_space_errors
from tuning.config.paramspec import (
    CategoricalParam,
    FloatParam,
    IntParam,
    ParamSpec,
    check_tunable,
    conditional_errors,
    gates,
    space_errors,
)
from tuning.config.sections import (
    CLASSIFICATION_METRICS,
    OPTIMIZERS,
    REGRESSION_METRICS,
    TUNABLE_PARAMS,
    EarlyStoppingConfig,
    EnsembleConfig,
    ExportConfig,
    MlflowConfig,
    PreprocessingConfig,
    SearchConfig,
    TrainingConfig,
    metric_problem,
)
from tuning.config.studyfile import parse, read_text, validate
from tuning.config.validation import Float, Int
from tuning.config.validation import StrictModel as _Model
from tuning.config.validation import error as _error
from tuning.config.validation import raise_errors as _raise_errors
from tuning.errors import StudyConfigError

__all__ = [
    "BUILTIN_TASKS",
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "DEFAULT_SPACE",
    "KERAS_FILE_SOURCES",
    "FILE_SOURCES",
    "OPTIMIZERS",
    "TUNABLE_PARAMS",
    "CategoricalParam",
    "DatasetConfig",
    "EarlyStoppingConfig",
    "EnsembleConfig",
    "ExportConfig",
    "FloatParam",
    "IntParam",
    "MlflowConfig",
    "ModelConfig",
    "OwnModelConfig",
    "ParamSpec",
    "PreprocessingConfig",
    "SearchConfig",
    "StudyConfig",
    "StudyConfigError",
    "StudySource",
    "TrainingConfig",
    "load_study",
    "load_study_dict",
    "factory_digest",
    "space_digest",
]

# --------------------------------------------------------------------------------------------- sections


class _FixedArguments(_Model):
    def fixed_params(self) -> dict[str, Any]:
        """The arguments that were given (not None)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    @property
    def factory(self) -> None:
        """Our network has no user's factory (see `tuning.config.ownmodel.OwnModelConfig.factory`)."""
        return None


def _model_field(param: hyperparams.HyperParam) -> tuple[Any, Any]:
    """The `model:` key of a hyperparameter: its type and bounds from the table, None for the default."""
    kinds = {"int": Int, "float": Float, "str": str, "bool": bool, "any": Any}
    kind = Literal[param.choices] if param.choices else kinds[param.kind]
    return kind | None, Field(None, ge=param.ge, gt=param.gt, le=param.le, lt=param.lt)


#: Fixed estimator arguments (the `model:` section); None means the estimator's own default.
ModelConfig = create_model(
    "ModelConfig",
    __base__=_FixedArguments,
    __module__=__name__,
    __doc__="Fixed estimator arguments; None means the estimator's own default.",
    **{param.name: _model_field(param) for param in hyperparams.model_settable()},
)


#: The `model:` section: our network's fixed arguments, or (with `build`) a user's factory and its arguments.
ModelSection = Annotated[
    Annotated[ModelConfig, Tag("mlp")] | Annotated[OwnModelConfig, Tag("own")],  # type: ignore[valid-type]
    Discriminator(model_kind),
]


def _space_name(name: str, info: ValidationInfo) -> str:
    """A `space:` key: a name of the table's tunable ones, or a flag (a key no estimator argument is named
    like, that another entry's `when:` names), unless the study brings its own model (whose factory's
    arguments the study checks once the model section is resolved)."""
    context = info.context or {}
    if context.get("own_model") or isinstance((info.data or {}).get("model"), OwnModelConfig):
        return name
    if name in context.get("gates", ()) and name not in hyperparams.HYPERPARAMS:
        return name
    return check_tunable(name)


SpaceName = Annotated[str, AfterValidator(_space_name)]


def _is_flag(name: str, gating: frozenset[str], factory: Any) -> bool:
    """Whether space key `name` is a flag: it gates other entries (`when:`) and the model takes no argument
    of that name (neither our estimators nor, with `model.build`, the factory or the data's facts)."""
    if name not in gating or name in hyperparams.HYPERPARAMS:
        return False
    return factory is None or not (factory.takes(name) or name in FACTS)


# ------------------------------------------------------------------------------------------------ study

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
#: The space a study without `space` searches (the recipe's three knobs).
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "n_hidden": {"type": "int", "low": 1, "high": 3},
    "n_neurons": {"type": "int", "low": 8, "high": 128, "log": True},
    "learning_rate": {"type": "float", "low": 3.0e-4, "high": 3.0e-2, "log": True},
}


def default_space() -> dict[str, Any]:
    """Parsed copies of DEFAULT_SPACE."""
    parsers = {"int": IntParam, "float": FloatParam, "categorical": CategoricalParam}
    return {name: parsers[spec["type"]](**spec) for name, spec in DEFAULT_SPACE.items()}


@dataclass(frozen=True)
class StudySource:
    """The study file a config was read from, and its text as read (command-line overrides not applied)."""

    path: Path
    text: str


class StudyConfig(_Model):
    """One tuning study."""

    name: str
    dataset: DatasetConfig
    # tables: the keys the file leaves out get the strongest table settings, sized by the data
    # (tuning.config.recipe); plain: the defaults below (the classic recipe's space, an SGD estimator)
    recipe: Literal["tables", "plain"] = "tables"
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    model: ModelSection = Field(default_factory=ModelConfig)
    space: dict[SpaceName, ParamSpec] = Field(default_factory=lambda: default_space())
    search: SearchConfig = Field(default_factory=SearchConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    _source: StudySource | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("name must be non-empty and use only letters, digits, '-', '_' and '.'")
        return value

    @field_validator("space")
    @classmethod
    def _space_not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("empty space: give at least one hyperparameter to tune")
        return value

    @model_validator(mode="before")
    @classmethod
    def _own_model(cls, data: Any, info: ValidationInfo) -> Any:
        """Tell the `space:` key check that the study brings its own model (`model.build`), and which keys
        gate others (`when:`): those may be flags, no estimator argument."""
        model = data.get("model") if isinstance(data, dict) else None
        if info.context is not None and isinstance(model, dict) and "build" in model:
            info.context["own_model"] = True
        if info.context is not None and isinstance(data, dict):
            info.context["gates"] = gates(data.get("space"))
        return data

    def space_flags(self) -> frozenset[str]:
        """The space's flags: keys that gate others (`when:`) and name no argument of the model; drawn and
        logged like any parameter, never given to the model."""
        gating = gates(self.space)
        factory = self.model.factory
        return frozenset(name for name in gating if _is_flag(name, gating, factory))

    @model_validator(mode="after")
    def _check(self) -> "StudyConfig":
        errors: list[InitErrorDetails] = []
        fixed = self.model.fixed_params()
        factory = self.model.factory
        if factory is not None:
            errors.extend(self._own_model_errors())
        flags = self.space_flags()
        for name, spec in self.space.items():
            if name in flags:
                continue  # it gates other entries only: any values
            if factory is not None and own_space_errors(factory, name):
                continue  # said above
            if factory is not None and (factory.takes(name) or name not in hyperparams.HYPERPARAMS):
                if name in fixed:
                    errors.append(_error(
                        ("space", name), f"'{name}' is both fixed in model and tuned in space; keep one", name
                    ))  # fmt: skip
                continue  # the factory's own argument: its values are the factory's business
            elsewhere = hyperparams.HYPERPARAMS[name].study
            if name in fixed:
                errors.append(_error(
                    ("space", name), f"'{name}' is both fixed in model and tuned in space; keep one", name
                ))  # fmt: skip
            elif elsewhere and self._is_set(elsewhere):
                errors.append(_error(
                    ("space", name), f"'{name}' is both set in {elsewhere} and tuned in space; keep one", name
                ))  # fmt: skip
            errors.extend(space_errors(name, spec))
            if spec.per is not None and not (hyperparams.HYPERPARAMS[name].per_layer and spec.per == "n_hidden"):
                errors.append(_error(("space", name, "per"), f"per: our network takes a list only for n_neurons, "
                                     f"per: n_hidden (one width per hidden layer), not for {name} per {spec.per}",
                                     spec.per))  # fmt: skip
        errors.extend(conditional_errors(self.space))
        errors.extend(rules.combination_errors(self))
        problem = metric_problem(self.search.metric, self.dataset.task)
        if problem:
            errors.append(_error(("search", "metric"), problem, self.search.metric))
        first = (self.search.objectives or [None])[0]
        first = next(iter(first)) if isinstance(first, dict) else first
        problem = metric_problem(first, self.dataset.task) if first and self.search.metric == "auto" else None
        if problem:
            errors.append(_error(("search", "objectives"), problem, first))
        _raise_errors("StudyConfig", errors)
        return self

    def _own_model_errors(self) -> list[InitErrorDetails]:
        """With `model.build`: space keys the factory cannot take, required arguments nobody gives, and
        the default space when the file has no `space:` (the entries of DEFAULT_SPACE the factory takes, and
        the compile knob `learning_rate` for a model it leaves uncompiled; at least one of its arguments)."""
        factory = self.model.factory
        errors = []
        if factory.takes_hp:  # a KerasTuner hypermodel: its space is its own hp.Int / hp.Choice ... calls
            if "space" in self.model_fields_set:
                how = ("trial (an Optuna model function): it draws its own space with trial.suggest_int, "
                       "suggest_float, suggest_categorical" if factory.hp_style == "trial" else
                       "hp (a KerasTuner hypermodel): it draws its own space with hp.Int, hp.Float, hp.Choice ...")
                errors.append(_error(("space",), f"{factory.label} takes {how}; leave space: out", None))
            # not marked as given: a dump (overrides, the workers' study file) leaves space: out, as the file did
            self.__dict__["space"] = {}
            return errors
        if "space" not in self.model_fields_set:
            space = {name: spec for name, spec in default_space().items()
                     if factory.takes(name) or name in hyperparams.HYPERPARAMS and hyperparams.HYPERPARAMS[name].compile}
            if not any(factory.takes(name) for name in space):  # the learning rate alone: rarely meant
                errors.append(_error(("model", "build"), f"{factory.label} takes none of {', '.join(DEFAULT_SPACE)} (the "
                                     "default space): give a space: of its arguments to tune", None))
                return errors
            self.space = space
        bad = set()
        flags = self.space_flags()
        for name in self.space:
            problem = None if name in flags else own_space_errors(factory, name)
            if problem:
                bad.add(name)
                errors.append(_error(("space", name), problem, name))
        given = set(self.model.fixed_params()) | set(self.space)
        missing = [name for name in factory.required() if name not in given]
        if missing:
            names = ", ".join(f"'{n}'" for n in missing)
            errors.append(_error(
                ("model", "build"), f"{factory.label} needs argument{'s' if len(missing) > 1 else ''} {names}, "
                "which neither model: (fixed) nor space: (tuned) gives", self.model.build,
            ))  # fmt: skip
        return errors

    def _is_set(self, dotted: str) -> bool:
        """Whether the study file gives the key `dotted` (``training.early_stopping.patience``) itself."""
        return rules.is_set(self, dotted)

    def value_of(self, dotted: str) -> Any:
        """The setting at key `dotted` (``training.epochs``), defaults included."""
        value: Any = self
        for name in dotted.split("."):
            value = getattr(value, name)
        return value

    @property
    def export_dir(self) -> Path:
        """Where the best model is exported."""
        return Path(self.export.dir) if self.export.dir else Path("exports") / self.name

    def __eq__(self, other: object) -> bool:
        """Equal settings; where a study was read from is not one of them."""
        if not isinstance(other, StudyConfig):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @property
    def source(self) -> StudySource | None:
        """The file this study was loaded from and its text (kept by copies and overrides); None for a
        study built from a dict."""
        return self._source

    @property
    def experiment_name(self) -> str:
        """MLflow experiment name."""
        return self.mlflow.experiment or self.name

    def with_overrides(self, overrides: Overrides | None = None, **values: Any) -> "StudyConfig":
        """A validated copy with command-line overrides applied: an :class:`~tuning.config.overrides.Overrides`
        or its fields as keywords (``n_trials=``, ``timeout=``, ``seed=``, ``tracking_uri=``, ``experiment=``,
        ``output_dir=``); None leaves a value as it is."""
        overrides = overrides or Overrides(**values)
        if not overrides:
            return self
        data = self.model_dump(exclude_unset=True)
        for (section, key), value in overrides.changes().items():
            data.setdefault(section, {})[key] = value
        source = "command-line options" if self._source is None else f"{self._source.path} with command-line options"
        config = load_study_dict(data, source=source)
        config._source = self._source
        return config


def space_digest(cfg: StudyConfig) -> str:
    """sha256 of a canonical JSON of the search space (defaults included), to detect a changed space."""
    space = {name: cfg.space[name].model_dump(mode="json") for name in sorted(cfg.space)}  # per / when: where given
    return hashlib.sha256(json.dumps(space, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def factory_digest(cfg: StudyConfig) -> str | None:
    """sha256 of the source file of the study's own model factory (`model.build`), to detect a changed
    factory; None for our network."""
    factory = cfg.model.factory
    return None if factory is None else factory.digest()


# ---------------------------------------------------------------------------------------------- loading


def load_study(path: str | os.PathLike[str], text: str | None = None) -> StudyConfig:
    """Read and validate a study YAML file; any problem raises `StudyConfigError` naming file, key and line.
    The file is read once: its text stays with the config (`StudyConfig.source`); ``text``: the file's text,
    when the caller has already read it (`tuning.config.studyfile.read_text`)."""
    text = read_text(path) if text is None else text
    config = parse(text, StudyConfig, path)
    config._source = StudySource(Path(path), text)
    return config


def load_study_dict(data: dict[str, Any], source: str = "<dict>") -> StudyConfig:
    """Validate a study given as a dict (same checks and messages as `load_study`, without line numbers)."""
    return validate(StudyConfig, data, source)
