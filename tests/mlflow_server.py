"""A real ``mlflow server`` on a free loopback port, for the tests that need one (workers, browser)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(directory: Path, backend_store_uri: str, timeout: float = 300) -> Iterator[subprocess.Popen]:
    """``mlflow server`` over ``backend_store_uri``, in its own process group, stopped at the end.

    It yields the process at once (``server.url``, ``server.log``); :func:`wait_healthy` waits for it."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(directory / "artifacts")]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = directory / "mlflow-server.log"
    with open(log, "ab") as out:
        server = subprocess.Popen(cmd, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # its own process group: stopped as a whole
    server.url, server.log, server.deadline = f"http://127.0.0.1:{port}", log, time.monotonic() + timeout
    try:
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wait_healthy(server: subprocess.Popen) -> str:
    """The server's URL once it answers ``/health`` (fails with its log if it dies or never answers)."""
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2):
                return server.url
        except OSError:
            assert server.poll() is None, server.log.read_text()[-3000:]
            assert time.monotonic() < server.deadline, "mlflow server did not answer in time"
            time.sleep(0.5)
