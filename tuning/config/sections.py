"""The sections of a study file other than the study's own rules: ``preprocessing``, ``search``,
``training`` (with ``early_stopping``), ``mlflow`` and ``export`` (with ``ensemble``), and the metrics a study
may optimise. Their defaults and bounds, where a section sets an estimator argument, come from
`estimators.common.hyperparams`; `tuning.config.schema` assembles them into a `StudyConfig`."""

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from estimators.common import hyperparams
from tuning.config.validation import Float, Int, suggest
from tuning.config.validation import StrictModel as _Model
from tuning.errors import StudyConfigError

__all__ = [
    "CLASSIFICATION_METRICS",
    "CheckpointConfig",
    "OPTIMIZERS",
    "REGRESSION_METRICS",
    "TUNABLE_PARAMS",
    "EarlyStoppingConfig",
    "EnsembleConfig",
    "ExportConfig",
    "Metric",
    "MlflowConfig",
    "PreprocessingConfig",
    "SearchConfig",
    "TrainingConfig",
    "metric_problem",
    "ChooseConfig",
    "SECONDARY_OBJECTIVES",
]

Metric = Literal["auto", "mse", "rmse", "mae", "r2", "accuracy", "log_loss", "roc_auc"]

OPTIMIZERS: tuple[str, ...] = hyperparams.OPTIMIZERS
#: Names the estimator accepts as hyperparameters to tune (the keys allowed in `space`).
TUNABLE_PARAMS: frozenset[str] = hyperparams.tunable()
REGRESSION_METRICS: frozenset[str] = frozenset({"mse", "rmse", "mae", "r2"})
CLASSIFICATION_METRICS: frozenset[str] = frozenset({"accuracy", "log_loss", "roc_auc"})
_MINIMIZED_METRICS = frozenset({"mse", "rmse", "mae", "log_loss"})
#: What a study may optimise besides its metric (``search.objectives``), each with its default direction:
#: measured on every complete trial's fitted pipeline (tuning.search.trial.objectives)
SECONDARY_OBJECTIVES: dict[str, str] = {"n_params": "minimize", "latency_ms": "minimize", "model_bytes": "minimize"}
_DIRECTIONS = ("minimize", "maximize")


class PreprocessingConfig(_Model):
    """Feature preprocessing done inside the estimator pipeline (fitted on the training rows only)."""

    # quantile: QuantileTransformer to a normal law, so outlying rows stay within a few units (robust)
    # robust: RealMLP's median / interquartile range, then smooth clipping to +-3 (RobustSmoothClip)
    scaling: Literal["standard", "minmax", "quantile", "robust", "none"] = "standard"
    # regression only: train on standardised y (predictions stay in the original units); auto = when the
    # target's mean or spread is far from 0 / 1
    target_scaling: Literal["auto", "standard", "none"] = "auto"
    missing_indicator: bool = False  # numeric columns with missing values also get a 0/1 "was missing" column
    min_frequency: Int = Field(5, ge=1)  # categories seen in fewer training rows are grouped into one


# --------------------------------------------------------------------------------------- other sections


def _objective_entry(index: int, entry: Any) -> tuple[str, str | None]:
    """One ``search.objectives`` entry (``name`` or ``{name: direction}``) as (name, direction or None)."""
    if isinstance(entry, str):
        name, direction = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        name, direction = next(iter(entry.items()))
    else:
        raise ValueError(f"entry {index + 1}: give a name (latency_ms) or one name: direction pair "
                         f"({{latency_ms: minimize}}), got {entry!r}")
    allowed = [*sorted(REGRESSION_METRICS | CLASSIFICATION_METRICS), *SECONDARY_OBJECTIVES]
    if not isinstance(name, str) or name not in allowed:
        hint = suggest(str(name), allowed) or f"; allowed: {', '.join(allowed)}"
        raise ValueError(f"entry {index + 1}: unknown objective {name!r}{hint}")
    if direction is not None and direction not in _DIRECTIONS:
        raise ValueError(f"entry {index + 1}: the direction of {name} must be minimize or maximize, got {direction!r}")
    if index == 0 and name in SECONDARY_OBJECTIVES:
        raise ValueError(f"the first objective is the study's metric (trials are validated, ranked and pruned on it), "
                         f"not {name}: put the metric first, e.g. [mse, {name}]")
    if index > 0 and name not in SECONDARY_OBJECTIVES:
        raise ValueError(f"entry {index + 1}: only the first objective may be a metric; the others are "
                         f"{', '.join(SECONDARY_OBJECTIVES)}, not {name}")
    if index == 0 and direction is not None and direction != _metric_direction(name):
        raise ValueError(f"{name} is {_metric_direction(name)}d; leave its direction out or give "
                         f"{_metric_direction(name)}, not {direction}")
    return name, direction


