"""The learning-rate range test: the curve, the command, and the study's optional first step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.helpers import no_pictures, run_study_without_model_logging, study_config, study_dict, write_study
from tuning.cli.lr_find import main
from tuning.cli.run import main as run_main
from tuning.config.schema import load_study_dict
from tuning.search import lr_bounds
from tuning.search.lr_range import LRRangeResult, lr_range_test, middle_params, suggest_bounds

STEPS = 30


def test_middle_of_each_range_except_the_learning_rate(tmp_path):
    data = study_dict(tmp_path, space={
        "n_hidden": {"type": "int", "low": 0, "high": 4},
        "n_neurons": {"type": "int", "low": 4, "high": 64, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.4, "step": 0.1},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    })
    del data["model"]
    config = load_study_dict(data)
    assert middle_params(config) == {"n_hidden": 2, "n_neurons": 16, "dropout": 0.2, "optimizer": "adam"}


def test_suggested_bounds_rule():
    assert suggest_bounds(0.01, 1.0) == (0.001, 0.03)
    assert suggest_bounds(0.4, 1.0) == (0.04, 1.0)  # never above the largest rate tried


def test_curve_shapes_and_geometric_learning_rates(tmp_path):
    result = lr_range_test(study_config(tmp_path), min_lr=1e-4, max_lr=0.1, steps=STEPS, seed=0)
    rates = np.asarray(result.learning_rates)
    assert 2 <= len(rates) <= STEPS
    assert len(result.losses) == len(result.smoothed_losses) == len(rates)
    assert rates[0] == pytest.approx(1e-4)
    ratios = rates[1:] / rates[:-1]
    assert np.allclose(ratios, (0.1 / 1e-4) ** (1 / (STEPS - 1)))
    assert np.isfinite(result.losses).all() and np.isfinite(result.smoothed_losses).all()
    assert result.best_lr == rates[int(np.argmin(result.smoothed_losses))]
    assert result.suggested_lr == pytest.approx(result.best_lr / 2)
    low, high = result.suggested_bounds
    assert 0 < low < result.suggested_lr < high <= 0.1
    assert LRRangeResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert result.plot(tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_suggestion(tmp_path):
    config = study_config(tmp_path)
    first = lr_range_test(config, steps=STEPS, seed=3)
    second = lr_range_test(config, steps=STEPS, seed=3)
    assert first.suggested_lr == second.suggested_lr
    assert first.suggested_bounds == second.suggested_bounds
    assert first.losses == second.losses


def test_stops_once_the_loss_blows_up(tmp_path):
    config = study_config(tmp_path, model={"optimizer": "sgd"})
    result = lr_range_test(config, min_lr=1e-3, max_lr=1e4, steps=200, seed=0)
    assert len(result.learning_rates) < 200
    assert result.stopped != "max_lr reached"
    assert result.best_lr < 1e4


# ------------------------------------------------------------------------------------------- the command


def test_command_writes_the_picture_and_the_json(tmp_path, capsys):
    study = write_study(tmp_path)
    out = tmp_path / "lr"
    assert main([str(study), "--out", str(out), "--steps", str(STEPS), "--seed", "1", "--max-lr", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "suggested learning rate" in printed and "suggested bounds" in printed
    assert (out / "lr_range.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "lr_range.json").read_text())
    assert data["max_lr"] == 0.5 and data["steps"] == STEPS
    assert len(data["learning_rates"]) == len(data["losses"]) == len(data["smoothed_losses"])
    assert data["range_of"] == {"type": "float", "low": 1e-3, "high": 3e-2, "log": True, "step": None}
    assert f"{data['suggested_lr']:.3g}" in printed


def test_command_defaults_to_the_export_dir(tmp_path, capsys):
    study = write_study(tmp_path)
    assert main([str(study), "--steps", "10"]) == 0
    assert (tmp_path / "out" / "lr_range.json").exists()


def test_command_bad_key_exits_2_naming_it(tmp_path, capsys, monkeypatch):
    data = study_dict(tmp_path)
    data["search"]["lr_range_tst"] = True
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COLUMNS", "50")  # a narrow terminal: the file's path must still come out whole
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "search.lr_range_tst" in err and "Traceback" not in err


def test_command_missing_study_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    assert main([str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nope.yaml") in err and "not found" in err


def test_command_bad_option_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(write_study(tmp_path)), "--min-lr", "1", "--max-lr", "0.1"])
    assert exit_info.value.code == 2


# ---------------------------------------------------------------------------------- the study's first step


def test_study_step_sets_the_bounds_and_a_resume_reuses_them(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    import tuning.search.lr_range
    from tuning.report import html as report_html

    monkeypatch.setattr(report_html, "write_pictures", no_pictures)  # the report's charts: tested in test_report
    study = write_study(tmp_path, search={"lr_range_test": True, "n_trials": 2},
                        training={"epochs": 2})
    first = run_study_without_model_logging(study, tmp_path)
    stored = json.loads((tmp_path / "out" / lr_bounds.RESULT_FILE).read_text())
    assert stored["range_of"] == {"type": "float", "low": 1e-3, "high": 3e-2, "log": True, "step": None}
    low, high = stored["suggested_bounds"]
    assert (low, high) != (1e-3, 3e-2) and 0 < low < high
    assert len(first.records) == 2
    assert all(low <= r.params["learning_rate"] <= high for r in first.records)
    client = MlflowClient(study_dict(tmp_path)["mlflow"]["tracking_uri"])
    params = client.get_run(first.parent_run_id).data.params
    assert float(params["space.learning_rate.low"]) == low
    assert {a.path for a in client.list_artifacts(first.parent_run_id, "lr_range")} == {
        "lr_range/lr_range.json", "lr_range/lr_range.png"}

    def no_second_test(*args, **kwargs):
        raise AssertionError("the range test ran again on resume")

    monkeypatch.setattr(tuning.search.lr_range, "lr_range_test", no_second_test)
    again = run_study_without_model_logging(study, tmp_path)  # finished: the stored space matches
    assert again.already_complete
    monkeypatch.chdir(tmp_path)
    assert run_main([str(study), "--quiet"]) == 0  # the command checks the stored space before loading data
    assert "already complete" in capsys.readouterr().err
    assert main([str(study)]) == 2  # lr_find would overwrite the bounds the study searches
    assert "--out" in capsys.readouterr().err
    extended = write_study(tmp_path, search={"lr_range_test": True, "n_trials": 3}, training={"epochs": 2})
    resumed = run_study_without_model_logging(extended, tmp_path)
    assert len(resumed.records) == 3 and resumed.parent_run_id == first.parent_run_id
    assert all(low <= r.params["learning_rate"] <= high for r in resumed.records)
    assert json.loads((tmp_path / "out" / lr_bounds.RESULT_FILE).read_text()) == stored


def test_step_is_off_by_default_and_without_a_float_learning_rate(tmp_path):
    assert not lr_bounds.wanted(study_config(tmp_path))
    config = study_config(tmp_path, search={"lr_range_test": True},
                          space={"n_hidden": {"type": "int", "low": 0, "high": 2}})
    assert not lr_bounds.wanted(config)
    assert lr_bounds.with_stored_bounds(config) is config


def test_stored_bounds_are_ignored_for_another_range_or_fresh(tmp_path):
    config = study_config(tmp_path, search={"lr_range_test": True})
    result = LRRangeResult([1e-3, 1e-2], [1.0, 0.5], [1.0, 0.7], 1e-2, 5e-3, (5e-4, 1.5e-2), 1e-3, 1e-2, 2, 64,
                           "max_lr reached")
    lr_bounds.write(result, config.export_dir, lr_bounds.spec_json(config.space["learning_rate"]))
    applied = lr_bounds.with_stored_bounds(config)
    assert (applied.space["learning_rate"].low, applied.space["learning_rate"].high) == (5e-4, 1.5e-2)
    assert lr_bounds.with_stored_bounds(applied).space == applied.space  # a helper's config: unchanged
    assert lr_bounds.with_stored_bounds(config, fresh=True) is config
    other = study_config(tmp_path, search={"lr_range_test": True}, space={
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
    assert lr_bounds.with_stored_bounds(other) is other
