"""The MLflow run layout: a trial record written as a run (by the tracker, through MlflowClient) reads back
as the same record; the parent run's test metrics and the study lookup use the same names."""

from __future__ import annotations

import dataclasses

import pytest
from mlflow import MlflowClient

from tests.helpers import tracking_uri
from tuning.records import COMPLETE, FAILED, PRUNED, TrialRecord
from tuning.tracking import runlayout as layout
from tuning.tracking.tracker import MlflowTracker

RECORDS = [
    TrialRecord(0, {"n_hidden": 2, "learning_rate": 0.003, "optimizer": "adam"}, state=COMPLETE, value=0.25,
                metric="mse", fold_scores=[0.25], history={"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.25]},
                epochs_run=3, duration_s=1.5),
    TrialRecord(1, {"n_hidden": 0, "learning_rate": 0.01, "optimizer": "sgd"}, state=COMPLETE, value=0.4,
                metric="mse", fold_scores=[0.3, 0.5, 0.4], history={"loss": [0.9, 0.8]}, epochs_run=2, duration_s=2.25),
    TrialRecord(2, {"n_hidden": 1, "learning_rate": 0.02, "optimizer": "sgd"}, state=PRUNED, value=0.9,
                metric="mse", history={"loss": [2.0], "val_loss": [0.9]}, epochs_run=1, duration_s=0.5,
                reason="pruned after epoch 1"),
    TrialRecord(3, {"n_hidden": 3, "learning_rate": 1.0e4, "optimizer": "sgd"}, state=FAILED, metric="mse",
                epochs_run=1, duration_s=0.25, reason="FloatingPointError: training loss became NaN [epoch 1]"),
]


@pytest.fixture(scope="module")
def study_runs(tmp_path_factory):
    """The records written through the tracker under one parent run, and the client to read them."""
    tmp = tmp_path_factory.mktemp("layout")
    tracker = MlflowTracker(tracking_uri(tmp), "layout", background=False)
    tracker.start_study("layout", {"search.metric": "mse"}, None, "name: layout\n")
    for record in RECORDS:
        tracker.on_trial_start(record.number, record.params)
        tracker.on_trial_end(record)
    tracker.log_best(RECORDS[0], {"mse": 0.3, "r2": 0.7}, tmp / "export")
    tracker.end_study("FINISHED")
    tracker.close()
    return MlflowClient(tracker.tracking_uri), tracker


def _comparable(record: TrialRecord) -> dict:
    # started_at is the run's creation time (milliseconds after the record's own clock); no traceback is logged
    return {k: v for k, v in dataclasses.asdict(record).items() if k not in ("started_at", "traceback")}


def test_a_record_written_as_a_run_reads_back_equal(study_runs):
    client, tracker = study_runs
    parent = client.get_run(tracker.parent_run_id)
    runs = list(layout.search_all(client, [parent.info.experiment_id], layout.children_filter(parent.info.run_id)))
    back = {layout.trial_number(run): layout.record_from_run(client, run, "mse") for run in runs}
    assert sorted(back) == [r.number for r in RECORDS]
    for record in RECORDS:
        assert _comparable(back[record.number]) == _comparable(record)
        assert back[record.number].started_at > 0


def test_the_parent_run_holds_the_study_under_the_layout_names(study_runs):
    client, tracker = study_runs
    parent = client.get_run(tracker.parent_run_id)
    assert parent.data.tags[layout.ROLE] == layout.ROLE_STUDY and parent.data.tags[layout.STUDY] == "layout"
    assert layout.test_metrics_of(parent) == {"mse": 0.3, "r2": 0.7}
    assert parent.data.metrics[layout.best_valid_key("mse")] == 0.25
    assert parent.data.tags[layout.BEST_TRIAL] == "0"
    found = client.search_runs([parent.info.experiment_id], layout.study_filter("layout"))
    assert [r.info.run_id for r in found] == [parent.info.run_id]


def test_paging_reads_every_run(study_runs, monkeypatch):
    client, tracker = study_runs
    monkeypatch.setattr(layout, "PAGE", 1)  # one run per page: four pages
    parent = client.get_run(tracker.parent_run_id)
    runs = list(layout.search_all(client, [parent.info.experiment_id], layout.children_filter(parent.info.run_id)))
    assert sorted(layout.trial_number(r) for r in runs) == [0, 1, 2, 3]


# ---------------------------------------------------------------------------- the tracker's writer thread


def test_background_writer_runs_calls_in_order_and_a_failure_only_warns(caplog):
    import threading
    import time

    from tuning.tracking.tracker import BackgroundWriter, flush_writers

    done: list[tuple[int, str]] = []

    def slow(i: int) -> None:
        time.sleep(0.05)
        done.append((i, threading.current_thread().name))

    def broken() -> None:
        raise OSError("disk full")

    writer = BackgroundWriter("test-writer")
    with caplog.at_level("WARNING", logger="tuning.tracking.tracker"):
        for i in range(3):
            writer.submit(slow, i)
        writer.submit(broken)
        writer.submit(slow, 3)
        writer.flush()  # waits for the whole queue
        assert [i for i, _ in done] == [0, 1, 2, 3]
    assert "broken failed: disk full" in caplog.text
    assert {name for _, name in done} != {threading.current_thread().name}  # off the caller's thread
    assert all(name.startswith("test-writer") for _, name in done)
    writer.close()
    writer.submit(slow, 4)  # a closed writer starts a new thread
    flush_writers()  # what a study process runs at exit
    assert [i for i, _ in done] == [0, 1, 2, 3, 4]
    writer.close()


def test_learning_curves_are_logged_by_the_writer_thread(tmp_path):
    tracker = MlflowTracker(tracking_uri(tmp_path), "background", background=True)
    tracker.start_study("background", {"search.metric": "mse"}, None, "name: background\n")
    for record in RECORDS[:2]:
        tracker.on_trial_start(record.number, record.params)
        tracker.on_trial_end(record)
    tracker.flush()
    client = MlflowClient(tracker.tracking_uri)
    for record in RECORDS[:2]:
        names = [a.path for a in client.list_artifacts(tracker.trial_runs[record.number])]
        assert names == [layout.LEARNING_CURVE], record.number
    tracker.close()
