"""The one table of hyperparameters drives every check: estimators, build_model, study files, docs/estimators.md."""

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from estimators.common import hyperparams
from estimators.common.hyperparams import HYPERPARAMS, HyperParam
from tuning.config.schema import TUNABLE_PARAMS, ModelConfig, StudyConfigError, load_study_dict

ROOT = Path(__file__).resolve().parents[1]
# The page that holds the generated blocks (the table, the tunable names, the own-model knobs).
DOC = ROOT / "docs" / "estimators.md"
ESTIMATOR_KINDS = {"KerasMLPRegressor": "regressor", "KerasMLPClassifier": "classifier"}


def study(**sections) -> dict:
    return {"name": "t", "dataset": {"source": "diabetes"}, "space": {"epochs": {"type": "int", "low": 1,
            "high": 2}}, **sections}  # fmt: skip


def bad_values(param: HyperParam) -> list:
    """Values just outside what `param` allows: past each bound, a wrong type, null, an unknown choice."""
    values = [] if param.nullable else [None]
    step = 1 if param.kind == "int" else 0.5
    values += [b - step for b in (param.ge,) if b is not None] + [
        b for b in (param.gt, param.lt) if b is not None
    ]
    values += [param.le + step] if param.le is not None else []
    if param.kind == "int":
        values.append(1.5)
    if param.kind in ("int", "float"):
        values.append("3")
    if param.choices:
        values.append("nope")
    if param.kind == "bool":
        values.append("yes")
    return values


CHECKED = [(p.name, value) for p in HYPERPARAMS.values() if p.kind != "any" for value in bad_values(p)]


def test_importing_the_table_loads_no_tensorflow():
    code = "import sys, estimators.common.hyperparams, tuning.config.schema; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout  # fmt: skip
    loaded = set(json.loads(out.replace("'", '"')))
    assert not loaded & {"tensorflow", "keras", "scikeras", "sklearn"}, loaded


def test_derived_lists():
    assert {p.name for p in HYPERPARAMS.values() if p.tunable} == TUNABLE_PARAMS == hyperparams.tunable()
    assert list(ModelConfig.model_fields) == [p.name for p in HYPERPARAMS.values() if p.model]
    assert hyperparams.OPTIMIZERS == HYPERPARAMS["optimizer"].choices
    cfg = load_study_dict(study())
    for p in HYPERPARAMS.values():  # every study key exists; training settings default to the estimator's
        if p.study:
            value = cfg.value_of(p.study)
            assert value == p.default or not p.study.startswith("training."), p.name


@pytest.mark.parametrize("cls_name", sorted(ESTIMATOR_KINDS))
def test_estimator_signatures_and_defaults_match_the_table(cls_name):
    import estimators

    signature = inspect.signature(getattr(estimators, cls_name).__init__)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    table = hyperparams.for_estimator(ESTIMATOR_KINDS[cls_name])
    assert [p.name for p in params] == [p.name for p in table]
    assert {p.name: p.default for p in params} == {p.name: p.default for p in table}
    if cls_name == "KerasMLPRegressor":  # its docstring's Parameters section is written from the table
        assert all(f"{p.name} : " in estimators.KerasMLPRegressor.__doc__ for p in table)


def test_build_model_takes_every_model_knob_with_the_table_default():
    from estimators import build_model

    signature = inspect.signature(build_model).parameters
    for knob in hyperparams.build_knobs():
        assert knob.name in signature, knob.name
        # build_model keeps Keras' own steps_per_execution=1; the estimators run 64 steps per call
        if knob.name != "steps_per_execution":
            assert signature[knob.name].default == knob.default, knob.name


