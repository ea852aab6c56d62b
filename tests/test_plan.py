"""One plan, resolved once, before the search (tuning/plan.py): the command reads the study file once and
resolves what earlier runs stored once (the draft it checks, prints and runs), and the data-dependent steps
once; the trial runner is given the parts it uses, not the config."""

from __future__ import annotations

import inspect
from collections import Counter

import pytest

import tuning.config.recipe as recipe
import tuning.config.schema as schema
import tuning.config.studyfile as studyfile
import tuning.plan as plan
import tuning.search.lr_bounds as lr_bounds
from tests.helpers import no_pictures, write_study
from tuning.cli.run import main
from tuning.config.schema import StudyConfig
from tuning.search.trial.runner import TrialRunner, make_runner


@pytest.fixture
def counted(monkeypatch):
    """Calls of each resolving step, by name, through the modules that call them."""
    import tuning.report.html as report_html

    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # slow: test_study
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)
    counts: Counter = Counter()

    def count(module, name: str, key: str) -> None:
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            counts[key] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    count(studyfile, "read_text", "read the study file")
    count(schema, "read_text", "read the study file")
    count(recipe, "with_stored", "stored recipe facts applied")
    count(lr_bounds, "with_stored_bounds", "stored learning-rate bounds applied")
    count(plan, "load_dataset", "data loaded")
    count(recipe, "resolve", "recipe sized on the rows")
    count(lr_bounds, "resolve", "learning-rate bounds resolved")
    return counts


def test_the_command_reads_the_study_once_and_resolves_each_step_once(tmp_path, monkeypatch, counted):
    path = write_study(tmp_path, search={"n_trials": 1}, training={"epochs": 1})
    monkeypatch.chdir(tmp_path)
    assert main([str(path), "--quiet"]) == 0
    assert counted == {"read the study file": 1, "stored recipe facts applied": 1,
                       "stored learning-rate bounds applied": 1, "data loaded": 1, "recipe sized on the rows": 1,
                       "learning-rate bounds resolved": 1}
    counted.clear()
    assert main([str(path), "--quiet", "--dry-run"]) == 0  # the plan printed is the draft, nothing loaded
    assert counted == {"read the study file": 1, "stored recipe facts applied": 1,
                       "stored learning-rate bounds applied": 1}


def test_the_runner_is_given_the_parts_it_uses_not_the_config(tmp_path):
    from tests.helpers import study_config
    from tuning.data.sources import load_dataset

    parameters = inspect.signature(TrialRunner.__init__).parameters
    assert "config" not in parameters and all(p.annotation not in (StudyConfig, "StudyConfig")
                                              for p in parameters.values())
    config = study_config(tmp_path)
    runner = make_runner(config, load_dataset(config.dataset))
    assert not any(isinstance(value, StudyConfig) for value in vars(runner).values())
    assert (runner.settings.metric, runner.settings.cv, runner.settings.keep_outputs) == ("mse", "validation", False)
    assert runner.make_estimator({"n_neurons": 5}).get_params()["n_neurons"] == 5
