"""Crash-safe resume, for both backends (one Optuna store): kill -9 mid-trial and re-run, a changed space
refused, a dead process's trial retried with its MLflow run closed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests import warm_python
from tests.resume_helpers import (
    check_one_run_per_trial,
    cli,
    cli_env,
    load_trials,
    mlflow_db,
    mlflow_runs,
    start,
    wait_for,
    without_charts,
    write_study,
)
from tuning.search.store.budget import CANDIDATE, SURPLUS, WORKER, counts_toward_budget

BACKENDS = ["optuna", "random"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_mid_trial_then_rerun_resumes(tmp_path, backend):
    """Completed trials are kept, the killed one is FAIL and its parameters retried, n_trials end counted,
    and MLflow has one run per trial (the killed one KILLED) under one parent run. The random backend runs
    each seeded candidate exactly once (the killed one's in its retry). Without checkpoints the retry starts
    over (with them it goes on from the last one, in the killed trial's run: tests/test_trial_resume.py)."""
    n_trials = 4
    study = write_study(tmp_path, "resume", backend=backend, n_trials=n_trials, epochs=30, checkpoint=False)
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

        wait_for(mid_trial, 240, f"two trials done and a third running (its output: {log})", alive=first)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    before = {t.number: t for t in load_trials(storage, "resume")}
    killed = [t for t in before.values() if t.state.name == "RUNNING"]
    assert len(killed) == 1, before
    killed = killed[0]
    kept = {n: t.datetime_complete for n, t in before.items() if counts_toward_budget(t)}

    # the re-run: this process (its own pid; the killed one's is gone), charts and MLflow model skipped
    from tuning.config.schema import load_study
    from tuning.study import run_study

    config = load_study(study).with_overrides(output_dir=tmp_path / "out", tracking_uri=tracking)
    with pytest.MonkeyPatch.context() as patch, without_charts():
        patch.chdir(tmp_path)
        patch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)
        rerun = run_study(config, quiet=True)
    assert rerun.best is not None and not rerun.interrupted

    trials = load_trials(storage, "resume")
    by_number = {t.number: t for t in trials}
    assert sum(map(counts_toward_budget, trials)) == n_trials
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING") or SURPLUS in t.user_attrs]
    assert {n: by_number[n].datetime_complete for n in kept} == kept  # not re-run
    assert by_number[killed.number].state.name == "FAIL" and "reason" not in by_number[killed.number].user_attrs
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params and counts_toward_budget(retries[0])
    assert len(trials) == n_trials + 1
    if backend == "random":
        from tuning.search.store.candidates import candidates

        ran = sorted(((t.user_attrs[CANDIDATE], t.params) for t in trials if counts_toward_budget(t)), key=lambda x: x[0])
        assert ran == list(enumerate(candidates(load_study(study), n_trials)))
        assert retries[0].user_attrs[CANDIDATE] == killed.user_attrs[CANDIDATE]

    parents, runs = mlflow_runs(tracking, "resume")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_id = parents[0].info.run_id
    by_trial = check_one_run_per_trial(trials, runs, parent_id)
    assert by_trial[killed.number].info.status == "KILLED"
    assert by_trial[killed.number].data.tags["trial.state"] == "killed"
    assert {r.info.status for n, r in by_trial.items() if n != killed.number} <= {"FINISHED", "FAILED"}
    assert (tmp_path / "out" / "pipeline.joblib").exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_changed_space_is_refused_unless_fresh(tmp_path, backend):
    """A stored study with another search space: exit 2 with the reason, before TensorFlow loads."""
    from tuning.config.schema import load_study, space_digest
    from tuning.search.schedulers import make_store

    study = write_study(tmp_path, "space", backend=backend)
    out = tmp_path / "out"
    config = load_study(study).with_overrides(output_dir=out)
    store = make_store(config, out)
    store.open("minimize", "mse")
    store.study.enqueue_trial({"n_neurons": 9, "learning_rate": 0.002}, user_attrs={"old": True})
    assert store.created and store.get_attr("space_digest") == space_digest(config)

    study.write_text(study.read_text().replace("high: 32", "high: 64"))
    cmd = cli(study, "--output-dir", str(out))
    done = warm_python.run(cmd, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "different search space" in message and "--fresh" in message
    assert "Traceback" not in done.stderr

    changed = load_study(study).with_overrides(output_dir=out)
    again = make_store(changed, out)
    again.open("minimize", "mse", fresh=True)  # what --fresh does: the old trials are gone, the new space is stored
    assert again.created and again.records() == [] and not [t for t in again.trials() if "old" in t.user_attrs]
    assert again.get_attr("space_digest") == space_digest(changed) != space_digest(config)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")  # ask/tell here
def test_random_backend_resumes_after_a_dead_process(tmp_path, monkeypatch):
    """The random study in its Optuna store: a trial left running by a dead process is failed and its
    candidate retried under a new number; its orphan MLflow run is closed; counted trials are kept; the
    candidates not run yet run once. ``search.n_jobs: 2`` starts a second worker process on the store."""
    from mlflow import MlflowClient

    import tuning.coordination
    from tuning.config.schema import load_study
    from tuning.search.schedulers import make_store
    from tuning.search.space import suggest
    from tuning.search.store.base import PARENT_RUN
    from tuning.search.store.candidates import candidates
    from tuning.study import run_study

    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")  # see resume_helpers.cli_env
    monkeypatch.chdir(tmp_path)  # MLflow's artifact store lands there
    study = write_study(tmp_path, "rand", backend="random", n_trials=3, epochs=2, n_jobs=2)
    out, tracking = tmp_path / "out", f"sqlite:///{mlflow_db(tmp_path)}"
    config = load_study(study).with_overrides(output_dir=out, tracking_uri=tracking)
    pool = candidates(config, 3)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    client = MlflowClient(tracking)
    experiment = client.create_experiment("rand")
    parent = client.create_run(experiment, tags={"tuning.role": "study"}).info.run_id
    orphan = client.create_run(experiment, tags={"mlflow.parentRunId": parent, "tuning.role": "trial",
                                                 "trial.number": "1"}).info.run_id
    store = make_store(config, out)  # what a first run left: candidate 0 counted, candidate 1 running
    store.open("minimize", "mse")
    store.set_attr(PARENT_RUN, parent)
    done, killed = store.study.ask(), store.study.ask()
    for trial in (done, killed):
        suggest(trial, config.space)
        trial.set_user_attr(WORKER, store.worker.as_dict() | {"pid": dead.pid, "started": None})
    store.study.tell(done, 1.0e9)
    spawned = []
    real_spawn = tuning.coordination.spawn_workers
    monkeypatch.setattr(tuning.coordination, "spawn_workers",
                        lambda count, *args, **kw: spawned.append((count, args[1])) or real_spawn(count, *args, **kw))
    helpers = []
    real_wait = tuning.study.wait_all
    monkeypatch.setattr(tuning.study, "wait_all", lambda procs: helpers.extend(procs) or real_wait(procs))


    monkeypatch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)  # slow; tested in test_study
    with without_charts():
        result = run_study(config, quiet=True)

    assert spawned == [(1, store.url)] and [p.returncode for p in helpers] == [0]  # n_jobs 2: one more process
    trials = {t.number: t for t in load_trials(store.url, "rand")}
    assert sorted(trials) == [0, 1, 2, 3]
    assert trials[0].value == 1.0e9  # kept, not re-run
    assert trials[1].state.name == "FAIL" and "reason" not in trials[1].user_attrs
    assert trials[3].system_attrs["failed_trial"] == 1 and trials[3].user_attrs[CANDIDATE] == 1  # the retry
    ran = sorted((trials[n].user_attrs[CANDIDATE], trials[n].params) for n in (0, 2, 3))
    assert ran == list(enumerate(pool)) and all(counts_toward_budget(trials[n]) for n in (0, 2, 3))
    assert result.n_complete + result.n_failed + result.n_pruned == 3
    assert result.parent_run_id == parent
    assert client.get_run(orphan).info.status == "KILLED"
    runs = client.search_runs([experiment], "tags.`tuning.role` = 'trial'")
    assert sorted(int(r.data.tags["trial.number"]) for r in runs) == [1, 2, 3]
    assert all(r.info.status != "RUNNING" for r in runs)
    assert result.export_dir is not None and (out / "pipeline.joblib").exists()
