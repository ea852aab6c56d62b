"""The random backend's candidates: candidate i depends on the seed, the space and i only, so an extended
study (``--n-trials`` 18 then 20) runs new candidates, never one it ran; a finite grid is a seeded
permutation, refused when a study asks for more trials than it holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests import warm_python
from tests.helpers import study_config, study_dict
from tests.resume_helpers import cli_env, load_trials, without_charts
from tuning.config.schema import load_study
from tuning.errors import StudyConfigError
from tuning.search.schedulers import make_store
from tuning.search.schedulers.random import RandomScheduler
from tuning.search.space import suggest
from tuning.search.store.budget import CANDIDATE, SURPLUS, counts_toward_budget
from tuning.search.store.candidates import candidates

ROOT = Path(__file__).resolve().parents[1]
GRID = {  # 2 x 5 x 2 = 20 combinations, each a tiny network
    "n_hidden": {"type": "int", "low": 1, "high": 2},
    "n_neurons": {"type": "categorical", "choices": [2, 3, 4, 5, 6]},
    "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
}
CONTINUOUS = {
    "n_neurons": {"type": "int", "low": 2, "high": 6},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
}
FAST = {"epochs": 1, "batch_size": 128, "early_stopping": {"enabled": False}}


def key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def grid_points() -> set[str]:
    from sklearn.model_selection import ParameterGrid

    return {key(p) for p in ParameterGrid({"n_hidden": [1, 2], "n_neurons": [2, 3, 4, 5, 6],
                                           "activation": ["relu", "tanh"]})}


def test_a_grid_is_a_seeded_permutation_that_an_extension_continues(tmp_path):
    config = study_config(tmp_path, space=GRID, search={"backend": "random", "n_trials": 18})
    first, extended = candidates(config, 18), candidates(config, 20)
    assert extended[:18] == first  # 18 then 20: two new candidates, none run again
    assert {key(p) for p in extended} == grid_points()  # all 20, each once
    assert candidates(config, 30) == extended  # a grid holds no more
    assert [len(candidates(config, n)) for n in (1, 7)] == [1, 7] and candidates(config, 7) == first[:7]
    other = study_config(tmp_path, space=GRID, search={"backend": "random", "n_trials": 18, "seed": 1})
    assert candidates(other, 20) != extended and {key(p) for p in candidates(other, 20)} == grid_points()


def test_continuous_candidates_do_not_depend_on_the_count(tmp_path):
    config = study_config(tmp_path, space=CONTINUOUS, search={"backend": "random", "n_trials": 18})
    assert candidates(config, 20)[:18] == candidates(config, 18)
    assert len({key(p) for p in candidates(config, 200)}) == 200  # an int range repeats: drawn again


def test_more_trials_than_the_grid_holds_are_refused_at_load(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(study_dict(tmp_path, space=GRID, search={"backend": "random", "n_trials": 21}),
                                   sort_keys=False))
    with pytest.raises(StudyConfigError) as info:
        load_study(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 1 error\n  search.n_trials (line ")
    assert "21 trials, but the space holds only 20 combinations (2 n_hidden x 5 n_neurons x 2 activation)" in message
    assert "set search.n_trials to 20 or less" in message
    path.write_text(path.read_text().replace("n_trials: 21", "n_trials: 20"))
    assert load_study(path).search.n_trials == 20
    with pytest.raises(StudyConfigError, match=rf"{path} with command-line options: 1 error\n  search.n_trials: 21 "):
        load_study(path).with_overrides(n_trials=21)
    optuna_backend = study_config(tmp_path, space=GRID, search={"backend": "optuna", "n_trials": 21})
    assert optuna_backend.search.n_trials == 21  # its sampler may propose a point again
    conditional = {**GRID, "n_neurons": {**GRID["n_neurons"], "per": "n_hidden"}}
    assert study_config(tmp_path, space=conditional, search={"backend": "random", "n_trials": 40})  # no rectangle


def test_the_command_line_refuses_an_extension_past_the_grid(tmp_path):
    """``python -m tuning.run study.yaml --n-trials 25`` on a 20-point grid: exit 2, no traceback, the file,
    the key and the grid size in the message, before anything is created."""
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(study_dict(tmp_path, space=GRID, search={"backend": "random", "n_trials": 18}),
                                   sort_keys=False))
    done = warm_python.run([sys.executable, "-m", "tuning.run", str(path), "--n-trials", "25", "--quiet"],
                           cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert str(path) in message and "search.n_trials: 25 trials" in message
    assert "only 20 combinations" in message and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")  # ask/tell here
def test_a_candidate_given_back_is_queued_again_before_the_next(tmp_path):
    """Candidate indices stay contiguous: a refill queues the lowest index no trial holds, so a candidate
    whose trial turned out surplus (a budget race between workers) is not skipped, and a retried one is not
    queued twice."""
    from optuna.trial import TrialState

    config = study_config(tmp_path, space=GRID, search={"backend": "random", "n_trials": 3})
    store = make_store(config, tmp_path / "out")
    store.open("minimize", "mse")
    pool = candidates(config, 5)
    gave_back, ran, interrupted = (store.study.ask() for _ in range(3))
    gave_back.set_user_attr(SURPLUS, True)  # as a worker marks a trial that found the budget full
    store.study.tell(gave_back, state=TrialState.FAIL)
    suggest(ran, config.space)
    store.study.tell(ran, 1.0)
    suggest(interrupted, config.space)  # then its worker stopped: failed, and retried as candidate 2 again
    store.study.tell(interrupted, state=TrialState.FAIL)
    store.retry_interrupted(interrupted.number)
    scheduler = RandomScheduler(store)
    assert scheduler.refill(2)
    queued = [t for t in store.trials() if t.state == TrialState.WAITING]
    assert [t.user_attrs[CANDIDATE] for t in queued] == [2, 0, 3]
    assert [suggest(store.study.ask(), config.space) for _ in queued] == [pool[2], pool[0], pool[3]]


def run(config, workers: int = 1, train: bool = True):
    """The study, in this process (MLflow model upload and report charts skipped: slow, tested elsewhere).
    ``train=False``: this process's trials score without training (they only fill the store)."""
    from tuning.records import COMPLETE
    from tuning.search.trial.runner import TrialRunner
    from tuning.study import run_study

    def untrained(runner, record, report, reported, checkpoint=None):
        record.fold_scores, record.value, record.state = [1.0], 1.0, COMPLETE

    with pytest.MonkeyPatch.context() as patch, without_charts():
        patch.setattr("tuning.export.mlflow_model.log_model", lambda *args, **kwargs: None)
        if not train:
            patch.setattr(TrialRunner, "_run", untrained)
        result = run_study(config, quiet=True, workers=workers)
    assert not result.interrupted
    return result


