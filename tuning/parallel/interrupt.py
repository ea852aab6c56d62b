"""Ctrl-C / SIGTERM that cannot get lost.

A signal handler that raises KeyboardInterrupt can fire inside a weakref callback or ``__del__``,
where Python prints "Exception ignored" and carries on. So the handler also sets a flag, and the
trial runner checks it after every epoch and before every trial.
"""

from __future__ import annotations

import signal
import threading

_stop = threading.Event()


def _handler(signum: int, frame: object) -> None:
    _stop.set()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_handlers() -> None:
    """Route SIGINT and SIGTERM to a clean stop (also when started with SIGINT ignored)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)


def reset() -> None:
    """Forget a stop already asked for: each study run starts without one (an earlier study in this process
    may have been interrupted; :func:`tuning.study.run_study` calls this first)."""
    _stop.clear()


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested (and its first exception was swallowed)."""
    if _stop.is_set():
        raise KeyboardInterrupt("stop requested")
