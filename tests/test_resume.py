"""Crash-safe resume: kill -9 mid-trial and re-run, a changed space refused, the random backend's state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from resume_helpers import (
    check_one_run_per_trial,
    cli,
    cli_env,
    load_trials,
    mlflow_db,
    mlflow_runs,
    run,
    start,
    wait_for,
    write_study,
)

from tuning.search.backends.optuna import SURPLUS, counts_toward_budget


def _log(path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def test_kill_9_mid_trial_then_rerun_resumes(tmp_path):
    """Completed trials are kept, the killed one is FAIL and its parameters retried, n_trials end counted,
    and MLflow has one run per trial (the killed one KILLED) under one parent run."""
    n_trials = 4
    study = write_study(tmp_path, "resume", n_trials=n_trials, epochs=30)
    tracking = f"sqlite:///{mlflow_db(tmp_path)}"
    storage = f"sqlite:///{tmp_path / 'out' / 'optuna.db'}"
    cmd = cli(study, "--tracking-uri", tracking, "--output-dir", str(tmp_path / "out"))
    log = tmp_path / "cli.log"

    first = start(cmd, tmp_path, log)
    try:
        def mid_trial():
            trials = load_trials(storage, "resume")
            running = [t for t in trials if t.state.name == "RUNNING" and "worker" in t.user_attrs]
            return sum(map(counts_toward_budget, trials)) >= 2 and running

        wait_for(mid_trial, 240, "two trials done and a third running", alive=first)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    before = {t.number: t for t in load_trials(storage, "resume")}
    killed = [t for t in before.values() if t.state.name == "RUNNING"]
    assert len(killed) == 1, before
    killed = killed[0]
    kept = {n: t.datetime_complete for n, t in before.items() if counts_toward_budget(t)}

    assert run(cmd, tmp_path, log) == 0, _log(log)

    trials = load_trials(storage, "resume")
    by_number = {t.number: t for t in trials}
    assert sum(map(counts_toward_budget, trials)) == n_trials
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING") or SURPLUS in t.user_attrs]
    assert {n: by_number[n].datetime_complete for n in kept} == kept  # not re-run
    assert by_number[killed.number].state.name == "FAIL" and "reason" not in by_number[killed.number].user_attrs
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params and counts_toward_budget(retries[0])
    assert len(trials) == n_trials + 1

    parents, runs = mlflow_runs(tracking, "resume")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_id = parents[0].info.run_id
    by_trial = check_one_run_per_trial(trials, runs, parent_id)
    assert by_trial[killed.number].info.status == "KILLED"
    assert by_trial[killed.number].data.tags["trial.state"] == "killed"
    assert {r.info.status for n, r in by_trial.items() if n != killed.number} <= {"FINISHED", "FAILED"}
    assert (tmp_path / "out" / "pipeline.joblib").exists()


def test_changed_space_is_refused_unless_fresh(tmp_path):
    """A stored study with another search space: exit 2 with the reason, before TensorFlow loads."""
    from tuning.config.schema import load_study, space_digest
    from tuning.search.backends.optuna import OptunaStore

    study = write_study(tmp_path, "space")
    out = tmp_path / "out"
    config = load_study(study).with_overrides(output_dir=out)
    backend = OptunaStore(config, out)
    backend.open("minimize", "mse")
    backend.study.enqueue_trial({"n_neurons": 9, "learning_rate": 0.002})
    assert backend.created and backend.get_attr("space_digest") == space_digest(config)

    study.write_text(study.read_text().replace("high: 32", "high: 64"))
    cmd = cli(study, "--output-dir", str(out))
    done = subprocess.run(cmd, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "different search space" in message and "--fresh" in message
    assert "Traceback" not in done.stderr

    changed = load_study(study).with_overrides(output_dir=out)
    again = OptunaStore(changed, out)
    again.open("minimize", "mse", fresh=True)  # what --fresh does: the old trials are gone, the new space is stored
    assert again.created and again.trials() == []
    assert again.get_attr("space_digest") == space_digest(changed) != space_digest(config)


def test_random_backend_resumes_after_a_dead_process(tmp_path, monkeypatch):
    """random_state.json: a trial left running by a dead process is killed, its candidate retried under a
    new number; its orphan MLflow run is closed; counted trials are kept. The remaining candidates are
    fitted in two joblib (loky) processes, each tracking its own trials."""
    from mlflow import MlflowClient

    from tuning.config.schema import load_study, space_digest
    from tuning.search.backends.random import STATE_FILE, candidates
    from tuning.study import run_study

    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")  # see resume_helpers.cli_env
    study = write_study(tmp_path, "rand", backend="random", n_trials=3, epochs=2, n_jobs=2)
    out, tracking = tmp_path / "out", f"sqlite:///{mlflow_db(tmp_path)}"
    config = load_study(study).with_overrides(output_dir=out, tracking_uri=tracking)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pool = candidates(config, 3)

    client = MlflowClient(tracking)
    experiment = client.create_experiment("rand")
    parent = client.create_run(experiment, tags={"tuning.role": "study"}).info.run_id
    orphan = client.create_run(experiment, tags={"mlflow.parentRunId": parent, "tuning.role": "trial",
                                                 "trial.number": "1"}).info.run_id
    done = {"number": 0, "params": pool[0], "state": "complete", "value": 1.0e9, "metric": "mse",
            "fold_scores": [1.0e9], "history": {}, "epochs_run": 2, "duration_s": 0.1, "reason": None,
            "started_at": 0.0, "traceback": None}
    worker = {"host": os.uname().nodename, "pid": dead.pid, "started": None, "group": "g", "index": 0}
    state = {"study": "rand", "seed": config.search.seed, "candidates": pool,
             "attrs": {"space_digest": space_digest(config), "mlflow_parent_run_id": parent},
             "trials": {"0": {"candidate": 0, "state": "complete", "record": done},
                        "1": {"candidate": 1, "state": "running", "params": pool[1], "worker": worker}}}
    out.mkdir()
    (out / STATE_FILE).write_text(json.dumps(state))

    result = run_study(config, quiet=True)

    saved = json.loads((out / STATE_FILE).read_text())["trials"]
    assert saved["1"]["state"] == "killed"
    assert saved["3"]["candidate"] == 1 and saved["3"]["record"]["params"] == pool[1]  # the retry
    assert saved["0"]["record"]["value"] == 1.0e9  # kept, not re-run
    assert sorted(saved) == ["0", "1", "2", "3"]
    assert os.getpid() not in {saved[n]["worker"]["pid"] for n in ("2", "3")}  # fitted in joblib workers
    assert result.n_complete + result.n_failed + result.n_pruned == 3
    assert result.parent_run_id == parent
    assert client.get_run(orphan).info.status == "KILLED"
    runs = client.search_runs([experiment], "tags.`tuning.role` = 'trial'")
    assert sorted(int(r.data.tags["trial.number"]) for r in runs) == [1, 2, 3]
    assert all(r.info.status != "RUNNING" for r in runs)
    assert result.export_dir is not None and (out / "pipeline.joblib").exists()


def test_random_study_run_by_a_live_process_is_refused(tmp_path):
    """Two processes on one random_state.json would run the same candidates: the second one stops."""
    from tuning.config.schema import load_study
    from tuning.errors import StudyError
    from tuning.parallel.workers import WorkerId
    from tuning.search.backends.random import STATE_FILE, RandomStore

    config = load_study(write_study(tmp_path, "busy", backend="random")).with_overrides(output_dir=tmp_path)
    RandomStore(config, tmp_path).open("minimize", "mse")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = WorkerId.current().as_dict() | {"pid": live.pid, "started": None}
        state = json.loads((tmp_path / STATE_FILE).read_text())
        state["trials"]["0"] = {"candidate": 0, "state": "running", "params": {}, "worker": other}
        (tmp_path / STATE_FILE).write_text(json.dumps(state))
        with pytest.raises(StudyError, match=f"being run by another process \\(pid {live.pid}\\)"):
            RandomStore(config, tmp_path).open("minimize", "mse")
    finally:
        live.kill()
        live.wait()
