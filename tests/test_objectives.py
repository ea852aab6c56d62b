"""Several objectives (``search.objectives``): one tiny study of four objectives (mse, latency_ms, n_params,
model_bytes), run once for the module, read back from its Optuna store, MLflow, the export and the report;
each number is recomputed here, not taken from the code under test. Then the study-file errors."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from rich.console import Console

from tests.helpers import study_config
from tuning.errors import StudyConfigError, StudyError
from tuning.records import COMPLETE, TrialRecord, pareto_front
from tuning.search.store.objectives import MedianRule
from tuning.search.store.storage import storage_url
from tuning.tracking import runlayout as layout

OBJECTIVES = ["mse", {"latency_ms": "minimize"}, "n_params", "model_bytes"]
BOUND = 300  # export.choose: the best mse among the front's trials of at most this many parameters
N_TRIALS = 10


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from tuning.study import run_study

    tmp = tmp_path_factory.mktemp("objectives")
    config = study_config(
        tmp,
        # random sampler: the parameters do not depend on the (noisy) latencies, so the trials, their mse
        # and what the rule prunes are the same on every run
        search={"n_trials": N_TRIALS, "seed": 0, "pruner": "median", "sampler": "random", "objectives": OBJECTIVES},
        space={"n_hidden": {"type": "int", "low": 0, "high": 2},
               "n_neurons": {"type": "int", "low": 2, "high": 64, "log": True},
               "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}},
        training={"epochs": 6, "batch_size": 64, "early_stopping": {"patience": 3}},
        export={"choose": {"best": "mse", "where": {"n_params": f"<= {BOUND}"}}},
    )
    result = run_study(config, quiet=True)
    trials = optuna.load_study(study_name=config.name, storage=storage_url(config.export_dir)).get_trials()
    best = json.loads((config.export_dir / "best_params.json").read_text())
    return config, result, trials, best


def objective_values(trial: optuna.trial.FrozenTrial) -> list[float]:
    return list(trial.values)


def my_front(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Non-dominated complete trials, brute force (every objective minimised)."""
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    front = set()
    for t in done:
        a = np.array(t.values)
        if not any(np.all(np.array(o.values) <= a) and np.any(np.array(o.values) < a) for o in done):
            front.add(t.number)
    return front


def test_the_study_is_one_multi_objective_optuna_study(study):
    config, result, trials, _ = study
    stored = optuna.load_study(study_name=config.name, storage=storage_url(config.export_dir))
    assert [d.name.lower() for d in stored.directions] == ["minimize"] * 4
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 3 and len(trials) == N_TRIALS
    by_number = {r.number: r for r in result.records}
    for trial in complete:
        record = by_number[trial.number]
        assert trial.values == [record.value, record.measures["latency_ms"], record.measures["n_params"],
                                record.measures["model_bytes"]]
        assert trial.user_attrs["measures"]["latency_ms_b256"] > 0


def test_the_front_is_the_non_dominated_trials(study):
    config, result, trials, best = study
    expected = my_front(trials)
    assert set(best["choice"]["front"]) == expected
    assert {r.number for r in result.front} == expected
    stored = optuna.load_study(study_name=config.name, storage=storage_url(config.export_dir))
    assert {t.number for t in stored.best_trials} == expected  # Optuna agrees


def test_pruning_happened_on_the_first_objective(study):
    """Every pruned trial broke the median rule on mse after the epoch it stopped at, against the trials
    complete before it; its value is its last mse, its other objectives were never measured."""
    _, result, trials, _ = study
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the study pruned nothing"
    by_number = {r.number: r for r in result.records}
    for trial in pruned:
        epochs = trial.user_attrs["epoch_values"]
        assert trial.user_attrs["value"] == epochs[-1] == by_number[trial.number].value
        assert by_number[trial.number].measures == {}
        earlier = [t.user_attrs["epoch_values"] for t in trials
                   if t.state == optuna.trial.TrialState.COMPLETE and t.number < trial.number]
        step = len(epochs)
        at_step = [values[step - 1] for values in earlier if len(values) >= step]
        assert len(earlier) >= 5 and min(epochs) > np.median(at_step)


def test_the_export_is_the_chosen_point_under_the_bound(study):
    config, result, trials, best = study
    complete = {t.number: t for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
    feasible = [complete[n] for n in my_front(trials) if complete[n].values[2] <= BOUND]
    assert feasible, "no trial of the front meets the bound: choose another BOUND"
    expected = min(feasible, key=lambda t: (t.values[0], t.number))
    assert best["trial"] == expected.number == result.best.number
    assert best["choice"]["met"] is True and best["choice"]["where"] == {"n_params": f"<= {BOUND}"}
    assert best["objectives"]["mse"] == expected.values[0] == best["valid_mse"]
    assert best["objectives"]["n_params"] == expected.values[2] <= BOUND
    assert best["params"] == expected.params


def test_n_params_and_model_bytes_of_the_loaded_export(study):
    from tuning.export.files import PIPELINE_FILE, load_model

    config, _, _, best = study
    pipeline = load_model(config.export_dir)
    assert pipeline.named_steps["model"].model_.count_params() == best["objectives"]["n_params"]
    size = (config.export_dir / PIPELINE_FILE).stat().st_size  # the same network, saved by the export
    assert abs(size - best["objectives"]["model_bytes"]) / size < 0.05


def test_mlflow_holds_the_measures_and_the_front(study):
    config, result, trials, best = study
    client = MlflowClient(config.mlflow.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    front = my_front(trials)
    assert parent.data.tags[layout.PARETO_SIZE] == str(len(front))
    assert parent.data.tags[layout.PARETO_CHOICE] == f"best mse where n_params <= {BOUND}"
    assert parent.data.tags[layout.BEST_TRIAL] == str(best["trial"])
    assert parent.data.metrics["best_n_params"] == best["objectives"]["n_params"]
    runs = client.search_runs([parent.info.experiment_id], layout.children_filter(result.parent_run_id))
    assert len(runs) == N_TRIALS
    stored = {t.number: t for t in trials}
    for run in runs:
        number, metrics = layout.trial_number(run), run.data.metrics
        if run.data.tags[layout.TRIAL_STATE] == COMPLETE:
            assert run.data.tags[layout.PARETO] == ("true" if number in front else "false")
            assert [metrics["objective_mse"], metrics["latency_ms"], metrics["n_params"],
                    metrics["model_bytes"]] == stored[number].values
            assert 0 < metrics["latency_ms_b256"] < metrics["latency_ms"]  # a batch costs less a row
        else:
            assert layout.PARETO not in run.data.tags and "latency_ms" not in metrics
            assert metrics["objective_mse"] == stored[number].user_attrs["value"]


def test_the_report_draws_and_logs_the_front(study):
    config, result, trials, best = study
    report = config.export_dir / "report"
    assert (report / "pareto_front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((report / "data.json").read_text())["pareto_front"]["data"]
    assert set(data["front"]) == my_front(trials) and data["chosen"] == best["trial"]
    assert data["where"] == {"n_params": f"<= {BOUND}"}
    assert "Pareto front" in (report / "report.html").read_text()
    client = MlflowClient(config.mlflow.tracking_uri)
    logged = [f.path for f in client.list_artifacts(result.parent_run_id, "report")]
    assert "report/pareto_front.png" in logged


def test_the_final_table_lists_the_front_and_marks_the_export(study):
    from tuning.tracking.progress import summary_table

    _, result, trials, best = study
    out = io.StringIO()
    Console(file=out, width=150).print(summary_table(result))
    text = out.getvalue()
    assert f"{len(my_front(trials))} trials (mse, latency_ms, n_params, model_bytes)" in text
    assert f"best mse where n_params <= {BOUND}" in text
    for number in my_front(trials):
        mark = " *" if number == best["trial"] else ""
        assert f"trial {number}{mark} " in text


def test_a_resume_with_other_objectives_is_refused(study):
    from tuning.config.schema import load_study_dict
    from tuning.search.schedulers import make_store

    config, _, _, _ = study
    data = config.model_dump(mode="json", exclude_unset=True)
    data["search"]["objectives"] = ["mse", "latency_ms"]
    data["export"].pop("choose")
    store = make_store(load_study_dict(data), config.export_dir)
    try:
        with pytest.raises(StudyError, match="created with the objectives mse .minimize., latency_ms"):
            store.open("minimize", "mse")
    finally:
        store.close()


# ---- the pure parts ---------------------------------------------------------------------------------------


def test_pareto_front_keeps_ties_and_drops_the_dominated():
    def record(number, value, size):
        return TrialRecord(number, {}, state=COMPLETE, value=value, measures={"n_params": size})

    records = [record(0, 1.0, 10), record(1, 2.0, 5), record(2, 2.0, 10), record(3, 1.0, 10), record(4, 0.5, 50)]
    front = pareto_front(records, [("mse", "minimize"), ("n_params", "minimize")])
    assert [r.number for r in front] == [0, 1, 3, 4]
    front = pareto_front(records, [("r2", "maximize"), ("n_params", "minimize")])
    assert [r.number for r in front] == [1]  # 2.0 with 5 parameters beats 2.0 with 10


def test_choose_picks_under_the_bounds_and_falls_back_to_the_front_s_best():
    from tuning.config.sections import ChooseConfig
    from tuning.export.choice import choose

    def record(number, value, latency):
        return TrialRecord(number, {}, state=COMPLETE, value=value, measures={"latency_ms": latency})

    records = [record(0, 0.20, 9.0), record(1, 0.25, 3.0), record(2, 0.22, 5.0), record(3, 0.30, 1.0),
               record(4, 0.26, 4.0)]  # 4 is dominated by 1
    objectives = [("mse", "minimize"), ("latency_ms", "minimize")]
    chosen, info = choose(records, objectives, ChooseConfig(where={"latency_ms": "<= 4"}))
    assert chosen.number == 1 and info["met"] and info["front"] == [0, 1, 2, 3] and "note" not in info
    assert info["objectives"] == {"mse": 0.25, "latency_ms": 3.0}
    chosen, info = choose(records, objectives, ChooseConfig(best="latency_ms", where={"mse": "< 0.25"}))
    assert chosen.number == 2
    chosen, info = choose(records, objectives, None)
    assert chosen.number == 0 and info["best"] == "mse" and info["where"] == {}
    chosen, info = choose(records, objectives, ChooseConfig(where={"latency_ms": "< 0.5"}))
    assert chosen.number == 0 and not info["met"] and "no trial of the Pareto front meets latency_ms < 0.5" in info["note"]
    chosen, info = choose(records, objectives[:1], None)  # one objective: the best trial, no choice
    assert chosen.number == 0 and info is None


def test_the_shipped_latency_study_loads():
    from tuning.config.schema import load_study

    config = load_study(Path(__file__).resolve().parent.parent / "studies" / "housing_latency.yaml")
    assert config.search.objective_list("regression") == [("mse", "minimize"), ("latency_ms", "minimize")]
    assert config.export.choose.where == {"latency_ms": "<= 4.0"} and config.search.workers == 1


def test_median_rule():
    rule = MedianRule("minimize", warmup=2, n_startup=3)
    done = [[5.0, 4.0, 3.0], [6.0, 5.0, 4.0], [7.0, 6.0, 5.0]]
    assert not rule.should_prune(1, [9.0], done)  # before the warm-up
    assert rule.should_prune(2, [9.0, 8.0], done)  # 8 > median 5
    assert not rule.should_prune(2, [4.0, 8.0], done)  # its best so far, 4, beats it
    assert not rule.should_prune(2, [9.0, 8.0], done[:2])  # too few complete trials
    assert MedianRule("maximize", 1, 3).should_prune(1, [5.0], done)  # 5 < median 6


# ---- the study file ---------------------------------------------------------------------------------------

GOOD = """\
name: two
dataset: {source: diabetes}
recipe: plain
search:
  objectives: [mse, {latency_ms: minimize}]
"""


@pytest.mark.parametrize(("changes", "key", "words"), [
    ("search:\n  objectives: [mse, latncy_ms]\n", "search.objectives", "did you mean 'latency_ms'"),
    ("search:\n  objectives: [latency_ms, mse]\n", "search.objectives", "the first objective is the study's metric"),
    ("search:\n  objectives: [mse, {latency_ms: fastest}]\n", "search.objectives", "minimize or maximize"),
    ("search:\n  objectives: [{mse: maximize}, n_params]\n", "search.objectives", "mse is minimized"),
    ("search:\n  objectives: [mse, n_params, n_params]\n", "search.objectives", "more than once"),
    ("search:\n  objectives: [mse, r2]\n", "search.objectives", "only the first objective may be a metric"),
    ("search:\n  objectives: [accuracy, n_params]\n", "search.objectives", "classification metric"),
    ("search:\n  metric: mae\n  objectives: [mse, n_params]\n", "search.objectives", "search.metric is mae"),
    ("search:\n  objectives: [mse, n_params]\n  pruner: hyperband\n", "search.pruner", "use median or none"),
    ("search:\n  objectives: [mse, n_params]\n  sampler: cmaes\n", "search.sampler", "CMA-ES"),
    ("search:\n  objectives: [mse, n_params]\n  stack: 2\n", "search.stack", "stacked trials"),
    ("search:\n  objectives: [mse, n_params]\nexport:\n  ensemble: {size: 3}\n", "export.ensemble.size",
     "not an ensemble"),
    ("export:\n  choose: {where: {latency_ms: '<= 1'}}\n", "export.choose", "several objectives"),
    ("search:\n  objectives: [mse, n_params]\nexport:\n  choose: {where: {latency_ms: '<= 1'}}\n",
     "export.choose.where", "'latency_ms' is none of the study's objectives"),
    ("search:\n  objectives: [mse, n_params]\nexport:\n  choose: {where: {n_params: 1000}}\n",
     "export.choose.where", "'<= 0.5'"),
    ("search:\n  objectives: [mse, n_params]\nexport:\n  choose: {where: {n_params: '=< 9'}}\n",
     "export.choose.where", "a comparison and a number"),
])
def test_study_file_errors_name_the_file_and_key(tmp_path: Path, changes: str, key: str, words: str):
    from tuning.config.schema import load_study

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndataset: {source: diabetes}\nrecipe: plain\n" + changes)
    with pytest.raises(StudyConfigError) as err:
        load_study(path)
    message = str(err.value)
    assert str(path) in message and f"  {key}" in message and words in message, message


def test_a_bad_objective_exits_2_and_a_good_file_loads(tmp_path: Path, capsys):
    from tuning.cli.run import main
    from tuning.config.schema import load_study

    good = tmp_path / "two.yaml"
    good.write_text(GOOD)
    config = load_study(good)
    assert config.search.objective_list("regression") == [("mse", "minimize"), ("latency_ms", "minimize")]
    assert config.search.multi_objective
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("latency_ms", "latency"))
    assert main([str(bad), "--dry-run"]) == 2
    assert "search.objectives" in capsys.readouterr().err


def test_one_objective_is_the_study_of_today(tmp_path: Path):
    """``objectives: [mse]`` is a study of one objective: no measures, Optuna's own pruner."""
    from tuning.config.schema import load_study
    from tuning.search.store.sampling import make_pruner, pruning_steps

    path = tmp_path / "one.yaml"
    path.write_text(textwrap.dedent(GOOD).replace("[mse, {latency_ms: minimize}]", "[mse]"))
    config = load_study(path)
    assert not config.search.multi_objective and config.search.other_objectives() == []
    assert isinstance(make_pruner(config), optuna.pruners.HyperbandPruner) and pruning_steps(config)