@pytest.mark.parametrize(("name", "value"), CHECKED, ids=[f"{n}={v!r}" for n, v in CHECKED])
def test_every_bound_of_the_table_is_enforced_everywhere(name, value):
    import estimators

    param = HYPERPARAMS[name]
    requirement = f"{name} must be {param.requirement()}, got {value!r}"
    for cls_name, kind in ESTIMATOR_KINDS.items():
        if param.applies_to(kind):
            est = getattr(estimators, cls_name)(**{name: value})
            with pytest.raises(ValueError) as info:
                est._check_params()
            assert str(info.value) == requirement
    if param.build:
        with pytest.raises(ValueError, match=name):
            estimators.build_model(n_features=2, **{name: value})
    if param.tunable and value is not None:
        with pytest.raises(StudyConfigError, match=rf"space\.{name}\.choices\.0: {name}: "):
            load_study_dict(study(space={name: {"type": "categorical", "choices": [value]}}))
    if param.model and value is not None and not isinstance(value, str | float):  # pydantic reads "3" as 3
        with pytest.raises(StudyConfigError, match=rf"model\.{name}: "):
            load_study_dict(study(model={name: value}))


def test_edge_values_of_the_table_are_accepted():
    import estimators

    edges = {"n_hidden": 0, "n_neurons": 1, "momentum": 0.0, "dropout": 0.0, "weight_decay": None,
             "patience": 0, "min_delta": 0.0, "validation_fraction": None, "optimizer": "Adam"}  # fmt: skip
    estimators.KerasMLPRegressor(**edges)._check_params()
    estimators.KerasMLPClassifier(**edges)._check_params()


def test_base_params_map_the_study_keys_of_the_table():
    from tuning.search.trial.maker import EstimatorMaker

    cfg = load_study_dict(study(
        space={"n_neurons": {"type": "int", "low": 1, "high": 4}},
        training={"epochs": 7, "batch_size": 16, "early_stopping": {"patience": 2, "min_delta": 0.5,
                  "enabled": False, "restore_best_weights": False}},
        search={"seed": 3}, preprocessing={"target_scaling": "standard"}, model={"optimizer": "adam"},
    ))  # fmt: skip
    expected = {"epochs": 7, "batch_size": 16, "early_stopping": False, "patience": 2, "min_delta": 0.5,
                "restore_best_weights": False, "validation_fraction": None, "random_state": 3,
                "optimizer": "adam"}  # fmt: skip
    # target_scaling is decided on the training targets (PreparedData), which the maker passes on.
    for decided in (True, False):
        data = SimpleNamespace(standardize_target=decided, inputs=None)
        assert EstimatorMaker.for_study(cfg, "regression", data).base_params == {**expected,
                                                                                "standardize_target": decided}
    assert EstimatorMaker.for_study(cfg, "binary", SimpleNamespace(inputs=None)).base_params == expected


def test_doc_blocks_are_the_table():
    doc = DOC.read_text(encoding="utf-8")
    assert hyperparams.markdown_table() in doc and hyperparams.tunable_line() in doc
    assert hyperparams.own_model_lines() in doc
    assert hyperparams.render_readme(doc) == doc, "run: python -m estimators.common.hyperparams docs/estimators.md"


def test_doc_block_follows_a_changed_table(monkeypatch):
    monkeypatch.setitem(
        HYPERPARAMS, "n_neurons", HyperParam("n_neurons", "int", 64, "units", ge=2, tunable=True)
    )
    doc = DOC.read_text(encoding="utf-8")
    assert hyperparams.render_readme(doc) != doc
    assert "| `n_neurons` | 64 | int >= 2 | `space` | units |" in hyperparams.render_readme(doc)


