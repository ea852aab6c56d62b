"""Study file parsing and validation: every mistake names the key path and the YAML line."""

import textwrap
from pathlib import Path

import pytest

from tuning.config.schema import (
    TUNABLE_PARAMS,
    CategoricalParam,
    FloatParam,
    IntParam,
    StudyConfig,
    load_study,
    load_study_dict,
    space_digest,
)
from tuning.errors import StudyConfigError, StudyError

FULL = """\
name: housing-mlp.v1
dataset:
  source: csv
  path: data/housing.csv
  target: price
  task: regression
  test_size: 0.2
  valid_size: 0.2
  seed: 7
  max_rows: 1000
preprocessing:
  scaling: minmax
model:
  activation: relu
  optimizer: adam
space:
  n_hidden: {type: int, low: 1, high: 3}
  n_neurons: {type: int, low: 8, high: 256, log: true}
  learning_rate: {type: float, low: 1e-4, high: 3e-2, log: true}
  dropout: {type: float, low: 0.0, high: 0.5, step: 0.1}
  batch_size: {type: categorical, choices: [16, 32, 64]}
search:
  backend: optuna
  n_trials: 30
  timeout: 600
  sampler: tpe
  pruner: median
  cv: 3
  seed: 1
  n_jobs: -1
  metric: rmse
training:
  epochs: 50
  early_stopping:
    patience: 5
    min_delta: 0.001
mlflow:
  tracking_uri: sqlite:///mlflow.db
  experiment: housing
export:
  dir: out/housing
  registered_model_name: housing-mlp
"""

MINIMAL = """\
name: iris
dataset:
  source: iris
space:
  learning_rate:
    type: float
    low: 0.001
    high: 0.1
    log: true
"""


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(StudyConfigError) as info:
        load_study(write(tmp_path, text))
    return str(info.value)


@pytest.fixture
def full_study(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "housing.csv").write_text("a,price\n1,2\n")
    return write(tmp_path, FULL)


def test_full_study_parses(full_study: Path) -> None:
    cfg = load_study(full_study)
    assert cfg.name == "housing-mlp.v1"
    assert cfg.dataset.source == "csv" and cfg.dataset.target == "price" and cfg.dataset.task == "regression"
    # the relative path is resolved next to the study file
    assert Path(cfg.dataset.path) == full_study.parent / "data" / "housing.csv"
    assert (cfg.dataset.test_size, cfg.dataset.valid_size, cfg.dataset.seed) == (0.2, 0.2, 7)
    assert cfg.preprocessing.scaling == "minmax"
    assert cfg.model.fixed_params() == {"activation": "relu", "optimizer": "adam"}
    assert cfg.space["n_hidden"] == IntParam(type="int", low=1, high=3)
    assert cfg.space["n_neurons"].log is True
    lr = cfg.space["learning_rate"]
    assert isinstance(lr, FloatParam) and lr.low == pytest.approx(1e-4)  # YAML 1.2 float, not a string
    assert cfg.space["dropout"].grid_values() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    batch_size = cfg.space["batch_size"]
    assert isinstance(batch_size, CategoricalParam) and batch_size.choices == [16, 32, 64]
    assert cfg.search.cv == 3 and cfg.search.n_jobs == -1 and cfg.search.timeout == 600.0
    assert cfg.search.resolved_metric("regression") == "rmse"
    assert cfg.search.direction("regression") == "minimize"
    assert cfg.training.epochs == 50 and cfg.training.batch_size == 32
    assert cfg.training.early_stopping.patience == 5 and cfg.training.early_stopping.enabled
    assert cfg.experiment_name == "housing"
    assert cfg.export_dir == Path("out/housing")
    assert cfg.export.registered_model_name == "housing-mlp"


def test_defaults(tmp_path: Path) -> None:
    cfg = load_study(write(tmp_path, MINIMAL))
    assert cfg.dataset.task == "multiclass"  # inferred from the built-in data set
    assert (cfg.dataset.test_size, cfg.dataset.valid_size, cfg.dataset.seed) == (0.25, 0.25, 42)
    assert cfg.dataset.stratify is None and cfg.dataset.max_rows is None and cfg.dataset.path is None
    assert cfg.preprocessing.scaling == "standard"
    assert cfg.model.fixed_params() == {}
    s = cfg.search
    assert (s.backend, s.n_trials, s.timeout, s.sampler, s.pruner, s.cv, s.seed, s.n_jobs, s.metric) == (
        "optuna", 20, None, "tpe", "hyperband", "validation", 42, 1, "auto"
    )  # fmt: skip
    assert s.resolved_metric("multiclass") == "accuracy" and s.direction("multiclass") == "maximize"
    assert s.resolved_metric("regression") == "mse" and s.direction("regression") == "minimize"
    assert (cfg.training.epochs, cfg.training.batch_size) == (100, 32)
    es = cfg.training.early_stopping
    assert (es.enabled, es.monitor, es.patience, es.min_delta, es.restore_best_weights) == (
        True, "val_loss", 10, 0.0, True
    )  # fmt: skip
    assert cfg.mlflow.tracking_uri is None and cfg.experiment_name == "iris"
    assert cfg.export_dir == Path("exports") / "iris"


