"""The table recipe: what a study of our network on a table gets for the keys its file leaves out, sized by
the loaded rows, printed, stored for re-runs and resumes, and never over a key the file sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient

from tests.helpers import no_pictures, tracking_uri
from tuning.cli.run import main
from tuning.config import recipe
from tuning.config.schema import DEFAULT_SPACE, load_study_dict
from tuning.export.files import load_model
from tuning.report import html as report_html

FACTS = recipe.TableFacts(rows=600, columns=8, task="regression")


def _config(source: str = "diabetes", **sections):
    return load_study_dict({"name": "t", "dataset": {"source": source}, **sections})


def test_sizing_follows_the_rows():
    small, housing, big = recipe.sizing(200), recipe.sizing(11_610), recipe.sizing(200_000)
    assert housing["batch_size"] == 512 and small["batch_size"] == 32 and big["batch_size"] == 1024
    # about 2,500 steps a trial: few rows get more epochs of few steps, and more (cheap) trials
    assert small["epochs"] > housing["epochs"] >= 100 and small["epochs"] <= 200
    assert small["n_trials"] > housing["n_trials"] > big["n_trials"]
    assert 8 <= housing["patience"] <= small["patience"] <= 20


def test_a_minimal_study_gets_the_whole_recipe():
    config, added = recipe.with_recipe(_config(), FACTS, cores=2)
    size = recipe.sizing(FACTS.rows)
    assert set(config.space) == {"n_hidden", "n_neurons", "learning_rate", "frequency_scale", "dropout"}
    assert config.model.fixed_params() == {"optimizer": "adam", "lr_schedule": "plateau", "numeric_embedding": "periodic"}
    assert config.preprocessing.scaling == "quantile" and config.search.workers == 2
    assert (config.search.n_trials, config.training.epochs, config.training.batch_size,
            config.training.early_stopping.patience) == (size["n_trials"], size["epochs"], size["batch_size"],
                                                         size["patience"])
    assert config.export.ensemble.size == 10 and config.export.train_on == "train+valid"
    assert "space" in added and "search.n_trials" in added and "export.train_on" in added
    assert "export.ensemble" in added  # one setting, like space
    # filled keys count as the file's own: applying it again adds nothing (a worker reads the dump)
    assert recipe.with_recipe(config, FACTS, cores=2) == (config, [])
    dumped = load_study_dict(config.model_dump(mode="json", exclude_unset=True))
    assert recipe.with_recipe(dumped, FACTS, cores=2) == (dumped, []) and dumped == config


def test_keys_the_file_sets_are_kept():
    own_space = {"n_neurons": {"type": "int", "low": 4, "high": 8}}
    config, added = recipe.with_recipe(_config(
        space=own_space, search={"n_trials": 5, "workers": 1}, training={"batch_size": 7},
        model={"optimizer": "sgd"}, export={"ensemble": {"size": 0}}), FACTS, cores=2)
    assert list(config.space) == ["n_neurons"] and config.space["n_neurons"].high == 8  # never mixed
    assert (config.search.n_trials, config.search.workers, config.training.batch_size) == (5, 1, 7)
    assert config.model.optimizer == "sgd" and config.model.lr_schedule == "plateau"
    assert config.export.ensemble.size == 0 and config.export.train_on == "train+valid"
    assert not {"space", "search.n_trials", "training.batch_size", "model.optimizer"} & set(added)


def test_an_ensemble_of_the_file_is_never_mixed_with_the_recipes():
    config, added = recipe.with_recipe(_config(export={"ensemble": {"method": "top_k", "size": 2}}), FACTS)
    assert config.export.ensemble.model_dump() == {"method": "top_k", "size": 2, "candidates": 10}
    assert not [key for key in added if key.startswith("export.ensemble")]


def test_the_recipe_space_leaves_out_what_the_file_fixes():
    config, _ = recipe.with_recipe(_config(model={"dropout": 0.1, "numeric_embedding": "none"}), FACTS)
    assert set(config.space) == {"n_hidden", "n_neurons", "learning_rate"}  # no dropout, no frequency_scale
    wide, _ = recipe.with_recipe(_config("digits"), recipe.TableFacts(600, 784, "multiclass"))
    assert wide.model.numeric_embedding == "none" and "frequency_scale" not in wide.space
    assert wide.search.metric == "log_loss"
    own_metric = _config("breast_cancer", search={"metric": "accuracy"})
    assert recipe.with_recipe(own_metric, recipe.TableFacts(400, 30, "binary"))[0].search.metric == "accuracy"


def test_stacked_trials_get_the_whole_recipe_embedding_included():
    config, _ = recipe.with_recipe(_config(search={"stack": 4}), FACTS)
    assert config.search.stack == 4 and config.model.numeric_embedding == "periodic"
    assert "frequency_scale" in config.space and config.model.optimizer == "adam" and config.export.ensemble.size


def test_k_fold_studies_get_no_ensemble_and_plain_or_own_models_no_recipe():
    folds, _ = recipe.with_recipe(_config(search={"cv": 3}), FACTS)
    assert folds.export.ensemble.size == 0 and folds.export.train_on == "train"
    plain = _config(recipe="plain")
    assert recipe.with_recipe(plain, FACTS) == (plain, []) and set(plain.space) == set(DEFAULT_SPACE)
    own = load_study_dict({"name": "t", "dataset": {"source": "diabetes"},
                           "model": {"build": f"{Path(__file__).parent / 'factories.py'}:small_network"}})
    assert not recipe.applies(own) and recipe.with_recipe(own, FACTS) == (own, [])


def test_without_facts_only_the_data_free_part_is_filled():
    config, added = recipe.with_recipe(_config(), None, cores=1)
    assert config.search.workers == 1 and config.model.optimizer == "adam" and config.export.ensemble.size == 10
    assert "space" not in added and "search.n_trials" not in added


def _cells(table: str) -> str:
    """A rich table's text, its borders out and its wrapped cells joined (words in order)."""
    return " ".join(re.sub(r"[│┃┌┐└┘├┤┬┴┼─]", " ", table).split())