def _metric_direction(metric: str) -> str:
    return "minimize" if metric in _MINIMIZED_METRICS else "maximize"


def _check_cv(value: Any) -> Any:
    if value == "validation":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
        return value
    raise ValueError("cv must be an integer >= 2 (K-fold cross-validation on train) or 'validation'")


class CheckpointConfig(_Model):
    """A trial's checkpoints (tuning.search.trial.resume): after every ``every_epochs`` epochs or ``every_s``
    seconds of training, whichever comes first (null: not on that count), so that a trial killed mid-way
    goes on from its last checkpoint when the study runs again."""

    every_epochs: Int | None = Field(10, ge=1)
    every_s: Float | None = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _some_interval(self) -> "CheckpointConfig":
        if self.every_epochs is None and self.every_s is None:
            raise ValueError("give every_epochs or every_s (or both), or write checkpoint: false")
        return self


def _check_checkpoint(value: Any) -> Any:
    """``false`` (or null) turns checkpoints off, ``true`` keeps the default intervals."""
    if value is False or value is None:
        return None
    if value is True:
        return {}
    if isinstance(value, (dict, CheckpointConfig)):
        return value
    raise ValueError("checkpoint must be false, true or a mapping {every_epochs: N, every_s: S}")


class SearchConfig(_Model):
    """How the search runs: backend, budget, sampler/pruner, scoring."""

    backend: Literal["optuna", "random"] = "optuna"
    n_trials: Int = Field(20, ge=1)
    timeout: Float | None = Field(None, gt=0)
    sampler: Literal["tpe", "random", "cmaes", "grid", "nsga2"] = "tpe"
    pruner: Literal["hyperband", "median", "successive_halving", "none"] = "hyperband"
    cv: Annotated[int | Literal["validation"], BeforeValidator(_check_cv)] = "validation"
    seed: Int = 42
    n_jobs: Int = 1  # parallel folds (cv >= 2); the random backend: candidates at once, in worker processes
    metric: Metric = "auto"
    # first, a learning-rate range test replaces space.learning_rate (a float range) by the bounds it
    # suggests, stored in the export dir for resumes (tuning.search.lr_bounds)
    lr_range_test: bool = False
    # processes running trials on this machine (either backend), as --workers
    workers: Int = Field(1, ge=1)
    # trials trained side by side as one Keras model (tuning.search.schedulers.stacking): the sampler proposes this
    # many at once; 1 trains each trial alone. Our MLP with Adam, cv: validation only
    stack: Int = Field(1, ge=1)
    # several objectives: the metric first (pruned on), then any of SECONDARY_OBJECTIVES, each a name or
    # {name: direction}; None (or the metric alone): one objective, the metric
    objectives: list[str | dict[str, str]] | None = None
    # a trial's checkpoints, so that a trial killed mid-way resumes from its last one (false: none)
    checkpoint: Annotated[CheckpointConfig | None, BeforeValidator(_check_checkpoint)] = Field(
        default_factory=CheckpointConfig)

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: list[Any] | None) -> list[Any] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("give at least the metric (e.g. [mse, latency_ms]), or leave objectives out")
        names = [_objective_entry(i, entry)[0] for i, entry in enumerate(value)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return value

    @property
    def multi_objective(self) -> bool:
        """Whether the study has several objectives (a Pareto front) rather than its metric alone."""
        return len(self.objectives or ()) > 1

    def objective_list(self, task: str) -> list[tuple[str, str]]:
        """(name, direction) of each objective, the study's metric first."""
        return [(self.resolved_metric(task), self.direction(task)), *self.other_objectives()]

    def other_objectives(self) -> list[tuple[str, str]]:
        """(name, direction) of each objective after the metric (none for a study of one objective)."""
        out = []
        for i, entry in enumerate((self.objectives or [])[1:], start=1):
            name, direction = _objective_entry(i, entry)
            out.append((name, direction or SECONDARY_OBJECTIVES[name]))
        return out

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs(cls, value: int) -> int:
        if value < 1 and value != -1:
            raise ValueError("n_jobs must be >= 1, or -1 for all cores")
        return value

    def resolved_metric(self, task: str) -> str:
        """The metric to score with: `auto` is the first of ``objectives`` if given, else mse for regression,
        accuracy for classification."""
        if self.metric == "auto" and self.objectives:
            return _objective_entry(0, self.objectives[0])[0]
        if self.metric == "auto":
            return "mse" if task == "regression" else "accuracy"
        problem = metric_problem(self.metric, task)
        if problem:
            raise StudyConfigError(f"search.metric: {problem}")
        return self.metric

    def direction(self, task: str) -> Literal["minimize", "maximize"]:
        """Whether the resolved metric is minimised or maximised."""
        return _metric_direction(self.resolved_metric(task))


def metric_problem(metric: str, task: str | None) -> str | None:
    if metric == "auto" or task is None:
        return None
    if task == "regression" and metric not in REGRESSION_METRICS:
        return f"'{metric}' is a classification metric but the task is regression"
    if task != "regression" and metric not in CLASSIFICATION_METRICS:
        return f"'{metric}' is a regression metric but the task is {task}"
    return None


def _estimator_field(name: str) -> Any:
    """A study setting that is an estimator argument: its default and bounds from the table."""
    param = hyperparams.HYPERPARAMS[name]
    return Field(param.default, ge=param.ge, gt=param.gt, le=param.le, lt=param.lt)


class EarlyStoppingConfig(_Model):
    """Keras EarlyStopping callback settings."""

    enabled: bool = _estimator_field("early_stopping")
    monitor: str = "val_loss"
    patience: Int = _estimator_field("patience")
    min_delta: Float = _estimator_field("min_delta")
    restore_best_weights: bool = _estimator_field("restore_best_weights")


class TrainingConfig(_Model):
    """Fit settings shared by every trial (a `space` entry of the same name overrides them)."""

    epochs: Int = _estimator_field("epochs")
    batch_size: Int = _estimator_field("batch_size")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)


