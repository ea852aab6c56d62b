"""Typed, validated study configuration: one YAML file describes one tuning study.

`load_study(path)` reads and validates a study file; every problem is reported at once, each with its dotted
key path (``search.n_trials``), the YAML line where it is and a readable message, as a `StudyConfigError`.
"""

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tuning.errors import StudyConfigError

__all__ = [
    "BUILTIN_TASKS",
    "DEFAULT_SPACE",
    "KERAS_FILE_SOURCES",
    "FILE_SOURCES",
    "OPTIMIZERS",
    "TUNABLE_PARAMS",
    "CategoricalParam",
    "DatasetConfig",
    "EarlyStoppingConfig",
    "ExportConfig",
    "FloatParam",
    "IntParam",
    "MlflowConfig",
    "ModelConfig",
    "ParamSpec",
    "PreprocessingConfig",
    "SearchConfig",
    "StudyConfig",
    "TrainingConfig",
    "load_study",
    "load_study_dict",
    "space_digest",
]

Task = Literal["regression", "binary", "multiclass"]
Source = Literal[
    "california_housing", "diabetes", "digits", "breast_cancer", "iris", "wine",
    "mnist", "fashion_mnist", "imdb", "csv", "parquet", "arff",
]  # fmt: skip
Optimizer = Literal["sgd", "adam", "rmsprop", "nadam", "adamw"]
Metric = Literal["auto", "mse", "rmse", "mae", "r2", "accuracy", "log_loss", "roc_auc"]

FILE_SOURCES: tuple[str, ...] = ("csv", "parquet", "arff")
#: Built-in sources that can also read local files (``dataset.path``) instead of the Keras cache.
KERAS_FILE_SOURCES: tuple[str, ...] = ("mnist", "fashion_mnist", "imdb")
#: Task of each built-in data set (csv/parquet tasks are inferred from the target at load time).
BUILTIN_TASKS: dict[str, str] = {
    "california_housing": "regression",
    "diabetes": "regression",
    "breast_cancer": "binary",
    "imdb": "binary",
    "digits": "multiclass",
    "iris": "multiclass",
    "wine": "multiclass",
    "mnist": "multiclass",
    "fashion_mnist": "multiclass",
}
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "rmsprop", "nadam", "adamw")
#: Names the estimator accepts as hyperparameters to tune (the keys allowed in `space`).
TUNABLE_PARAMS: frozenset[str] = frozenset({
    "n_hidden", "n_neurons", "learning_rate", "activation", "optimizer", "dropout", "momentum",
    "batch_size", "epochs", "patience", "weight_decay",
})  # fmt: skip
REGRESSION_METRICS: frozenset[str] = frozenset({"mse", "rmse", "mae", "r2"})
CLASSIFICATION_METRICS: frozenset[str] = frozenset({"accuracy", "log_loss", "roc_auc"})
_MINIMIZED_METRICS = frozenset({"mse", "rmse", "mae", "log_loss"})
_PARAM_TAGS = ("int", "float", "categorical")
_HINTS = {"lr": "learning_rate", "units": "n_neurons", "neurons": "n_neurons", "layers": "n_hidden",
          "hidden_layers": "n_hidden", "batch": "batch_size", "l2": "weight_decay"}  # fmt: skip


# --------------------------------------------------------------------------------------------- helpers