def ran(config) -> list[tuple[int, dict]]:
    """(candidate, params) of the study's counted trials, by candidate."""
    trials = load_trials(f"sqlite:///{config.export_dir / 'optuna.db'}", config.name)
    assert not [t for t in trials if t.state.name == "RUNNING"]  # (two workers may leave a queued duplicate)
    return sorted(((t.user_attrs[CANDIDATE], t.params) for t in trials if counts_toward_budget(t)), key=lambda c: c[0])


def extend(tmp_path: Path, space: dict, workers: int) -> tuple[list, list, object]:
    """A random study of 18 trials (not trained: quick), then the same study with ``--n-trials 20`` run with
    ``workers`` processes, trained; (candidate, params) of the counted trials after each, and the config."""
    config = study_config(tmp_path, space=space, training=FAST, search={"backend": "random", "n_trials": 18})
    run(config, train=False)
    first = ran(config)
    extended = config.with_overrides(n_trials=20)
    run(extended, workers)
    return first, ran(extended), extended


def test_an_extended_grid_study_runs_every_point_once(tmp_path, monkeypatch):
    """18 trials on a 20-point grid, then --n-trials 20 with a --workers helper process: the study's store
    holds 20 distinct candidates, 0 .. 19, the grid's every point (the two processes never run one twice)."""
    monkeypatch.chdir(tmp_path)  # MLflow's artifact store lands there
    first, after, _ = extend(tmp_path, GRID, workers=2)
    assert [c for c, _ in after] == list(range(20)) and after[:18] == first
    assert {key(p) for _, p in after} == grid_points()


def test_an_extended_continuous_study_keeps_its_first_candidates(tmp_path, monkeypatch):
    """The same in one process on a continuous space: the 20 candidates are the first 20 of the seed."""
    monkeypatch.chdir(tmp_path)
    first, after, config = extend(tmp_path, CONTINUOUS, workers=1)
    assert after[:18] == first == list(enumerate(candidates(config, 18)))
    assert [c for c, _ in after] == list(range(20)) and [p for _, p in after] == candidates(config, 20)