class MlflowConfig(_Model):
    """Where runs are tracked; experiment None means the study name."""

    tracking_uri: str | None = None
    experiment: str | None = None


class EnsembleConfig(_Model):
    """The exported model as a weighted average of the best trials' models (off while ``size`` is 0)."""

    # greedy: ``size`` rounds of greedy selection with replacement on the validation set among the
    # ``candidates`` best trials (auto-sklearn's ensemble selection); top_k: the ``size`` best, equal weights
    method: Literal["greedy", "top_k"] = "greedy"
    size: Int = Field(0, ge=0)
    candidates: Int = Field(10, ge=1)

    @property
    def enabled(self) -> bool:
        return self.size > 0

    @property
    def pool(self) -> int:
        """How many best trials' fitted models a run keeps for the ensemble."""
        if not self.enabled:
            return 1
        return self.candidates if self.method == "greedy" else self.size


_BOUND = re.compile(r"^\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def parse_bound(text: str) -> tuple[str, float]:
    """``"<= 0.5"`` as ("<=", 0.5); ValueError for anything else."""
    match = _BOUND.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"a bound is a comparison and a number, such as '<= 0.5' or '> 0.8', got {text!r}")
    return match.group(1), float(match.group(2))


def meets(value: float, bound: str) -> bool:
    """Whether ``value`` meets ``bound`` (``"<= 0.5"``)."""
    op, limit = parse_bound(bound)
    return {"<=": value <= limit, "<": value < limit, ">=": value >= limit, ">": value > limit}[op]


class ChooseConfig(_Model):
    """Which point of the Pareto front is exported (several objectives): the best ``best`` (default: the
    first objective) among the front's trials that meet every bound of ``where``."""

    best: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)

    @field_validator("where")
    @classmethod
    def _bounds(cls, value: dict[str, Any]) -> dict[str, str]:
        for name, bound in value.items():
            if isinstance(bound, bool) or not isinstance(bound, str):
                raise ValueError(f"where.{name}: a bound is a quoted comparison and a number, such as "
                                 f"'<= 0.5', got {bound!r}")
            try:
                parse_bound(bound)
            except ValueError as exc:
                raise ValueError(f"where.{name}: {exc}") from None
        return value


class ExportConfig(_Model):
    """Where the best model goes; dir None means exports/<study name>."""

    dir: str | None = None
    registered_model_name: str | None = None
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    # the rows the exported model(s) learn from: the trials' own models (train), or each trained again on
    # training + validation rows for its best epoch count with its learning rates (train+valid)
    train_on: Literal["train", "train+valid"] = "train"
    # HistGradientBoosting (defaults) fitted on the same rows beside the export, for the summary
    # (tuning.export.baseline; never for images, word ids or inputs wider than 2,000 columns x classes)
    baseline: bool = True
    # several objectives (search.objectives): the point of the Pareto front exported; None: the front's best
    # first objective
    choose: ChooseConfig | None = None