HYPOTHETICAL = """\
import json
from estimators.common import hyperparams
from estimators.common.hyperparams import HYPERPARAMS, HyperParam

# the only change: one row of the table, before the study schema is built
HYPERPARAMS["width_multiplier"] = HyperParam(
    "width_multiplier", "float", 1.0, "scales every hidden layer", gt=0, le=4, tunable=True, model=True,
    aliases=("width",),
)
HYPERPARAMS["funnel"] = HyperParam("funnel", "bool", False, "halve each next layer", tunable=True, model=True)
from tuning.config.schema import StudyConfigError, load_study_dict

def study(**sections):
    return {"name": "t", "dataset": {"source": "diabetes"},
            "space": {"epochs": {"type": "int", "low": 1, "high": 2}}, **sections}

def errors(data):
    try:
        load_study_dict(data)
    except StudyConfigError as exc:
        return str(exc)
    return None

tuned = load_study_dict(study(space={"width_multiplier": {"type": "float", "low": 0.5, "high": 4}}))
fixed = load_study_dict(study(model={"width_multiplier": 2}))
try:
    hyperparams.check_params({"width_multiplier": 5})
    estimator_error = None
except ValueError as exc:
    estimator_error = str(exc)
print(json.dumps({
    "space": tuned.space["width_multiplier"].model_dump(),
    "model": fixed.model.fixed_params(),
    "space_too_high": errors(study(space={"width_multiplier": {"type": "float", "low": 0.5, "high": 5}})),
    "space_type": errors(study(space={"width_multiplier": {"type": "categorical", "choices": ["wide"]}})),
    "model_zero": errors(study(model={"width_multiplier": 0})),
    "both": errors(study(space={"width_multiplier": {"type": "float", "low": 1, "high": 2}},
                         model={"width_multiplier": 2})),
    "alias": errors(study(space={"width": {"type": "float", "low": 1, "high": 2}})),
    "estimator": estimator_error,
    "switch": load_study_dict(study(model={"funnel": True})).model.fixed_params(),
    "switch_tuned": load_study_dict(study(space={"funnel": {"type": "categorical", "choices": [True, False]}}))
                    .space["funnel"].choices,
    "switch_type": errors(study(space={"funnel": {"type": "int", "low": 0, "high": 1}})),
    "readme": hyperparams.markdown_table(),
}))
"""


def test_a_hypothetical_hyperparameter_added_to_the_table_alone(tmp_path):
    script = tmp_path / "hypothetical.py"
    script.write_text(textwrap.dedent(HYPOTHETICAL))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["space"] == {"type": "float", "low": 0.5, "high": 4.0, "log": False, "step": None}
    assert out["model"] == {"width_multiplier": 2.0}
    assert "space.width_multiplier.high: width_multiplier: must be <= 4, got 5.0" in out["space_too_high"]
    assert (
        "space.width_multiplier.choices.0: width_multiplier: expected a number, got 'wide'"
        in out["space_type"]
    )
    assert "model.width_multiplier: Input should be greater than 0 (got 0)" in out["model_zero"]
    assert "'width_multiplier' is both fixed in model and tuned in space; keep one" in out["both"]
    assert "unknown hyperparameter 'width'; tunable: " in out["alias"]
    assert "width_multiplier" in out["alias"] and "did you mean 'width_multiplier'?" in out["alias"]
    assert out["estimator"] == "width_multiplier must be in (0, 4], got 5"
    assert out["switch"] == {"funnel": True} and out["switch_tuned"] == [True, False]
    assert "space.funnel.type: funnel must use type categorical" in out["switch_type"]
    assert (
        "| `width_multiplier` | 1.0 | float in (0, 4] | `space`, `model` | scales every hidden layer |"
        in out["readme"]
    )


@pytest.mark.parametrize("cls_name, kind", [("KerasModelRegressor", "regressor"), ("KerasModelClassifier", "classifier")])
def test_the_own_model_estimators_take_the_tables_training_settings(cls_name, kind):
    """``build``, then the training settings of the table with its defaults (keyword-only), then ``**params``
    (the factory's arguments and the compile settings); their docstrings list both groups from the table."""
    import estimators

    cls = getattr(estimators, cls_name)
    params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    assert params[0].name == "build" and params[-1].kind is inspect.Parameter.VAR_KEYWORD
    table = hyperparams.training_knobs(kind)
    assert {p.name: p.default for p in params[1:-1]} == {p.name: p.default for p in table}
    assert [p.name for p in params[1:-1]] == [p.name for p in table]
    assert all(f"{p.name} : " in cls.__doc__ for p in [*table, *hyperparams.compile_knobs()])
