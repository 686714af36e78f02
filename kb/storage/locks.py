"""Named locks across every process and replica that share a database, for work that must not
run twice at once (the gap refresh: two refreshes reading the same old gaps would both insert
the same new ones).

PostgreSQL: a session advisory lock on a connection held for the block. SQLite: an exclusive
flock on a file beside the database (SQLite only ever serves one host), which also excludes
other threads of the same process.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import text

from kb.storage.database import Database
from kb.storage.engine import sqlite_path

_local = threading.Lock()  # an in-memory SQLite database has no file to lock


def _key(name: str) -> int:
    """A stable signed 64-bit advisory lock id for the name."""
    return int.from_bytes(hashlib.sha256(("kb:" + name).encode()).digest()[:8], "big", signed=True)


@contextmanager
def held(db: Database, name: str) -> Iterator[None]:
    """Wait until no other process holds the named lock, then hold it for the block."""
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _key(name)})
            conn.commit()  # the lock is the session's, not the transaction's
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _key(name)})
                conn.commit()
        return
    path = sqlite_path(db.url)
    if path is None:
        with _local:
            yield
        return
    with open(path.with_name(f"{path.name}.{name}.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        yield