def _table(tmp_path, rows=90):
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    frame = pd.DataFrame({"x": x, "kind": rng.choice(["a", "b", "c"], size=rows),
                          "price": 3 * x + rng.normal(0, 0.1, size=rows)})
    frame.loc[5, "x"] = np.nan
    frame.to_csv(tmp_path / "table.csv", index=False)
    return frame


def test_a_minimal_study_runs_the_recipe_prints_it_and_a_rerun_finds_it_finished(tmp_path, capsys, monkeypatch):
    frame = _table(tmp_path)
    path = tmp_path / "minimal.yaml"
    # only name and dataset, and a short budget (a key the file sets stays the file's)
    path.write_text(yaml.safe_dump({"name": "minimal", "dataset": {"source": "csv", "path": "table.csv",
                                                                   "target": "price"},
                                    "training": {"epochs": 3}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)
    uri = tracking_uri(tmp_path)
    assert main([str(path), "--dry-run"]) == 0
    assert "sized from the rows once they load" in _cells(capsys.readouterr().out)
    assert main([str(path), "--n-trials", "2", "--tracking-uri", uri]) == 0
    err = " ".join(capsys.readouterr().err.split())
    out_dir = tmp_path / "exports" / "minimal"
    facts = json.loads((out_dir / "recipe.json").read_text())
    size = recipe.sizing(facts["rows"])
    assert facts == {"rows": 50, "columns": 2, "task": "regression"}  # 90 rows: a quarter for test, a quarter of the rest for validation
    assert "task: regression (inferred from the target 'price'" in err and "set dataset.task" in err
    assert "recipe for a table of 50 training rows x 2 columns" in err and "recipe: plain" in err
    assert f"training.batch_size {size['batch_size']}" in err and "training.epochs" not in err  # the file's
    assert "search.n_trials" not in err  # --n-trials set it
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("minimal").experiment_id
    parent = client.search_runs([experiment], "tags.`tuning.role` = 'study'")[0]
    params = parent.data.params
    assert params["model.numeric_embedding"] == "periodic" and params["export.train_on"] == "train+valid"
    assert params["training.batch_size"] == str(size["batch_size"]) and params["training.epochs"] == "3"
    assert params["search.workers"] == str(min(2, recipe._cores()))
    trials = client.search_runs([experiment], "tags.`tuning.role` = 'trial'")
    assert len(trials) == 2 and all("dropout" in run.data.params for run in trials)  # the recipe's space
    assert np.isfinite(load_model(out_dir).predict(frame.head(4))).all()
    # a re-run reads the stored sizing before loading the data: the same study, finished, nothing trained
    assert main([str(path), "--n-trials", "2", "--tracking-uri", uri]) == 0
    assert "already complete" in " ".join(capsys.readouterr().err.split())
    # the dry run now shows the sized space
    assert main([str(path), "--dry-run"]) == 0
    shown = _cells(capsys.readouterr().out)
    assert "frequency_scale" in shown and "sized from the rows" not in shown


def test_a_misspelled_recipe_is_refused_with_the_key(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndataset: {source: diabetes}\nrecipe: strong\n")
    assert main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "recipe" in err and "tables" in err and "Traceback" not in err
