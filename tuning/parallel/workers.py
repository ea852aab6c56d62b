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

GROUP_ENV = "TUNING_WORKER_GROUP"
INDEX_ENV = "TUNING_WORKER_INDEX"
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (Linux), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None where /proc is not available."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _pid_running(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie (killed but not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    return not (fields and fields[0] in ("Z", "X"))


@dataclass(frozen=True)
class WorkerId:
    """One worker process: stored on every trial it runs (Optuna user attr ``worker``)."""

    host: str
    pid: int
    started: int | None
    group: str
    index: int = 0

    @classmethod
    def current(cls) -> WorkerId:
        """This process; its group and index come from the launcher's environment, else it leads a group."""
        host, pid = socket.gethostname(), os.getpid()
        started = process_start_ticks(pid)
        group = os.environ.get(GROUP_ENV) or f"{host}:{pid}:{started}"
        return cls(host, pid, started, group, int(os.environ.get(INDEX_ENV, "0")))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_alive(info: dict[str, Any] | None) -> bool | None:
    """Whether the worker described by ``info`` still runs: True/False on this host, None when unknown."""
    if not info or info.get("host") != socket.gethostname() or not info.get("pid"):
        return None
    pid = int(info["pid"])
    if not _pid_running(pid):
        return False
    started = info.get("started")
    return started is None or process_start_ticks(pid) in (None, started)


def group_alive(group: str | None) -> bool | None:
    """Whether the process leading ``group`` (``host:pid:start``) still runs; None when unknown."""
    try:
        host, pid, started = (group or "").rsplit(":", 2)
        info = {"host": host, "pid": int(pid), "started": None if started == "None" else int(started)}
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

    Each inherits this process's environment (thread limits included) plus the group it belongs to.
    """
    procs = []
    for index in range(1, count + 1):
        env = {**os.environ, GROUP_ENV: group, INDEX_ENV: str(index)}
        cmd = [sys.executable, "-m", "tuning.run", str(study_file), "--worker", "--storage", storage]
        procs.append(subprocess.Popen(cmd + (["--quiet"] if quiet else []), env=env))
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
