"""The command line: exit codes, messages without tracebacks, dry run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from tests import warm_python
from tests.helpers import no_pictures, study_dict, tracking_uri, write_study
from tuning.cli.run import main
from tuning.report import html as report_html


def run_cli(*args: str, env: dict[str, str] | None = None, cold: bool = False) -> subprocess.CompletedProcess:
    """``python -m tuning.run *args``, started warm (tests/warm_python.py) unless ``cold``: a test of what
    TensorFlow prints when it starts needs a process that has not loaded it."""
    run = subprocess.run if cold else warm_python.run
    return run([sys.executable, "-m", "tuning.run", *args], capture_output=True, text=True, timeout=600, env=env)


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
def test_bad_study_exits_2_with_the_key_path_and_no_traceback(tmp_path, capsys, monkeypatch, case):
    mutate, key, text = BAD_STUDIES[case]
    data = study_dict(tmp_path)
    mutate(data)
    path = write_raw(tmp_path, data)
    monkeypatch.setenv("COLUMNS", "50")  # a narrow terminal: the file's path must still come out whole
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
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


@pytest.fixture(scope="module")
def overridden_run(tmp_path_factory):
    """``python -m tuning.run`` (in this process) of a random-search study file with every override given on
    the command line, each unlike the file's; counts every opening of the study file meanwhile."""
    import builtins
    import pathlib
    from types import SimpleNamespace


    tmp = tmp_path_factory.mktemp("overrides")
    path = write_study(tmp, name="mine.yaml", search={"backend": "random", "n_trials": 3, "seed": 0})
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    run = SimpleNamespace(path=path, tmp=tmp, export=elsewhere / "export", tracking_uri=tracking_uri(elsewhere),
                          opened=[])

    def counting(open_file):
        def wrapper(file, *args, **kwargs):
            if isinstance(file, str | os.PathLike) and os.path.realpath(file) == os.path.realpath(path):
                run.opened.append(file)
            return open_file(file, *args, **kwargs)
        return wrapper

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)  # MLflow's artifact store lands there
        patch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # slow; tested in test_study
        patch.setattr(report_html, "write_pictures", no_pictures)  # the charts: tested in test_report
        patch.setattr(builtins, "open", counting(builtins.open))
        patch.setattr(pathlib.Path, "open", counting(pathlib.Path.open))  # read_text, read_bytes too
        run.code = main([str(path), "--quiet", "--n-trials", "2", "--seed", "5", "--timeout", "900",
                         "--output-dir", str(run.export), "--tracking-uri", run.tracking_uri,
                         "--experiment", "overridden"])
    return run


def test_one_run_reads_the_study_file_once(overridden_run):
    assert overridden_run.code == 0
    assert len(overridden_run.opened) == 1, overridden_run.opened


def test_the_command_line_overrides_reach_every_stage(overridden_run):
    """The stored study, the trials searched, the MLflow runs and params, the export and the report all
    follow the overrides; the parent run logs the study file as it was read."""
    import json

    import optuna
    from mlflow import MlflowClient

    from tuning.config.schema import load_study
    from tuning.search.store.candidates import candidates
    from tuning.search.store.random import SEED

    run = overridden_run
    assert run.code == 0
    as_file = load_study(run.path)
    as_run = as_file.with_overrides(seed=5, n_trials=2)
    drawn = candidates(as_run, 2)
    assert drawn != candidates(as_file, 2)  # the seed decides the trials
    stored = optuna.load_study(study_name=as_run.name, storage=f"sqlite:///{run.export / 'optuna.db'}")
    assert stored.user_attrs[SEED] == 5  # the stored study, in --output-dir
    in_store = sorted(stored.trials, key=lambda t: t.number)
    assert len(in_store) == len(drawn)
    for trial, candidate in zip(in_store, drawn, strict=True):
        assert trial.params == pytest.approx(candidate)

    client = MlflowClient(run.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("overridden").experiment_id])
    parent = [r for r in runs if r.data.tags.get("tuning.role") == "study"]
    trials = sorted((r for r in runs if r.data.tags.get("tuning.role") == "trial"),
                    key=lambda r: int(r.data.tags["trial.number"]))
    assert len(parent) == 1 and len(trials) == 2
    params = parent[0].data.params
    assert (params["search.seed"], params["search.n_trials"], params["search.timeout"]) == ("5", "2", "900.0")
    assert (params["export.dir"], params["mlflow.tracking_uri"]) == (str(run.export), run.tracking_uri)
    assert params["mlflow.experiment"] == "overridden"
    for trial, candidate in zip(trials, drawn, strict=True):
        assert {k: json.loads(v) for k, v in trial.data.params.items()} == pytest.approx(candidate)
    logged = client.download_artifacts(parent[0].info.run_id, "mine.yaml", str(run.tmp / "artifacts"))
    assert open(logged).read() == run.path.read_text()

    assert (run.export / "pipeline.joblib").is_file() and (run.export / "report" / "report.html").is_file()
    assert not (run.tmp / "out").exists()  # the file's export.dir
    in_file_store = MlflowClient(f"sqlite:///{run.tmp / 'mlflow.db'}")  # the file's tracking URI
    assert [e.name for e in in_file_store.search_experiments()] == ["Default"]


