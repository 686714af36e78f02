"""Engines for the two databases kb runs on: SQLite (embedded, the default) and PostgreSQL.

SQLite: WAL, synchronous=NORMAL, a busy timeout and foreign keys on every connection; pysqlite's
own transaction handling is switched off so that a write transaction starts with BEGIN IMMEDIATE
(the write lock is taken up front, never upgraded half-way: no deadlock between two writers) and a
read runs in autocommit. PostgreSQL: psycopg 3 with a connection pool that checks a connection
before handing it out, so a restarted server is reconnected to by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from kb.errors import KbError

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 5
SCHEMES = ("sqlite", "postgresql")


class DatabaseURLError(KbError):
    """The database URL names an engine kb does not run on."""


def database_url(setting: str, data: Path) -> URL:
    """The URL from KB_DATABASE_URL (postgresql://… becomes postgresql+psycopg://…), else the data dir's kb.db."""
    if not setting:
        return URL.create("sqlite", database=str(Path(data) / "kb.db"))
    try:
        url = make_url(setting)
    except Exception as exc:  # sqlalchemy raises ArgumentError with the offending text
        raise DatabaseURLError(f"KB_DATABASE_URL is not a database URL: {exc}") from exc
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":  # the spelling Heroku and libpq accept
        backend = "postgresql"
    if backend not in SCHEMES or driver not in ("", "pysqlite", "psycopg"):
        raise DatabaseURLError(f"KB_DATABASE_URL: kb runs on sqlite:///PATH or postgresql://…, not {url.drivername}://")
    return url.set(drivername="postgresql+psycopg" if backend == "postgresql" else "sqlite")


def sqlite_path(url: URL) -> Path | None:
    """The file a SQLite URL names (None for PostgreSQL or an in-memory database)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def make_engine(url: URL, *, writer: bool = False) -> Engine:
    """An engine for the URL; for SQLite, `writer` gives the one-connection engine whose
    transactions take the write lock at BEGIN."""
    if url.get_backend_name() != "sqlite":
        # A host that does not answer at all (not one that refuses) must not hold a writer for
        # minutes: the deferred request log retries later instead.
        return create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True, pool_recycle=1800,
                             connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    if writer:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, pool_size=8, max_overflow=8, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin_immediate if writer else _sqlite_begin_nothing)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # kb says when a transaction begins (below), not pysqlite
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_nothing(conn: Connection) -> None:
    """Reads run in autocommit: each statement sees the latest commit and holds no lock after it."""
