"""Worker processes: who is running a trial, whether that process still lives, and ``--workers N``.

A worker is one process running trials of a study. It is identified by host, pid and the process's
start time (so a recycled pid is not mistaken for the original process), and belongs to a *group*:
the ``python -m tuning.run`` command that was started, together with the worker processes it spawned
for ``--workers N``. The group that finishes a study exports its best model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

GROUP_ENV = "TUNING_WORKER_GROUP"
INDEX_ENV = "TUNING_WORKER_INDEX"
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")
#: psutil's start time is the boot time (whole seconds, moved by clock adjustments) plus the ticks since
#: boot, so two reads for one process may differ by a second or so; a recycled pid belongs to a process
#: started well after the original (the kernel hands a pid out again only after cycling through the others).
START_TOLERANCE_S = 5.0


def process_started(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch, from psutil), or None when it cannot be read."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


@dataclass(frozen=True)
class WorkerId:
    """One worker process: stored on every trial it runs (Optuna user attr ``worker``)."""

    host: str
    pid: int
    started: float | None  # psutil's create_time: with the pid, a process no recycled pid can pass for
    group: str
    index: int = 0

    @classmethod
    def current(cls) -> WorkerId:
        """This process; its group and index come from the launcher's environment, else it leads a group."""
        host, pid = socket.gethostname(), os.getpid()
        started = process_started(pid)
        group = os.environ.get(GROUP_ENV) or f"{host}:{pid}:{started}"
        return cls(host, pid, started, group, int(os.environ.get(INDEX_ENV, "0")))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_alive(info: dict[str, Any] | None) -> bool | None:
    """Whether the worker described by ``info`` still runs: True/False on this host, None when unknown.

    A zombie (killed, not yet reaped) is not running; a pid now used by a process that started at another
    time than ``info["started"]`` is another process.
    """
    if not info or info.get("host") != socket.gethostname() or not info.get("pid"):
        return None
    try:
        process = psutil.Process(int(info["pid"]))
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        started = info.get("started")
        return started is None or abs(process.create_time() - float(started)) <= START_TOLERANCE_S
    except psutil.NoSuchProcess:  # ZombieProcess included
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


def group_alive(group: str | None) -> bool | None:
    """Whether the process leading ``group`` (``host:pid:start``) still runs; None when unknown."""
    try:
        host, pid, started = (group or "").rsplit(":", 2)
        info = {"host": host, "pid": int(pid), "started": None if started == "None" else float(started)}
    except ValueError:
        return None
    return is_alive(info)


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_budget(n_workers: int) -> dict[str, str]:
    """TensorFlow/OpenMP thread settings so ``n_workers`` processes share the cores without oversubscribing."""
    intra = max(1, usable_cores() // max(1, n_workers))
    return {"TF_NUM_INTRAOP_THREADS": str(intra), "OMP_NUM_THREADS": str(intra),
            "TF_NUM_INTEROP_THREADS": str(min(2, intra))}


def limit_threads(n_workers: int) -> None:
    """Apply :func:`thread_budget` to this process (call before TensorFlow is imported).

    Values the user exported explicitly are kept; nothing changes for a single worker.
    """
    if n_workers <= 1:
        return
    for name, value in thread_budget(n_workers).items():
        os.environ.setdefault(name, value)


def spawn_workers(count: int, study_file: Path, storage: str, group: str, quiet: bool = True) -> list[subprocess.Popen]:
    """Start ``count`` worker processes (``--worker`` mode) of ``study_file`` on ``storage``.

    Each inherits this process's environment (thread limits included) plus the group it belongs to. When one
    cannot start, those already started are stopped (:func:`interrupt_all`) before the error goes on.
    """
    procs: list[subprocess.Popen] = []
    try:
        for index in range(1, count + 1):
            env = {**os.environ, GROUP_ENV: group, INDEX_ENV: str(index)}
            cmd = [sys.executable, "-m", "tuning.run", str(study_file), "--worker", "--storage", storage]
            procs.append(subprocess.Popen(cmd + (["--quiet"] if quiet else []), env=env))
    except BaseException:
        interrupt_all(procs)
        raise
    return procs


def wait_all(procs: list[subprocess.Popen]) -> list[int]:
    """Wait for every worker; their exit codes (a failed worker is reported: its trial is retried)."""
    import logging

    codes = [proc.wait() for proc in procs]
    for index, code in enumerate(codes, start=1):
        if code != 0:
            logging.getLogger("tuning").warning("worker %d exited with code %d; a trial it left unfinished "
                                                "was failed and queued again", index, code)
    return codes


def interrupt_all(procs: list[subprocess.Popen]) -> None:
    """Ask running workers to stop as Ctrl-C would (they mark their trial KILLED), then reap them."""
    import signal

    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