# A TensorFlow C++ log line (``E0000 00:00:1796117025.834186   20784 cuda_platform.cc:52] ...``) or its notes.
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:|cuda|cuInit|oneDNN|absl::|TF_ENABLE_ONEDNN_OPTS", re.M | re.I)


def test_cli_runs_a_study_quietly_end_to_end_and_a_rerun_trains_nothing(tmp_path, capsys, monkeypatch):
    """First run, a fresh ``python -m tuning.run`` process: no TensorFlow C++ start-up lines on stderr (the
    user exported no TF_CPP_MIN_LOG_LEVEL). Re-run of the finished study (the command's ``main`` in this
    process: only the stores on disk carry over): says it is complete, shows the stored test metrics and
    export, trains nothing, exits 0. A larger --n-trials extends it."""
    from mlflow import MlflowClient

    path = write_study(tmp_path, search={"n_trials": 2})
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    out = run_cli(str(path), "--quiet", "--experiment", "cli-test", "--seed", "3", env=env, cold=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not TF_LOG_LINE.search(out.stderr), out.stderr[-3000:]
    assert "best trial" in out.stdout and "test mse" in out.stdout
    pipeline = tmp_path / "out" / "pipeline.joblib"
    assert pipeline.is_file()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cli-test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # one parent, two trials
    parent = [r for r in runs if r.data.tags.get("tuning.role") == "study"][0]
    assert parent.data.params["search.seed"] == "3"
    first_table, exported_at = _rows(out.stdout), pipeline.stat().st_mtime_ns


    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # slow; tested in test_study
    monkeypatch.setattr(report_html, "write_pictures", no_pictures)  # the charts: tested in test_report
    code = main([str(path), "--quiet", "--experiment", "cli-test", "--seed", "3"])
    again = capsys.readouterr()
    assert code == 0, again.err[-3000:]
    message = " ".join(again.err.split())
    assert "already complete" in message and "--n-trials" in message and "--fresh" in message
    table = _rows(again.out)
    for key in ("best trial", "validation mse", "test mse", "test r2", "model exported to", "trials"):
        assert table[key] == first_table[key], key
    assert pipeline.stat().st_mtime_ns == exported_at  # nothing refitted or exported
    assert len(client.search_runs([experiment.experiment_id])) == 3  # no trial run, no new parent run
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"

    code = main([str(path), "--quiet", "--experiment", "cli-test", "--seed", "3", "--n-trials", "3"])
    more = capsys.readouterr()
    assert code == 0, more.err[-3000:]
    assert "already complete" not in more.err
    assert len(client.search_runs([experiment.experiment_id])) == 4  # one more trial, same parent
    counts = re.match(r"(\d+) complete, (\d+) pruned, (\d+) failed", _rows(more.out)["trials"])
    assert counts and sum(map(int, counts.groups())) == 3


def _rows(table: str) -> dict[str, str]:
    """The rows of the printed summary table: first column -> second (cells folded onto one line)."""
    rows: dict[str, str] = {}
    key = None
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")] if "│" in line else []
        if len(cells) != 2:
            continue
        if cells[0]:
            key = cells[0]
            rows[key] = cells[1]
        elif key:
            rows[key] += " " + cells[1]
    return rows


def test_a_study_where_no_trial_completes_exits_1_with_the_reasons(tmp_path, capsys):
    """Every trial diverges (SGD at a learning rate of 1e5): exit 1, the reasons counted, nothing exported."""
    space = {"n_hidden": {"type": "int", "low": 1, "high": 1}, "n_neurons": {"type": "int", "low": 8, "high": 9},
             "learning_rate": {"type": "float", "low": 1.0e5, "high": 2.0e5}}
    path = write_study(tmp_path, space=space, model={"optimizer": "sgd"}, search={"n_trials": 2})
    assert main([str(path), "--quiet"]) == 1
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "no trial completed, nothing was exported" in err
    assert "2 x FloatingPointError: training loss became NaN or infinite at epoch N" in err
    assert "model exported to" not in captured.out and "no trial completed" in captured.out
    assert not (tmp_path / "out" / "pipeline.joblib").exists()


def test_error_text_keeps_its_brackets(tmp_path, capsys):
    """A message shown on the console is text, not rich markup: ``[1]`` is not swallowed."""
    data = study_dict(tmp_path)
    data["dataset"] = {"source": "csv", "path": "data[1].csv", "target": "y[0]"}
    path = write_raw(tmp_path, data)
    assert main([str(path)]) == 2
    assert "data[1].csv" in capsys.readouterr().err


# Ctrl-C test: the tuned epochs make the first trial short and the second one long (minutes), in the order
# the seeded random sampler draws them, so SIGINT certainly lands while the second one trains. The median
# pruner (which prunes nothing before 5 complete trials) has every epoch reported to the Optuna storage: the
# signal is sent once the trial has finished epochs there, i.e. past Keras' first-epoch tracing.
SHORT, LONG = 2, 100_000
CTRL_C_SEED = 10


def test_ctrl_c_marks_the_running_trial_and_the_study_killed_and_prints_the_best(tmp_path):
    """SIGINT once a trial is seen training (its MLflow run RUNNING, its parameters logged): exit 130, that
    trial's run KILLED with its reason, the finished trial kept, the parent run KILLED, no run left RUNNING,
    the best so far printed, nothing exported; the Optuna store holds the interrupted trial as failed without
    a reason (not counted) and its parameters queued again for a resume."""
    import signal
    import time
    import warnings

    import optuna
    from mlflow import MlflowClient

    data = study_dict(tmp_path, space={"epochs": {"type": "categorical", "choices": [SHORT, LONG]}},
                      search={"sampler": "random", "seed": CTRL_C_SEED, "pruner": "median"},
                      training={"early_stopping": {"enabled": False}})
    del data["training"]["epochs"]
    path = write_raw(tmp_path, data, "study.yaml")
    streams = {name: tmp_path / f"{name}.txt" for name in ("stdout", "stderr")}
    proc = warm_python.popen([sys.executable, "-m", "tuning.run", str(path), "--quiet", "--experiment", "ctrl-c"],
                             stdout=streams["stdout"], stderr=streams["stderr"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    storage = f"sqlite:///{tmp_path / 'out' / 'optuna.db'}"

    def epochs_reported(number: int) -> int:
        trial = optuna.load_study(study_name="tiny", storage=storage).trials[number]
        return len(trial.intermediate_values) if trial.state == optuna.trial.TrialState.RUNNING else 0

    def trial_runs() -> list:
        experiment = client.get_experiment_by_name("ctrl-c")
        if experiment is None:
            return []
        return client.search_runs([experiment.experiment_id], filter_string="tags.`tuning.role` = 'trial'")

    try:
        deadline, training = time.monotonic() + 240, None
        while training is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            training = next((r for r in trial_runs() if r.info.status == "RUNNING"
                             and r.data.params.get("epochs") == str(LONG)), None)
        assert training is not None, f"no trial of {LONG} epochs seen training (exit {proc.poll()})"
        number = int(training.data.tags["trial.number"])
        while epochs_reported(number) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert epochs_reported(number) >= 2, f"trial {number} reported no epochs (exit {proc.poll()})"
        finished = [r for r in trial_runs() if r.info.status == "FINISHED"]
        assert [r.data.params["epochs"] for r in finished] == [str(SHORT)], "the seed no longer draws SHORT first"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout, stderr = (streams[name].read_text(errors="replace") for name in ("stdout", "stderr"))
    assert proc.returncode == 130, stderr[-3000:]
    # (a traceback may show: Python prints "Exception ignored" when the signal lands in a __del__, see
    # tuning.parallel.interrupt)
    assert "interrupted" in stderr and "marked KILLED" in " ".join(stderr.split()), stderr[-3000:]

    runs = client.search_runs([client.get_experiment_by_name("ctrl-c").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("tuning.role") == "study"]
    assert parent.info.status == "KILLED"
    trials = {r.info.run_id: r for r in runs if r.data.tags.get("tuning.role") == "trial"}
    assert sorted(trials) == sorted([finished[0].info.run_id, training.info.run_id])  # no trial started after
    done, killed = trials[finished[0].info.run_id], trials[training.info.run_id]
    assert done.info.status == "FINISHED" and done.data.tags["trial.state"] == "complete"
    assert killed.info.status == "KILLED"  # the very run seen training
    assert killed.data.tags["trial.state"] == "killed"
    assert killed.data.tags["trial.reason"] == "interrupted by the user"

    table = _rows(stdout)  # the best so far is printed; nothing is exported
    assert table["best trial"] == done.data.tags["trial.number"]
    assert table["trials"] == "1 complete, 0 pruned, 0 failed"
    assert "model exported to" not in table and not (tmp_path / "out" / "pipeline.joblib").exists()

    study = optuna.load_study(study_name="tiny", storage=storage)
    by_state = {state: [t for t in study.trials if t.state == state] for state in optuna.trial.TrialState}
    (complete,) = by_state[optuna.trial.TrialState.COMPLETE]
    (failed,) = by_state[optuna.trial.TrialState.FAIL]
    (queued,) = by_state[optuna.trial.TrialState.WAITING]
    assert not by_state[optuna.trial.TrialState.RUNNING]
    assert str(complete.number) == done.data.tags["trial.number"] and complete.params == {"epochs": SHORT}
    assert str(failed.number) == killed.data.tags["trial.number"] and failed.params == {"epochs": LONG}
    assert "reason" not in failed.user_attrs  # interrupted: not counted toward n_trials
    assert queued.params == failed.params  # queued again: a resume trains it
    with warnings.catch_warnings():  # "experimental" in Optuna since 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        assert optuna.storages.RetryFailedTrialCallback.retried_trial_number(queued) == failed.number


def test_dry_run_names_the_workers_and_the_exported_model(tmp_path, capsys):
    path = write_study(tmp_path, search={"workers": 2},
                       export={"ensemble": {"method": "greedy", "size": 10, "candidates": 6}, "train_on": "train+valid"})
    assert main([str(path), "--dry-run"]) == 0
    out = re.sub(r"[\s│]+", " ", capsys.readouterr().out)  # the table wraps long cells
    assert "workers 2" in out
    assert "greedy ensemble of 10 picks among the 6 best trials, trained on train+valid" in out



def test_dry_run_says_how_often_a_trial_writes_checkpoints(tmp_path, capsys):
    for search, expected in (({}, "every 10 epochs or 60 s of training, whichever first: a killed trial resumes"),
                             ({"checkpoint": {"every_epochs": None, "every_s": 30}}, "every 30 s of training"),
                             ({"checkpoint": False}, "off: a killed trial starts over"),
                             ({"cv": 3}, "none written (cv 3: a killed trial starts over)")):
        path = write_study(tmp_path, search=search)
        assert main([str(path), "--dry-run"]) == 0
        out = re.sub(r"[\s│]+", " ", capsys.readouterr().out)
        assert f"checkpoints {expected}" in out, out
