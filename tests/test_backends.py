"""The search contract: study stores built from the config alone (no runner, no data), the registry, and the
finished-study check a re-run relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import study_config
from tuning.errors import StudyError
from tuning.records import COMPLETE
from tuning.search.schedulers import StudyStore, TrialScheduler, make_scheduler, make_store
from tuning.search.space import suggest
from tuning.search.store.base import EXPORTED
from tuning.search.store.budget import WORKER

ROOT = Path(__file__).resolve().parents[1]


def test_the_contract_module_imports_no_backend():
    code = ("import sys, tuning.search.schedulers.base, tuning.search.schedulers.registry; "
            "print(sorted(m for m in sys.modules if m.startswith('tuning.search.schedulers.') and 'base' not in m "
            "and 'registry' not in m), 'optuna' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["[]", "False"], done.stderr


@pytest.mark.parametrize("backend", ["optuna", "random"])
def test_a_store_is_built_and_opened_without_a_runner(tmp_path, backend):
    config = study_config(tmp_path, search={"backend": backend, "n_trials": 1})
    store = make_store(config, tmp_path / "state")
    assert isinstance(store, StudyStore) and isinstance(make_scheduler(store), TrialScheduler)
    assert store.peek_records() is None and not store.is_finished(1)  # nothing stored yet, nothing created
    store.open("minimize", "mse")
    assert store.created and store.records() == [] and not store.export_due()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")  # ask/tell here
@pytest.mark.parametrize("backend", ["optuna", "random"])
def test_a_store_knows_when_the_study_is_finished(tmp_path, backend):
    config = study_config(tmp_path, search={"backend": backend, "n_trials": 1})
    store = make_store(config, tmp_path)
    store.open("minimize", "mse")
    trial = store.study.ask()
    suggest(trial, config.space)
    trial.set_user_attr(WORKER, store.worker.as_dict())  # this process ran it: this process exports
    store.study.tell(trial, 1.0)
    assert store.export_due() and not store.is_finished(1)  # counted, not exported yet
    store.mark_exported()
    assert store.get_attr(EXPORTED) == 1 and not store.export_due()
    again = make_store(config, tmp_path)
    assert again.is_finished(1) and not again.is_finished(2)  # a larger budget extends it
    assert [(r.number, r.state, r.value) for r in again.peek_records()] == [(0, COMPLETE, 1.0)]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")
def test_the_random_store_queues_each_seeded_candidate_once(tmp_path):
    """Candidate i is trial i; a larger budget queues the next ones of the same sequence; a trial that is
    no candidate, or a candidate queued twice at once (two workers), trains nothing."""
    from optuna.trial import TrialState

    from tuning.search.schedulers.random import RandomScheduler
    from tuning.search.store.budget import CANDIDATE, SURPLUS
    from tuning.search.store.candidates import candidates

    config = study_config(tmp_path, search={"backend": "random", "n_trials": 3})
    store = make_store(config, tmp_path)
    store.open("minimize", "mse")
    first = [store.study.ask() for _ in range(3)]
    assert [suggest(t, config.space) for t in first] == candidates(config, 3)
    assert [(t.number, t.user_attrs[CANDIDATE]) for t in first] == [(0, 0), (1, 1), (2, 2)]
    assert not any(store.is_surplus(t) for t in first)
    stray = store.study.ask()  # the queue is empty: Optuna makes a new trial, which is no candidate
    assert CANDIDATE not in stray.user_attrs and store.is_surplus(stray)
    stray.set_user_attr(SURPLUS, True)  # as the scheduler marks it
    store.study.tell(stray, state=TrialState.FAIL)

    scheduler, pool = RandomScheduler(store), candidates(config, 5)
    for index in (3, 4):  # --n-trials 5 on a resume; another worker queues the same ones at the same moment
        assert scheduler.refill(1)
        store.study.enqueue_trial(pool[index], user_attrs={CANDIDATE: index})
    store.n_trials = 5
    more = []
    for _ in range(4):
        trial = store.study.ask()
        more.append((trial.user_attrs[CANDIDATE], suggest(trial, config.space), store.is_surplus(trial)))
        if more[-1][2]:
            trial.set_user_attr(SURPLUS, True)  # as the scheduler marks it
            store.study.tell(trial, state=TrialState.FAIL)
    assert more == [(3, pool[3], False), (3, pool[3], True), (4, pool[4], False), (4, pool[4], True)]

    reseeded = study_config(tmp_path, search={"backend": "random", "n_trials": 3, "seed": 1})
    with pytest.raises(StudyError, match="was sampled with seed 0, not 1"):  # its candidates come from the seed
        make_store(reseeded, tmp_path).open("minimize", "mse")


def test_unknown_backend_and_storage_for_a_local_backend_are_refused(tmp_path, monkeypatch):
    from tuning.search.schedulers import registry

    config = study_config(tmp_path, search={"backend": "random"})
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    assert url in make_store(config, tmp_path, storage=url).location  # random keeps its study there too
    monkeypatch.setitem(registry.BACKENDS, "local", "tuning.search.schedulers.random")  # as without shared_storage
    local = config.model_copy(update={"search": config.search.model_copy(update={"backend": "local"})})
    with pytest.raises(StudyError, match="--storage needs a backend that keeps its study in a database"):
        make_store(local, tmp_path, storage=url)
    with pytest.raises(StudyError, match="unknown backend 'nope'"):
        registry._module("nope")
