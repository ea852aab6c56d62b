"""Conditional spaces (``per`` / ``when``) and KerasTuner hypermodels (``build(hp)``): what is drawn when,
by both backends; what the estimator, MLflow and the report get; the checks at load.

Factories written by a test go to files with names of their own (a module name is imported once per process)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from tests.helpers import no_pictures, study_config, study_dict
from tests.resume_helpers import mlflow_runs
from tuning.cli.run import main
from tuning.report import html as report_html

REPO = Path(__file__).resolve().parents[1]
KERAS_TUNER = f"{REPO / 'studies' / 'models' / 'hypermodel.py'}:build_model"
COND = {
    "n_hidden": {"type": "int", "low": 0, "high": 3},
    "n_neurons": {"type": "int", "low": 4, "high": 64, "log": True, "per": "n_hidden"},
    "use_dropout": {"type": "categorical", "choices": [False, True]},
    "dropout": {"type": "float", "low": 0.05, "high": 0.5, "when": "use_dropout"},
}
OWN = """
import keras

def build_model(n_hidden=1, n_neurons=(8,), use_dropout=False, dropout=0.0, input_shape=(3,)):
    assert len(n_neurons) == n_hidden, (n_hidden, n_neurons)
    assert use_dropout or dropout == 0.0, dropout  # an inactive dropout keeps the factory's default
    model = keras.Sequential([keras.Input(shape=input_shape)])
    for width in n_neurons:
        model.add(keras.layers.Dense(width, activation="relu"))
        if use_dropout:
            model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(1))
    return model
