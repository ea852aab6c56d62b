"""The search contract: study stores built from the config alone (no runner, no data), the registry, and the
finished-study check a re-run relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import study_config
from tuning.errors import StudyError
from tuning.records import COMPLETE, TrialRecord
from tuning.search.backends import StudyStore, TrialScheduler, make_scheduler, make_store
from tuning.search.backends.base import EXPORTED

ROOT = Path(__file__).resolve().parents[1]


def test_the_contract_module_imports_no_backend():
    code = ("import sys, tuning.search.backends.base, tuning.search.backends.registry; "
            "print(sorted(m for m in sys.modules if m.startswith('tuning.search.backends.') and 'base' not in m "
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


def test_the_random_store_knows_when_the_study_is_finished(tmp_path):
    from tuning.search.backends.random import RandomStore

    config = study_config(tmp_path, search={"backend": "random", "n_trials": 1})
    store = RandomStore(config, tmp_path)
    store.open("minimize", "mse")
    record = TrialRecord(0, store.plan(1)[0][2], state=COMPLETE, value=1.0, metric="mse")
    store.state.update(lambda s: s["trials"].__setitem__("0", {"candidate": 0, "state": COMPLETE,
                                                               "record": record.to_dict()}))
    assert store.export_due() and not store.is_finished(1)  # counted, not exported yet
    store.mark_exported()
    assert store.get_attr(EXPORTED) == 1 and not store.export_due()
    again = RandomStore(config, tmp_path)
    assert again.is_finished(1) and not again.is_finished(2)  # a larger budget extends it
    assert [r.number for r in again.peek_records()] == [0]


def test_unknown_backend_and_storage_for_a_local_backend_are_refused(tmp_path):
    config = study_config(tmp_path, search={"backend": "random"})
    with pytest.raises(StudyError, match="--storage needs the optuna backend"):
        make_store(config, tmp_path, storage="sqlite:///x.db")
    from tuning.search.backends import registry

    with pytest.raises(StudyError, match="unknown backend 'nope'"):
        registry._module("nope")
