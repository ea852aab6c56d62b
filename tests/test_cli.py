"""The command line: exit codes, messages without tracebacks, dry run."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.helpers import study_dict, write_study
from tuning.run import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuning.run", *args], capture_output=True, text=True, timeout=600)


def write_raw(tmp_path, data: dict, name: str = "bad.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


BAD_STUDIES = {
    "typo": (lambda d: d["search"].update(n_trails=3), "search.n_trails", "did you mean 'n_trials'"),
    "wrong type": (lambda d: d["search"].update(n_trials="many"), "search.n_trials", "valid integer"),
    "empty space": (lambda d: d.update(space={}), "space", "empty"),
    "low > high": (lambda d: d["space"]["n_hidden"].update(low=5, high=1), "space.n_hidden", "must be <= high"),
    "log with low <= 0": (lambda d: d["space"]["learning_rate"].update(low=0.0), "space.learning_rate", "log"),
    "missing dataset file": (
        lambda d: d.update(dataset={"source": "csv", "path": "nowhere.csv", "target": "y"}),
        "dataset.path", "nowhere.csv",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STUDIES))
def test_bad_study_exits_2_with_the_key_path_and_no_traceback(tmp_path, capsys, case):
    mutate, key, text = BAD_STUDIES[case]
    data = study_dict(tmp_path)
    mutate(data)
    path = write_raw(tmp_path, data)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path.name) in err
    assert key in err
    assert text.lower() in err.lower()
    assert "Traceback" not in err


def test_bad_study_in_a_subprocess_exits_2_and_names_the_line(tmp_path):
    data = study_dict(tmp_path)
    data["training"]["epochs"] = -1
    path = write_raw(tmp_path, data)
    out = run_cli(str(path))
    assert out.returncode == 2
    assert "training.epochs" in out.stderr and "(line " in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_study_file_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_bad_override_exits_2(tmp_path, capsys):
    path = write_study(tmp_path)
    assert main([str(path), "--n-trials", "0", "--dry-run"]) == 2
    assert "search.n_trials" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    path = write_study(tmp_path, name="study.yaml")
    assert main([str(path), "--dry-run", "--n-trials", "7"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "7 trials" in out and "learning_rate" in out
    assert not (tmp_path / "out").exists()
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()] == ["Default"]  # nothing was logged


def test_cli_runs_a_study_end_to_end(tmp_path):
    path = write_study(tmp_path, search={"n_trials": 2})
    out = run_cli(str(path), "--quiet", "--experiment", "cli-test", "--seed", "3")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "best trial" in out.stdout and "test mse" in out.stdout
    assert (tmp_path / "out" / "pipeline.joblib").is_file()
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cli-test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # one parent, two trials
    parent = [r for r in runs if r.data.tags.get("tuning.role") == "study"][0]
    assert parent.data.params["search.seed"] == "3"


def test_ctrl_c_marks_the_running_trial_and_the_study_killed_and_prints_the_best(tmp_path):
    import signal
    import time

    from mlflow import MlflowClient

    path = write_study(tmp_path, search={"n_trials": 50}, training={"epochs": 40, "early_stopping": {"enabled": False}})
    proc = subprocess.Popen([sys.executable, "-m", "tuning.run", str(path), "--quiet", "--experiment", "ctrl-c"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    deadline = time.monotonic() + 240
    finished = []
    while time.monotonic() < deadline and not finished:
        time.sleep(1.0)
        experiment = client.get_experiment_by_name("ctrl-c")
        if experiment is not None:
            runs = client.search_runs([experiment.experiment_id], filter_string="tags.`tuning.role` = 'trial'")
            finished = [r for r in runs if r.info.status == "FINISHED"]
    assert finished, "no trial finished in time"
    time.sleep(0.5)  # most likely inside the next trial now
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"no exit after SIGINT; stderr:\n{stderr[-4000:]}")
    assert proc.returncode == 130, stderr[-3000:]
    assert "best trial" in stdout  # the best so far is still printed
    runs = client.search_runs([client.get_experiment_by_name("ctrl-c").experiment_id])
    parent = [r for r in runs if r.data.tags.get("tuning.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("tuning.role") == "trial"]
    assert len(parent) == 1 and parent[0].info.status == "KILLED"
    assert not [r for r in trials if r.info.status == "RUNNING"]
    killed = [r for r in trials if r.info.status == "KILLED"]
    assert len(killed) <= 1
    for run in killed:
        assert run.data.tags["trial.state"] == "killed"