@pytest.mark.parametrize(
    ("source", "task"),
    [("california_housing", "regression"), ("diabetes", "regression"), ("breast_cancer", "binary"),
     ("imdb", "binary"), ("digits", "multiclass"), ("mnist", "multiclass"), ("fashion_mnist", "multiclass")],
)  # fmt: skip
def test_task_inferred_for_builtin_sources(source: str, task: str) -> None:
    cfg = load_study_dict({"name": "x", "dataset": {"source": source}, "space": {"epochs": {"type": "int",
                           "low": 1, "high": 2}}})  # fmt: skip
    assert cfg.dataset.task == task


def test_typo_unknown_key_with_suggestion(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL + "search:\n  trails: 5\n")
    assert "search.trails (line 11): unknown key 'trails'; did you mean 'n_trials'?" in msg
    assert msg.startswith(f"{tmp_path / 'study.yaml'}: 1 error\n")


def test_unknown_top_level_key_and_nested(tmp_path: Path) -> None:
    text = MINIMAL.replace("    log: true", "    log: true\n    lgo: true") + "serach: {}\n"
    msg = error_of(tmp_path, text)
    assert "2 errors" in msg
    assert "space.learning_rate.lgo (line 10): unknown key 'lgo'" in msg  # no pydantic tag segment ('float')
    assert "serach (line 11): unknown key 'serach'; did you mean 'search'?" in msg


def test_wrong_type(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL + "search:\n  n_trials: many\n")
    assert "search.n_trials (line 11): Input should be a valid integer" in msg
    assert "'many'" in msg


def test_boolean_is_not_a_number(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL + "search:\n  n_trials: true\n")
    assert "search.n_trials (line 11)" in msg


def test_empty_space(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "name: x\ndataset:\n  source: iris\nspace: {}\n")
    assert "space (line 4): empty space" in msg


def test_missing_space_gets_the_default_space(tmp_path: Path) -> None:
    from tuning.config.schema import DEFAULT_SPACE

    path = tmp_path / "study.yaml"
    path.write_text("name: x\ndataset:\n  source: iris\n")
    cfg = load_study(path)
    assert sorted(cfg.space) == sorted(DEFAULT_SPACE)
    assert cfg.space["learning_rate"].log and cfg.space["n_hidden"].low == DEFAULT_SPACE["n_hidden"]["low"]


def test_low_greater_than_high(tmp_path: Path) -> None:
    text = MINIMAL.replace("low: 0.001", "low: 0.5")
    msg = error_of(tmp_path, text)
    assert "space.learning_rate.low (line 7): low (0.5) must be <= high (0.1)" in msg


def test_log_with_non_positive_low(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL.replace("low: 0.001", "low: 0"))
    assert "space.learning_rate.low (line 7): log scale needs low > 0" in msg


def test_log_with_step(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL.replace("    log: true", "    log: true\n    step: 0.01"))
    assert "space.learning_rate.step (line 10): step cannot be combined with log" in msg


def test_unknown_hyperparameter(tmp_path: Path) -> None:
    text = MINIMAL + "  lr: {type: float, low: 0.1, high: 0.2}\n"
    msg = error_of(tmp_path, text)
    assert "space.lr (line 10): unknown hyperparameter 'lr'; tunable: " in msg
    assert ", ".join(sorted(TUNABLE_PARAMS)) in msg
    assert "did you mean 'learning_rate'?" in msg


def test_bad_param_type_tag(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL + "  dropout: {type: floot, low: 0, high: 0.5}\n")
    assert "space.dropout.type (line 10): unknown type 'floot'" in msg
    msg = error_of(tmp_path, MINIMAL + "  dropout: {low: 0, high: 0.5}\n")
    assert "space.dropout.type (line 10): missing 'type'" in msg


