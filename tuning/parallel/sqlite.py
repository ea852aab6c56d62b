"""SQLite stores (Optuna's ``optuna.db``, an ``sqlite:`` MLflow store) in write-ahead-log mode.

In SQLite's default rollback-journal mode every commit creates, syncs and deletes a journal file: two
to three fsyncs, 15-20 ms on a busy disk, and a study commits a dozen times per trial (Optuna: the new
trial, each parameter, pruning reports, user attributes, the result; MLflow: the child run's calls).
With a write-ahead log a commit is one append and one fsync (``synchronous=FULL`` is kept, so a commit
survives a power cut as before): ~1 ms. Readers no longer block the writer either, which helps several
local workers sharing one file. The mode is stored in the database file, so every connection and every
process uses it once it is set; like any SQLite locking it needs the processes on one machine (not a
network file system). Beside the file, SQLite keeps ``-wal`` and ``-shm`` files while it is open.

Our own connections to such a file also use ``synchronous=NORMAL`` (:func:`relax_sync`), SQLite's
recommended setting with a WAL: a commit is an append without an fsync (the log is synced at
checkpoints). A commit still survives the process dying (``kill -9``, out of memory, Ctrl-C), and the
database stays consistent whatever happens; only a power cut or an operating-system crash may undo the
last commits before it, which a resumed study handles like a trial that was running (it runs again).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any

LOCK_WAIT_S = 10.0


def sqlite_path(url: str) -> str | None:
    """The database file of an ``sqlite:`` SQLAlchemy URL (None for other databases or in-memory ones)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.query or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def use_wal(url: str) -> bool:
    """Put the SQLite database of ``url`` in WAL mode (creating an empty file if there is none); True
    if it is. Anything in the way (another process holding a lock, a read-only file) leaves it as it
    was: it is an optimisation, never an error."""
    path = sqlite_path(url)
    if path is None:
        return False
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=LOCK_WAIT_S)) as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            return mode.lower() == "wal"
    except sqlite3.Error:
        return False


def _normal_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def relax_sync(engine: Any) -> None:
    """Make the SQLAlchemy ``engine``'s connections to a WAL-mode SQLite file use ``synchronous=NORMAL``
    (nothing for other databases, or a file not in WAL mode). Pooled connections are reopened."""
    from sqlalchemy import event

    if getattr(getattr(engine, "dialect", None), "name", None) != "sqlite":
        return
    if not event.contains(engine, "connect", _normal_sync):
        event.listen(engine, "connect", _normal_sync)
        engine.dispose()


def checkpoint(url: str) -> None:
    """Move an SQLite file's write-ahead log into the file and close: with no other connection open,
    SQLite then removes its ``-wal`` and ``-shm`` files (the export directory keeps ``optuna.db`` alone).
    Nothing for other databases; a busy or missing file is left as it is."""
    path = sqlite_path(url)
    if path is None or not os.path.exists(path):
        return
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=LOCK_WAIT_S)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass
