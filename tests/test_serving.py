"""A study's logged MLflow model served by ``mlflow models serve`` answers ``/invocations`` on raw rows with the
predictions of ``load_model(export)``.

A tiny study runs with its MLflow model logged (not patched away, unlike most tests); the server starts as a
subprocess with ``--env-manager local`` on a free port, is polled on ``/ping`` for up to 90 s, gets raw rows as
``dataframe_split`` JSON, and is killed at the end. When the server cannot start here, the test skips and says why.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import no_pictures, write_study
from tuning.report import html as report_html

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


def _wait_until_up(server: subprocess.Popen, port: int, log: Path) -> None:
    """Poll ``/ping`` until it answers 200; skip (with the server's last lines) when the server exits first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            print(f"mlflow models serve exited with {server.returncode}:\n{tail}")
            pytest.skip(f"mlflow models serve cannot start here (exit {server.returncode}): {tail.strip()[-300:]}")
        try:
            if _get(f"http://127.0.0.1:{port}/ping") == 200:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(1)
    raise AssertionError(f"mlflow models serve did not answer /ping in {START_TIMEOUT_S} s:\n"
                         f"{log.read_text(errors='replace')[-2000:]}")


def test_mlflow_models_serve_answers_raw_rows_as_load_model_predicts(tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from sklearn.datasets import load_diabetes

    from tuning.export import load_model
    from tuning.study import run_study

    monkeypatch.setattr(report_html, "write_pictures", no_pictures)  # charts: tested in test_report
    path = write_study(tmp_path, search={"n_trials": 1}, training={"epochs": 2})
    monkeypatch.chdir(tmp_path)  # MLflow's artifact store lands here
    run_study(path, quiet=True)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny")
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.`tuning.role` = 'study'")[0]
    model_uri = parent.data.tags["model.uri"]

    rows = load_diabetes(as_frame=True).data.head(5)
    expected = load_model(tmp_path / "out").predict(rows)

    port, log = _free_port(), tmp_path / "serve.log"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(ROOT))
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(server, port, log)
        body = json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            served = json.loads(response.read())["predictions"]
        np.testing.assert_allclose(np.asarray(served, dtype=np.float64), expected, rtol=1e-6)
    finally:
        os.killpg(server.pid, 9)  # the server and its workers
        server.wait(timeout=30)