def test_values_the_estimator_refuses(tmp_path: Path) -> None:
    text = MINIMAL + textwrap.indent(
        textwrap.dedent("""\
        dropout: {type: float, low: 0.0, high: 1.0}
        n_hidden: {type: float, low: 1, high: 3}
        optimizer: {type: categorical, choices: [adam, adamax]}
        """),
        "  ",
    )
    msg = error_of(tmp_path, text)
    assert "space.dropout.high (line 10): dropout: must be < 1" in msg
    assert "space.n_hidden.type (line 11): n_hidden must use type int or categorical" in msg
    assert "space.optimizer.choices.1 (line 12): optimizer: 'adamax' is not one of" in msg


def test_missing_dataset_file(tmp_path: Path) -> None:
    text = "name: x\ndataset:\n  source: csv\n  path: nowhere.csv\n  target: y\nspace:\n  epochs: {type: int, low: 1, high: 2}\n"
    msg = error_of(tmp_path, text)
    assert "dataset.path (line 4): data file not found: 'nowhere.csv'" in msg


def test_dataset_path_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.csv").write_text("a,y\n1,2\n")
    (tmp_path / "studies").mkdir()
    study = write(tmp_path / "studies", "name: x\ndataset: {source: csv, path: d.csv, target: y}\n"
                  "space: {epochs: {type: int, low: 1, high: 2}}\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert load_study(study).dataset.path == "d.csv"


def test_csv_without_target(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,y\n1,2\n")
    msg = error_of(
        tmp_path,
        "name: x\ndataset:\n  source: csv\n  path: d.csv\nspace:\n  epochs: {type: int, low: 1, high: 2}\n",
    )
    assert "dataset.target (line 2): required when source is 'csv'" in msg


def test_path_with_builtin_source(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL.replace("  source: iris", "  source: iris\n  path: x.csv"))
    assert "dataset.path (line 4): only used with source csv, parquet or arff" in msg


def test_yaml_syntax_error(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "name: x\ndataset:\n  source: [iris\nspace: {}\n")
    assert msg.startswith(f"{tmp_path / 'study.yaml'}: invalid YAML at line ")
    assert "line 4" in msg


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    assert "top level must be a mapping" in error_of(tmp_path, "- a\n- b\n")
    assert "got an empty file" in error_of(tmp_path, "")


def test_duplicate_key(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL + "search: {n_trials: 3}\nsearch: {n_trials: 4}\n")
    assert "search (line 11): duplicate key" in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError, match="nope.yaml: study file not found"):
        load_study(tmp_path / "nope.yaml")


def test_same_key_in_model_and_space(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL + "model:\n  learning_rate: 0.01\n")
    assert "space.learning_rate (line 5): 'learning_rate' is both fixed in model and tuned in space" in msg


def test_same_key_in_training_and_space(tmp_path: Path) -> None:
    text = MINIMAL + "  epochs: {type: int, low: 5, high: 50}\ntraining:\n  epochs: 20\n"
    msg = error_of(tmp_path, text)
    assert "space.epochs (line 10): 'epochs' is both set in training.epochs and tuned in space" in msg


def test_metric_must_fit_task(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL + "search:\n  metric: r2\n")
    assert "search.metric (line 11): 'r2' is a regression metric but the task is multiclass" in msg


def test_grid_needs_finite_space(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL + "search:\n  sampler: grid\n")
    assert "search.sampler (line 11): the grid sampler needs a finite grid" in msg


def test_bad_cv_and_name(tmp_path: Path) -> None:
    msg = error_of(tmp_path, MINIMAL.replace("name: iris", "name: 'my study'") + "search:\n  cv: 1\n")
    assert "name (line 1): name must be non-empty" in msg
    assert "search.cv (line 11): cv must be an integer >= 2" in msg


def test_checkpoint_setting(tmp_path: Path) -> None:
    defaults = load_study(write(tmp_path, MINIMAL)).search.checkpoint
    assert (defaults.every_epochs, defaults.every_s) == (10, 60.0)
    for text, expected in (("false", None), ("null", None), ("true", (10, 60.0)), ("{every_epochs: 5}", (5, 60.0)),
                           ("{every_epochs: null, every_s: 30}", (None, 30.0))):
        setting = load_study(write(tmp_path, MINIMAL + f"search:\n  checkpoint: {text}\n")).search.checkpoint
        assert (setting if setting is None else (setting.every_epochs, setting.every_s)) == expected, text
    path = tmp_path / "study.yaml"
    for text, message in (
        ("5", "search.checkpoint (line 11): checkpoint must be false, true or a mapping {every_epochs: N, every_s: S}"),
        ("{every_epochs: 0}", "search.checkpoint.every_epochs (line 11): Input should be greater than or equal to 1"),
        ("{every_s: -1}", "search.checkpoint.every_s (line 11): Input should be greater than 0"),
        ("{every_epochs: true}", "search.checkpoint.every_epochs (line 11): Input should be a number, not a boolean"),
        ("{every_epochs: null, every_s: null}", "search.checkpoint (line 11): give every_epochs or every_s (or both), "
                                                "or write checkpoint: false"),
        ("{every: 3}", "search.checkpoint.every (line 11): unknown key 'every'"),
    ):
        msg = error_of(tmp_path, MINIMAL + f"search:\n  checkpoint: {text}\n")
        assert msg.startswith(f"{path}: 1 error\n") and message in msg, (text, msg)


def test_error_is_a_study_error(tmp_path: Path) -> None:
    with pytest.raises(StudyError):
        load_study_dict({"name": "x"})


def test_load_study_dict() -> None:
    cfg = load_study_dict({"name": "d", "dataset": {"source": "diabetes"},
                           "space": {"n_neurons": {"type": "int", "low": 4, "high": 8}}})  # fmt: skip
    assert isinstance(cfg, StudyConfig) and cfg.dataset.task == "regression"
    with pytest.raises(StudyConfigError) as info:
        load_study_dict(
            {
                "name": "d",
                "dataset": {"source": "diabetes"},
                "space": {"lr": {"type": "float", "low": 0.1, "high": 0.2}},
            },
            source="api",
        )
    assert str(info.value).startswith("api: 1 error\n  space.lr: unknown hyperparameter 'lr'")


def test_with_overrides(tmp_path: Path) -> None:
    cfg = load_study(write(tmp_path, MINIMAL + "  epochs: {type: int, low: 5, high: 50}\n"))
    new = cfg.with_overrides(n_trials=3, timeout=60, seed=9, tracking_uri="file:./mlruns", experiment="e",
                             output_dir=tmp_path / "out")  # fmt: skip
    assert (new.search.n_trials, new.search.timeout, new.search.seed) == (3, 60.0, 9)
    assert (new.mlflow.tracking_uri, new.experiment_name) == ("file:./mlruns", "e")
    assert new.export_dir == tmp_path / "out"
    assert cfg.search.n_trials == 20 and cfg.export_dir == Path("exports/iris")  # original unchanged
    assert cfg.with_overrides() == cfg
    with pytest.raises(StudyConfigError, match=r"command-line options: 1 error\n  search.n_trials: "):
        cfg.with_overrides(n_trials=0)


def test_a_loaded_study_keeps_its_file_and_text_through_overrides_and_copies(tmp_path: Path) -> None:
    """The one read of the file travels with the config (for the MLflow artifact); it is not a setting."""
    path = write(tmp_path, MINIMAL + "  epochs: {type: int, low: 5, high: 50}  # a comment stays\n")
    cfg = load_study(path)
    assert cfg.source is not None
    assert cfg.source.path == path and cfg.source.text == path.read_text()
    path.write_text("name: changed afterwards\n")
    new = cfg.with_overrides(seed=9, output_dir=tmp_path / "out")
    assert new.search.seed == 9 and new.source == cfg.source and "# a comment stays" in new.source.text
    assert cfg.model_copy(update={"name": "copy"}).source == cfg.source
    from_dict = load_study_dict(cfg.model_dump(exclude_unset=True))
    assert from_dict.source is None and from_dict.with_overrides(seed=9).source is None
    assert from_dict == cfg and from_dict != new  # equal settings are equal studies, wherever they came from


def test_space_digest(tmp_path: Path) -> None:
    cfg = load_study(write(tmp_path, MINIMAL))
    digest = space_digest(cfg)
    assert len(digest) == 64
    assert space_digest(load_study(write(tmp_path, MINIMAL, "again.yaml"))) == digest
    # unrelated changes and spelling out a default keep it
    assert space_digest(cfg.with_overrides(n_trials=5, seed=3)) == digest
    same = MINIMAL.replace("low: 0.001", "low: 1.0e-3").replace("log: true", "log: true\n    step: null")
    assert space_digest(load_study(write(tmp_path, same, "same.yaml"))) == digest
    changed = MINIMAL.replace("high: 0.1", "high: 0.2")
    assert space_digest(load_study(write(tmp_path, changed, "changed.yaml"))) != digest
    added = MINIMAL + "  epochs: {type: int, low: 1, high: 2}\n"
    assert space_digest(load_study(write(tmp_path, added, "added.yaml"))) != digest