"""




def doc_space() -> dict:
    """The space of the documented example of a conditional space (docs/study-file.md: the first YAML block
    of its section)."""
    section = (REPO / "docs" / "study-file.md").read_text().split("\n## Conditional spaces", 1)[1]
    return yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])["space"]


@pytest.fixture(autouse=True)
def _fast(monkeypatch):

    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)


def own_factory(tmp_path: Path, name: str, body: str = OWN) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    return f"{tmp_path / name}.py:build_model"


def check_conditional(params: dict) -> None:
    """The values a trial of COND holds: n_neurons_1..k for its n_hidden k, dropout only with use_dropout."""
    k = params["n_hidden"]
    assert sorted(n for n in params if n.startswith("n_neurons_")) == [f"n_neurons_{i}" for i in range(1, k + 1)]
    assert ("dropout" in params) == bool(params["use_dropout"]), params


# ---- drawing ---------------------------------------------------------------------------------------------


def test_optuna_draws_per_lists_and_when_entries_only_where_active(tmp_path):
    from tuning.search.space import estimator_params, suggest

    config = study_config(tmp_path, model={"build": own_factory(tmp_path, "c_draw")}, space=COND)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, config.space)
        assert params == trial.params
        check_conditional(params)
        args = estimator_params(config, params)
        assert len(args["n_neurons"]) == params["n_hidden"] and "n_neurons_1" not in args
        seen.add((params["n_hidden"], params["use_dropout"]))
        study.tell(trial, 0.0)
    assert len(seen) >= 6  # both branches and several lengths were drawn


def test_random_candidates_are_seeded_define_by_run_and_flat_spaces_unchanged(tmp_path):
    from tuning.search.space import to_distributions, to_python
    from tuning.search.store.candidates import candidates, draw_one

    config = study_config(tmp_path, model={"build": own_factory(tmp_path, "c_random")}, space=COND)
    drawn = candidates(config, 20)
    assert drawn == candidates(config, 20) and drawn[:5] == candidates(config, 5)  # seeded; a prefix grows
    for params in drawn:
        check_conditional(params)
    assert len({p["n_hidden"] for p in drawn}) > 1 and len({p["use_dropout"] for p in drawn}) == 2
    assert len({repr(sorted(p.items())) for p in drawn}) == len(drawn)  # a repeated draw is drawn again
    flat = study_config(tmp_path)  # no per / when: the same per-candidate draws, all values active
    seed, dists = flat.search.seed, to_distributions(flat.space)
    expected = [draw_one(dists, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))) for i in range(6)]
    assert candidates(flat, 6) == [to_python(p) for p in expected]


def test_hp_conditional_scope_values_appear_only_where_the_parent_has_the_value():
    from estimators.own_model.keras_tuner_hp import HyperParameters, optuna_suggester

    def hypermodel(hp):
        hp.Choice("kind", ["linear", "mlp"])
        with hp.conditional_scope("kind", "mlp"):
            layers = hp.Int("layers", 1, 3)
            for i in range(layers or 0):
                hp.Int(f"units_{i}", 8, 64, step=8)
        hp.Float("rate", 0.1, 0.5, parent_name="kind", parent_values=["linear"])
        hp.Fixed("seed", 7)
        return hp.Float("lr", 1e-4, 1e-2, sampling="log")

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    kinds = set()
    for _ in range(20):
        trial = study.ask()
        hp = HyperParameters(suggest=optuna_suggester(trial))
        hypermodel(hp)
        params = trial.params
        assert params == hp.drawn and hp.values["seed"] == 7 and "seed" not in params
        kinds.add(params["kind"])
        if params["kind"] == "mlp":
            assert "rate" not in params and params["layers"] >= 1
            assert {n for n in params if n.startswith("units_")} == {f"units_{i}" for i in range(params["layers"])}
        else:
            assert params.keys() == {"kind", "rate", "lr"}, params
        study.tell(trial, 0.0)
    assert kinds == {"linear", "mlp"}
    replay = HyperParameters(values={"kind": "mlp", "layers": 2, "units_0": 16, "units_1": 24, "lr": 1e-3})
    assert hypermodel(replay) == 1e-3 and replay.get("units_1") == 24
    assert "rate" not in replay.values and replay.get("layers") == 2
    defaults = HyperParameters()
    assert defaults.Int("a", 2, 9) == 2 and defaults.Choice("b", ["x", "y"]) == "x" and defaults.Boolean("c") is False
    assert defaults.Float("d", 0.5, 1.0, default=0.7) == 0.7 and defaults.Int("a", 2, 9) == 2
    with pytest.raises(KeyError):
        defaults.get("nothing")
    assert HyperParameters(suggest=lambda kind, name, **s: s["choices"][-1]).Int("u", 32, 512, step=2,
                                                                                sampling="log") == 512


def test_the_space_digest_covers_per_and_when_and_keeps_plain_spaces_digests(tmp_path):
    import hashlib
    import json

    from tuning.config.schema import space_digest

    plain = study_config(tmp_path)
    old = {n: plain.space[n].model_dump(mode="json", exclude={"per", "when"}) for n in sorted(plain.space)}
    assert space_digest(plain) == hashlib.sha256(json.dumps(old, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    space = {"n_hidden": {"type": "int", "low": 1, "high": 3}, "n_neurons": {"type": "int", "low": 4, "high": 64}}
    flat = study_config(tmp_path, space=space)
    per = study_config(tmp_path, space={**space, "n_neurons": {**space["n_neurons"], "per": "n_hidden"}})
    assert space_digest(flat) != space_digest(per)


# ---- the MLP with a list of widths -----------------------------------------------------------------------


def test_the_mlp_takes_one_width_per_layer_and_refuses_a_list_of_the_wrong_length():
    from estimators import KerasMLPRegressor, build_model

    model = build_model(n_hidden=3, n_neurons=[16, 8, 4], n_features=3)
    assert [layer.units for layer in model.layers if hasattr(layer, "units")] == [16, 8, 4, 1]
    rng = np.random.RandomState(0)
    X, y = rng.rand(30, 3), rng.rand(30)
    fitted = KerasMLPRegressor(n_hidden=2, n_neurons=[6, 3], epochs=1, random_state=0).fit(X, y)
    keras_out = fitted.model_.predict(X.astype(np.float32), verbose=0).ravel()
    np.testing.assert_allclose(fitted.predict(X), keras_out * 1.0, rtol=1e-4, atol=1e-4)  # the NumPy pass
    with pytest.raises(ValueError, match="n_neurons has 3 values .* but n_hidden is 2"):
        KerasMLPRegressor(n_hidden=2, n_neurons=[4, 4, 4], epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="n_neurons must be an integer >= 1 or a list"):
        KerasMLPRegressor(n_hidden=2, n_neurons=[4, 0], epochs=1).fit(X, y)


# ---- checks at load ---------------------------------------------------------------------------------------

BAD = {  # name -> (model, space, search, key, message)
    "when names no key": ({"build": "OWN"}, {**COND, "dropout": {**COND["dropout"], "when": "use_dropot"}}, {},
                          "space.dropout.when", "did you mean 'use_dropout'"),
    "per on a float": ({"build": "OWN"}, {**COND, "n_neurons": {**COND["n_neurons"], "per": "dropout"}}, {},
                       "space.n_neurons.per", "must be an int parameter"),
    "cycle": ({"build": "OWN"}, {**COND, "use_dropout": {**COND["use_dropout"], "when": "dropout"}}, {},
              "space.use_dropout.when", "cycle"),
    "mlp per on another knob": ({"optimizer": "adam"}, {"n_hidden": COND["n_hidden"], "learning_rate": {
        "type": "float", "low": 1e-3, "high": 1e-2, "per": "n_hidden"}}, {}, "space.learning_rate.per",
        "only for n_neurons"),
    "grid with per": ({"optimizer": "adam"}, {"n_hidden": COND["n_hidden"], "n_neurons": {
        "type": "int", "low": 4, "high": 8, "per": "n_hidden"}}, {"sampler": "grid"}, "search.sampler",
        "conditional"),
    "hp factory with a space": ({"build": KERAS_TUNER}, {"n_hidden": COND["n_hidden"]}, {}, "space",
                                "leave space: out"),
    # a key that is no argument of our MLP and gates nothing: a typo, not a flag
    "mlp key gating nothing": ({"optimizer": "adam"}, {**COND, "use_dropuot": COND["use_dropout"]}, {},
                               "space.use_dropuot", "unknown hyperparameter 'use_dropuot'"),
    "factory key gating nothing": ({"build": "OWN"}, {**COND, "use_dropuot": COND["use_dropout"]}, {},
                                   "space.use_dropuot", "'use_dropuot' is not an argument of"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_conditional_space_exits_2_naming_key_and_line(tmp_path, capsys, case):
    model, space, search, key, message = BAD[case]
    if model.get("build") == "OWN":
        model = {"build": own_factory(tmp_path, "c_bad_" + case.replace(" ", "_"))}
    data = study_dict(tmp_path, model=model, space=space, search=search)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main([str(path), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    lines = path.read_text().splitlines()
    *parents, last = key.split(".")
    start = 0
    for part in parents:
        start = next(i for i in range(start, len(lines)) if lines[i].strip().startswith(f"{part}:"))
    line = next(i for i in range(start, len(lines)) if lines[i].strip().startswith(f"{last}:")) + 1
    assert f"{key} (line {line})" in err, err
    assert message in err and "Traceback" not in err, err


# ---- flags: keys that only gate others -------------------------------------------------------------------


def test_a_flag_is_drawn_but_reaches_the_model_only_where_it_takes_it(tmp_path):
    from tuning.search.space import estimator_params

    drawn = {"n_hidden": 1, "n_neurons_1": 16, "use_dropout": True, "dropout": 0.2}
    mlp = study_config(tmp_path, space=doc_space())  # our MLP has no use_dropout argument
    assert mlp.space_flags() == {"use_dropout"}
    assert estimator_params(mlp, drawn) == {"n_hidden": 1, "n_neurons": [16], "dropout": 0.2}
    takes = study_config(tmp_path, model={"build": own_factory(tmp_path, "c_flag_takes")}, space=COND)
    assert takes.space_flags() == set() and estimator_params(takes, drawn)["use_dropout"] is True
    without = OWN.replace("use_dropout=False, ", "").replace("use_dropout or ", "True or ").replace(
        "if use_dropout:", "if dropout:")
    other = study_config(tmp_path, model={"build": own_factory(tmp_path, "c_flag_not_taken", without)}, space=COND)
    assert other.space_flags() == {"use_dropout"} and "use_dropout" not in estimator_params(other, drawn)


@pytest.mark.parametrize("backend", ["optuna", "random"])
def test_the_documented_example_runs_with_our_mlp_its_flag_logged_and_gating_dropout(tmp_path, capsys, monkeypatch,
                                                                               backend):
    from estimators import KerasMLPRegressor
    from tuning.search.trial.runner import TrialRunner

    built = []  # (the trial's values, the dropout of the estimator built from them)
    make_estimator = TrialRunner.make_estimator

    def spy(self, params, portable=False):
        estimator = make_estimator(self, params, portable)
        built.append((dict(params), estimator.get_params()["dropout"]))
        return estimator

    monkeypatch.setattr(TrialRunner, "make_estimator", spy)
    path = tmp_path / "study.yaml"
    data = study_dict(tmp_path, space=doc_space(), search={"backend": backend, "n_trials": 6},
                      training={"epochs": 1})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main([str(path), "--quiet"]) == 0, capsys.readouterr().err[-3000:]
    runs = [{k: yaml.safe_load(v) for k, v in params.items()} for params in trial_params(tmp_path)]
    assert len(runs) == 6 and {params["use_dropout"] for params in runs} == {False, True}
    for params in runs:
        check_conditional(params)
    default = KerasMLPRegressor().get_params()["dropout"]
    trials = [(params, dropout) for params, dropout in built if "use_dropout" in params]
    assert {params["use_dropout"] for params, _ in trials} == {False, True}
    for params, dropout in trials:
        assert dropout == (params["dropout"] if params["use_dropout"] else default), params
    assert "use_dropout" in (tmp_path / "out" / "report" / "report.html").read_text()  # the trials table


# ---- studies end to end: MLflow holds the active values only ------------------------------------------------


def trial_params(tmp_path: Path, name: str = "tiny") -> list[dict]:
    data = study_dict(tmp_path)
    _, trials = mlflow_runs(data["mlflow"]["tracking_uri"], name)
    return [dict(run.data.params) for run in trials]


@pytest.mark.parametrize("backend", ["optuna", "random"])
def test_a_conditional_study_logs_only_active_values(tmp_path, capsys, backend):
    path = tmp_path / "study.yaml"
    model = {"build": own_factory(tmp_path, f"c_study_{backend}"), "optimizer": "adam"}
    data = study_dict(tmp_path, model=model, space=COND, search={"backend": backend, "n_trials": 4},
                      training={"epochs": 1})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main([str(path), "--quiet"]) == 0, capsys.readouterr().err[-3000:]
    runs = trial_params(tmp_path)
    assert len(runs) == 4
    for params in runs:
        check_conditional({k: yaml.safe_load(v) for k, v in params.items()})


@pytest.mark.parametrize("backend", ["optuna", "random"])
def test_the_keras_tuner_hypermodel_runs_as_is_and_logs_only_drawn_values(tmp_path, capsys, backend):
    from tuning.export import load_model

    # random: with a --workers helper and the ensemble's members retrained in joblib's processes (the factory
    # reaches both by its path), then resumed with a larger budget (the study has no space: section)
    more = {"workers": 2} if backend == "random" else {}
    data = study_dict(tmp_path, dataset={"source": "digits", "test_size": 0.2, "valid_size": 0.25, "seed": 0,
                                         "max_rows": 240},
                      search={"backend": backend, "n_trials": 3, **more}, training={"epochs": 1})
    if backend == "random":
        data["export"].update(ensemble={"method": "top_k", "size": 2}, train_on="train+valid")
    data["model"] = {"build": KERAS_TUNER}
    data.pop("space")
    data.pop("preprocessing")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main([str(path), "--quiet"]) == 0, capsys.readouterr().err[-3000:]
    if backend == "random":
        assert main([str(path), "--quiet", "--n-trials", "4"]) == 0, capsys.readouterr().err[-3000:]
    runs = [{k: yaml.safe_load(v) for k, v in p.items()} for p in trial_params(tmp_path)]
    assert len(runs) == (4 if backend == "random" else 3)
    for params in runs:
        assert {f"units_{i}" for i in range(params["num_layers"])} == {k for k in params if k.startswith("units_")}
        assert ("dropout_rate" in params) == params["dropout"], params
        assert {"activation", "lr"} <= params.keys()
    from sklearn.datasets import load_digits

    X = load_digits(as_frame=True).data.head(4)
    model = load_model(tmp_path / "out")
    assert model.predict(X).shape == (4,)
    estimator = model[-1] if hasattr(model, "steps") else model
    estimator = estimator.estimators_[0] if hasattr(estimator, "estimators_") else estimator  # an ensemble's member
    estimator = getattr(estimator, "estimator", estimator)  # a frozen member
    assert estimator.hp_values and set(estimator.hp_values) <= {k for p in runs for k in p}  # to clone or refit