def _error(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    """One validation error at `loc` (relative to the model that raises it)."""
    return InitErrorDetails(
        type=PydanticCustomError("study", "{msg}", {"msg": message}), loc=loc, input=value
    )


def _raise_errors(title: str, errors: list[InitErrorDetails]) -> None:
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


def _suggest(word: str, candidates: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    """A " did you mean 'x'?" suffix, or "" when nothing is close."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------- sections


class DatasetConfig(_Model):
    """Which data to load and how to split it (test, then validation out of the remaining train part)."""

    source: Source
    path: str | None = None
    target: str | Int | None = None  # a column name, or its 0-based index when `header: false`
    task: Task | None = None
    test_size: Float = Field(0.25, gt=0, lt=1)
    valid_size: Float = Field(0.25, gt=0, lt=1)
    seed: Int = 42
    stratify: bool | None = None
    max_rows: Int | None = Field(None, gt=0)
    num_words: Int = Field(1000, gt=0)
    # csv: column separator; `whitespace` = any run of spaces/tabs, `tab` = a tab; default ","
    sep: str | None = None
    header: bool = True  # csv: false = the first row is data; columns are then named 0, 1, 2 ...
    na_values: list[str] | None = None  # csv: extra strings that mean "missing" (e.g. ["?", "-"])
    drop: list[str | Int] = Field(default_factory=list)  # feature columns to leave out
    keep: list[str | Int] | None = None  # the only feature columns to use (overrides ID-column dropping)

    @property
    def is_file(self) -> bool:
        """True for csv/parquet/arff sources."""
        return self.source in FILE_SOURCES

    @field_validator("target")
    @classmethod
    def _target_text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @field_validator("drop", "keep")
    @classmethod
    def _names_text(cls, value: Any) -> Any:
        return None if value is None else [str(v) for v in value]

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "DatasetConfig":
        errors: list[InitErrorDetails] = []
        if self.path is not None and (self.is_file or self.source in KERAS_FILE_SOURCES):
            self.path = _resolve_data_path(self.path, (info.context or {}).get("base_dir"))
            found = Path(self.path)
            if not (found.is_file() or (self.source not in ("csv", "arff") and found.is_dir())):
                errors.append(_error(
                    ("path",),
                    f"data file not found: '{self.path}' (a relative path is looked up next to the study "
                    "file, then in the current directory)",
                    self.path,
                ))  # fmt: skip
        if self.is_file:
            if self.path is None:
                errors.append(_error(("path",), f"required when source is '{self.source}'", None))
            if self.target is None:
                errors.append(_error(("target",), f"required when source is '{self.source}'", None))
        else:
            keys = ("target", "drop", "keep") + (() if self.source in KERAS_FILE_SOURCES else ("path",))
            for key in keys:
                if getattr(self, key):
                    errors.append(_error(
                        (key,), f"only used with source csv, parquet or arff, not '{self.source}'", getattr(self, key)
                    ))  # fmt: skip
            known = BUILTIN_TASKS[self.source]
            if self.task is None:
                self.task = known  # type: ignore[assignment]
            elif self.task != known:
                errors.append(_error(
                    ("task",), f"'{self.source}' is a {known} data set; task '{self.task}' does not fit", self.task
                ))  # fmt: skip
        for key in ("sep", "na_values"):
            if getattr(self, key) is not None and self.source != "csv":
                errors.append(_error((key,), "only used with source csv", getattr(self, key)))
        if not self.header and self.source != "csv":
            errors.append(_error(("header",), "only used with source csv", False))
        if self.keep is not None and self.drop:
            errors.append(_error(("drop",), "give either keep or drop, not both", self.drop))
        if self.stratify and self.task == "regression":
            errors.append(_error(("stratify",), "stratified splits need a classification task", True))
        default_words = type(self).model_fields["num_words"].default
        if "num_words" in self.model_fields_set and self.source != "imdb" and self.num_words != default_words:
            errors.append(_error(("num_words",), "only used with source imdb", self.num_words))
        _raise_errors("DatasetConfig", errors)
        return self


def _resolve_data_path(path: str, base_dir: Path | None) -> str:
    """Expand `~`; a relative path is taken next to the study file if it exists there, else as given (CWD)."""
    expanded = Path(os.path.expanduser(path))
    if not expanded.is_absolute() and base_dir is not None and (base_dir / expanded).exists():
        return str(base_dir / expanded)
    return str(expanded)


class PreprocessingConfig(_Model):
    """Feature preprocessing done inside the estimator pipeline (fitted on the training rows only)."""

    # quantile: QuantileTransformer to a normal law, so outlying rows stay within a few units (robust)
    scaling: Literal["standard", "minmax", "quantile", "none"] = "standard"
    # regression only: train on standardised y (predictions stay in the original units); auto = when the
    # target's mean or spread is far from 0 / 1
    target_scaling: Literal["auto", "standard", "none"] = "auto"
    missing_indicator: bool = False  # numeric columns with missing values also get a 0/1 "was missing" column
    min_frequency: Int = Field(5, ge=1)  # categories seen in fewer training rows are grouped into one


class ModelConfig(_Model):
    """Fixed estimator arguments; None means the estimator's own default."""

    n_hidden: Int | None = Field(None, ge=0)
    n_neurons: Int | None = Field(None, ge=1)
    learning_rate: Float | None = Field(None, gt=0)
    activation: str | None = None
    optimizer: Optimizer | None = None
    dropout: Float | None = Field(None, ge=0, lt=1)
    momentum: Float | None = Field(None, ge=0, lt=1)

    def fixed_params(self) -> dict[str, Any]:
        """The arguments that were given (not None)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


# ---------------------------------------------------------------------------------------- search space


class IntParam(_Model):
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
            errors.append(_error(("step",), "step must be 1 when log is true", self.step))
        _raise_errors("IntParam", errors)
        return self

    def grid_values(self) -> list[int]:
        """Every value of the range (for grid search)."""
        return list(range(self.low, self.high + 1, self.step))


class FloatParam(_Model):
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
            errors.append(_error(("step",), "step cannot be combined with log: true", self.step))
        _raise_errors("FloatParam", errors)
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
        errors.append(_error(("low",), f"low ({low}) must be <= high ({high})", low))
    if log and low <= 0:
        errors.append(_error(("low",), f"log scale needs low > 0, got {low}", low))
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


class CategoricalParam(_Model):
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


def _check_tunable(name: str) -> str:
    if name not in TUNABLE_PARAMS:
        hint = f"; did you mean '{_HINTS[name]}'?" if name in _HINTS else _suggest(name, TUNABLE_PARAMS)
        raise ValueError(
            f"unknown hyperparameter '{name}'; tunable: {', '.join(sorted(TUNABLE_PARAMS))}{hint}"
        )
    return name


TunableName = Annotated[str, AfterValidator(_check_tunable)]


@dataclass(frozen=True)
class _Rule:
    """What values a tunable hyperparameter takes: kind, bounds, allowed strings."""

    kind: Literal["int", "float", "str"]
    ge: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
        if value is None:
            return None if self.nullable else "null is not a valid value"
        if self.kind == "str":
            if not isinstance(value, str):
                return f"expected a string, got {value!r}"
            if self.choices and value not in self.choices:
                return f"{value!r} is not one of {', '.join(self.choices)}"
            return None
        number = (int,) if self.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number):
            return f"expected {'an integer' if self.kind == 'int' else 'a number'}, got {value!r}"
        if self.ge is not None and value < self.ge:
            return f"must be >= {self.ge}, got {value}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {self.gt}, got {value}"
        if self.lt is not None and value >= self.lt:
            return f"must be < {self.lt}, got {value}"
        return None


_RULES: dict[str, _Rule] = {
    "n_hidden": _Rule("int", ge=0),
    "n_neurons": _Rule("int", ge=1),
    "batch_size": _Rule("int", ge=1),
    "epochs": _Rule("int", ge=1),
    "patience": _Rule("int", ge=0),
    "learning_rate": _Rule("float", gt=0),
    "dropout": _Rule("float", ge=0, lt=1),
    "momentum": _Rule("float", ge=0, lt=1),
    "weight_decay": _Rule("float", ge=0),
    "activation": _Rule("str", nullable=True),
    "optimizer": _Rule("str", choices=OPTIMIZERS),
}


def _space_errors(name: str, spec: IntParam | FloatParam | CategoricalParam) -> list[InitErrorDetails]:
    """Values of `spec` that the estimator would refuse for hyperparameter `name`."""
    rule = _RULES[name]
    loc: tuple[str | int, ...] = ("space", name)
    if isinstance(spec, CategoricalParam):
        return [
            _error((*loc, "choices", i), f"{name}: {problem}", choice)
            for i, choice in enumerate(spec.choices)
            if (problem := rule.problem(choice))
        ]
    allowed = {"int": ("int", "categorical"), "float": ("float", "categorical"), "str": ("categorical",)}
    if spec.type not in allowed[rule.kind]:
        return [_error((*loc, "type"), f"{name} must use type {' or '.join(allowed[rule.kind])}", spec.type)]
    return [
        _error((*loc, key), f"{name}: {problem}", value)
        for key, value in (("low", spec.low), ("high", spec.high))
        if (problem := rule.problem(value))
    ]


# --------------------------------------------------------------------------------------- other sections


def _check_cv(value: Any) -> Any:
    if value == "validation":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
        return value
    raise ValueError("cv must be an integer >= 2 (K-fold cross-validation on train) or 'validation'")


class SearchConfig(_Model):
    """How the search runs: backend, budget, sampler/pruner, scoring."""

    backend: Literal["optuna", "random"] = "optuna"
    n_trials: Int = Field(20, ge=1)
    timeout: Float | None = Field(None, gt=0)
    sampler: Literal["tpe", "random", "cmaes", "grid"] = "tpe"
    pruner: Literal["hyperband", "median", "successive_halving", "none"] = "hyperband"
    cv: Annotated[int | Literal["validation"], BeforeValidator(_check_cv)] = "validation"
    seed: Int = 42
    n_jobs: Int = 1
    joblib_backend: Literal["loky", "threading", "multiprocessing", "dask", "ray"] | None = None
    metric: Metric = "auto"

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs(cls, value: int) -> int:
        if value < 1 and value != -1:
            raise ValueError("n_jobs must be >= 1, or -1 for all cores")
        return value

    def resolved_metric(self, task: str) -> str:
        """The metric to score with: `auto` is mse for regression, accuracy for classification."""
        if self.metric == "auto":
            return "mse" if task == "regression" else "accuracy"
        problem = _metric_problem(self.metric, task)
        if problem:
            raise StudyConfigError(f"search.metric: {problem}")
        return self.metric

    def direction(self, task: str) -> Literal["minimize", "maximize"]:
        """Whether the resolved metric is minimised or maximised."""
        return "minimize" if self.resolved_metric(task) in _MINIMIZED_METRICS else "maximize"


def _metric_problem(metric: str, task: str | None) -> str | None:
    if metric == "auto" or task is None:
        return None
    if task == "regression" and metric not in REGRESSION_METRICS:
        return f"'{metric}' is a classification metric but the task is regression"
    if task != "regression" and metric not in CLASSIFICATION_METRICS:
        return f"'{metric}' is a regression metric but the task is {task}"
    return None


class EarlyStoppingConfig(_Model):
    """Keras EarlyStopping callback settings."""

    enabled: bool = True
    monitor: str = "val_loss"
    patience: Int = Field(10, ge=0)
    min_delta: Float = Field(0.0, ge=0)
    restore_best_weights: bool = True


class TrainingConfig(_Model):
    """Fit settings shared by every trial (a `space` entry of the same name overrides them)."""

    epochs: Int = Field(100, ge=1)
    batch_size: Int = Field(32, ge=1)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)


class MlflowConfig(_Model):
    """Where runs are tracked; experiment None means the study name."""

    tracking_uri: str | None = None
    experiment: str | None = None


class ExportConfig(_Model):
    """Where the best model goes; dir None means exports/<study name>."""

    dir: str | None = None
    registered_model_name: str | None = None


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


class StudyConfig(_Model):
    """One tuning study."""

    name: str
    dataset: DatasetConfig
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    space: dict[TunableName, ParamSpec] = Field(default_factory=lambda: default_space())
    search: SearchConfig = Field(default_factory=SearchConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

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

    @model_validator(mode="after")
    def _check(self) -> "StudyConfig":
        errors: list[InitErrorDetails] = []
        fixed = self.model.fixed_params()
        explicit = {
            "epochs": "epochs" in self.training.model_fields_set,
            "batch_size": "batch_size" in self.training.model_fields_set,
            "patience": "patience" in self.training.early_stopping.model_fields_set,
        }
        where = {"epochs": "training.epochs", "batch_size": "training.batch_size",
                 "patience": "training.early_stopping.patience"}  # fmt: skip
        for name, spec in self.space.items():
            if name in fixed:
                errors.append(_error(
                    ("space", name), f"'{name}' is both fixed in model and tuned in space; keep one", name
                ))  # fmt: skip
            elif explicit.get(name):
                errors.append(_error(
                    ("space", name), f"'{name}' is both set in {where[name]} and tuned in space; keep one", name
                ))  # fmt: skip
            errors.extend(_space_errors(name, spec))
        if self.search.sampler == "grid":
            for name, spec in self.space.items():
                if isinstance(spec, FloatParam) and spec.step is None:
                    errors.append(_error(
                        ("search", "sampler"),
                        f"the grid sampler needs a finite grid, but space.{name} is a float range without step",
                        "grid",
                    ))  # fmt: skip
        problem = _metric_problem(self.search.metric, self.dataset.task)
        if problem:
            errors.append(_error(("search", "metric"), problem, self.search.metric))
        _raise_errors("StudyConfig", errors)
        return self

    @property
    def export_dir(self) -> Path:
        """Where the best model is exported."""
        return Path(self.export.dir) if self.export.dir else Path("exports") / self.name

    @property
    def experiment_name(self) -> str:
        """MLflow experiment name."""
        return self.mlflow.experiment or self.name

    def with_overrides(
        self,
        n_trials: int | None = None,
        timeout: float | None = None,
        seed: int | None = None,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        output_dir: str | os.PathLike[str] | None = None,
    ) -> "StudyConfig":
        """A validated copy with command-line overrides applied (None leaves a value as it is)."""
        data = self.model_dump(exclude_unset=True)
        changes = {
            ("search", "n_trials"): n_trials,
            ("search", "timeout"): timeout,
            ("search", "seed"): seed,
            ("mlflow", "tracking_uri"): tracking_uri,
            ("mlflow", "experiment"): experiment,
            ("export", "dir"): None if output_dir is None else str(output_dir),
        }
        for (section, key), value in changes.items():
            if value is not None:
                data.setdefault(section, {})[key] = value
        return load_study_dict(data, source="command-line options")


def space_digest(cfg: StudyConfig) -> str:
    """sha256 of a canonical JSON of the search space (defaults included), to detect a changed space."""
    space = {name: cfg.space[name].model_dump(mode="json") for name in sorted(cfg.space)}
    return hashlib.sha256(json.dumps(space, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ---------------------------------------------------------------------------------------- YAML + errors


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


def load_study(path: str | os.PathLike[str]) -> StudyConfig:
    """Read and validate a study YAML file; any problem raises `StudyConfigError` naming file, key and line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyConfigError(f"{file}: study file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyConfigError(f"{file}: cannot read the study file: {exc}") from None
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
    return _validate(data, str(file), root, file.parent)


def load_study_dict(data: dict[str, Any], source: str = "<dict>") -> StudyConfig:
    """Validate a study given as a dict (same checks and messages as `load_study`, without line numbers)."""
    if not isinstance(data, dict):
        raise StudyConfigError(f"{source}: the study must be a mapping, got a {type(data).__name__}")
    return _validate(data, source, None, None)


def _validate(
    data: dict[str, Any], source: str, root: yaml.Node | None, base_dir: Path | None
) -> StudyConfig:
    try:
        return StudyConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        found = []
        for err in exc.errors(include_url=False):
            loc = _clean_loc(err)
            found.append((_line_of(root, loc), _dotted(loc), _message(err, loc, data)))
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
    if len(loc) >= 3 and loc[0] == "space" and loc[2] in _PARAM_TAGS:
        del loc[2]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("type")
    return tuple(loc)


def _message(err: Any, loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1], data)
        if allowed is None:
            return f"unknown key '{key}'"
        hint = _suggest(key, allowed) or f"; allowed: {', '.join(allowed)}"
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


def _allowed_keys(loc: tuple[Any, ...], data: Any) -> list[str] | None:
    """Field names of the model found at `loc` (walking the raw input to pick the space entry's type)."""
    model: type[BaseModel] | None = StudyConfig
    node = data
    i = 0
    while i < len(loc):
        if model is None or loc[i] not in model.model_fields:
            return None
        node = node.get(loc[i]) if isinstance(node, dict) else None
        if model is StudyConfig and loc[i] == "space":
            if i + 1 >= len(loc):
                return None
            i += 1
            node = node.get(loc[i]) if isinstance(node, dict) else None
            tag = node.get("type") if isinstance(node, dict) else None
            model = {"int": IntParam, "float": FloatParam, "categorical": CategoricalParam}.get(tag)
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
