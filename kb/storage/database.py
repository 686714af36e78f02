"""SQLite storage (WAL): one connection per thread for reads, one serialised writer.

Every table kb writes lives here, so the schema is in one place. Event schema:

- ``requests``: every suggest (widget/API) and search (portal): id, ts, kind, session, query,
  locale, answered, top_confidence, fallback, results (JSON list of {slug, anchor, confidence}).
- ``events``: the widget funnel and portal activity: ts, session, type, request_id, slug, data.
  Types: session_start, request_settled, suggestions_shown, suggestion_opened, feedback,
  ticket_started, ticket_created, article_view, result_click.
- ``feedback``: "Was this helpful?" answers: request_id, slug, helpful, comment, session, source.
- ``tickets`` and ``outbox``: see kb/tickets.py.
"""

from __future__ import annotations

import json
import random
import sqlite3
import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import sqlite_utils

from kb.errors import KbError
from kb.settings import Settings

T = TypeVar("T")


class StoreError(KbError):
    """The database could not be written."""

    status_code = 503


SCHEMA: dict[str, tuple[dict[str, type], dict[str, Any]]] = {
    "requests": (
        {"id": str, "ts": float, "kind": str, "session": str, "query": str, "locale": str,
         "answered": int, "top_confidence": float, "fallback": int, "results": str, "source": str},
        {"pk": "id"},
    ),
    "events": (
        {"id": int, "ts": float, "session": str, "type": str, "request_id": str, "slug": str,
         "data": str},
        {"pk": "id"},
    ),
    "feedback": (
        {"id": int, "ts": float, "request_id": str, "slug": str, "helpful": int, "comment": str,
         "session": str, "source": str, "query": str, "locale": str},
        {"pk": "id"},
    ),
}
INDEXES = [
    ("requests", ["ts"]), ("requests", ["session"]),
    ("events", ["ts"]), ("events", ["session"]), ("events", ["type", "ts"]),
    ("feedback", ["ts"]), ("feedback", ["slug"]),
]


log = logging.getLogger("kb.storage.database")
DEFER_SECONDS = 0.2
DEFER_BATCH = 64


class Database:
    """A SQLite file in WAL mode: thread-local read connections and one locked writer."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        self._applied: set[Callable[[sqlite_utils.Database], None]] = set()
        self._deferred: list[tuple[str, Any]] = []
        self._unsaved = 0  # deferred rows not committed yet, the queue and a batch being committed both
        self._flusher: threading.Timer | None = None
        self.migrate(_base_schema)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def migrate(self, step: Callable[[sqlite_utils.Database], None]) -> None:
        """Apply an idempotent schema step once per Database (modules add their tables through this)."""
        if step in self._applied:  # the hot paths call this on every use: no lock once applied
            return
        with self._write_lock:
            if self._closed:
                raise StoreError("the database is closed")
            if step not in self._applied:
                step(sqlite_utils.Database(self._writer))
                self._applied.add(step)

    @property
    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        self.flush()  # reads see every deferred write made before them
        return self.reader.execute(sql, params).fetchall()

    def one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        self.flush()
        return self.reader.execute(sql, params).fetchone()

    def defer(self, sql: str, params: Any = ()) -> None:
        """Queue a write that may be committed up to DEFER_SECONDS later, with others, in one
        transaction: for the request log, written on every keystroke-driven suggest.

        Any read, write or close through this Database commits the queue first, so the process
        always reads its own writes; a crash loses at most DEFER_SECONDS of deferred rows.
        """
        with self._write_lock:
            if self._closed:
                raise StoreError("the database is closed")
            self._deferred.append((sql, params))
            self._unsaved += 1
            if len(self._deferred) < DEFER_BATCH and self._flusher is None:
                self._flusher = threading.Timer(DEFER_SECONDS, self._timed_flush)
                self._flusher.daemon = True
                self._flusher.start()
        if len(self._deferred) >= DEFER_BATCH:
            self.flush()

    def flush(self) -> None:
        """Commit the deferred writes now (one transaction); return once none is uncommitted.

        A batch another thread is committing counts too: returning while it is in flight would let
        the caller read before its own write is visible.
        """
        if not self._unsaved:
            return
        with self.write():
            pass  # write() commits the queue before its own (empty) block

    def _timed_flush(self) -> None:
        try:
            self.flush()
        except StoreError:
            pass  # closed meanwhile: close() committed the queue

    def _commit_deferred(self) -> None:
        """Commit queued writes in their own transaction (the write lock is held): a bad one is
        dropped with a warning and never undoes the caller's write."""
        self._writer.execute("BEGIN IMMEDIATE")  # may raise "locked": the queue is kept for the retry
        pending, self._deferred = self._deferred, []
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        try:
            for sql, params in pending:
                try:
                    self._writer.execute(sql, params)
                except sqlite3.Error as exc:
                    log.warning("dropped a deferred write (%s): %s", exc, sql[:80])
            self._writer.execute("COMMIT")
        finally:
            self._unsaved -= len(pending)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed (durably, in WAL) before the block's caller goes on.

        Another process holding the lock makes us wait and retry rather than fail.
        """
        with self._write_lock:
            if self._closed:
                raise StoreError("the database is closed")
            for attempt in range(8):
                try:
                    if self._deferred:
                        self._commit_deferred()
                    self._writer.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 7:
                        raise StoreError(f"database unavailable: {exc}") from exc
                    time.sleep(0.05 * (2**attempt) * (1 + random.random()))
            try:
                yield self._writer
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise

    def execute(self, sql: str, params: Any = ()) -> int:
        """Run one write statement in its own transaction; return lastrowid."""
        with self.write() as conn:
            return int(conn.execute(sql, params).lastrowid or 0)

    def close(self) -> None:
        if not self._closed:
            try:
                self.flush()
            except StoreError:
                pass
        # Under the write lock: a background writer (the outbox) must never see a half-closed connection.
        with self._write_lock:
            self._closed = True
            self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class NoDatabaseError(KbError):
    """There is no kb database here yet."""

    status_code = 404


def open_database(settings: Settings, *, create: bool = True) -> Database:
    """The database these settings name; with create=False a missing one is an error, never a new file
    (a read-only command pointed at the wrong folder must not leave an empty kb.db behind)."""
    if not create and not settings.db_path.exists():
        raise NoDatabaseError(
            f"No kb database in {settings.data} (kb.db is missing): point --data or KB_DATA at the data"
            " directory of a kb that has run, or start `kb serve` there first."
        )
    return Database(settings.db_path)


def _base_schema(db: sqlite_utils.Database) -> None:
    for table, (columns, options) in SCHEMA.items():
        db[table].create(columns, if_not_exists=True, **options)  # type: ignore[union-attr]
    for table, cols in INDEXES:
        db[table].create_index(cols, if_not_exists=True)  # type: ignore[union-attr]


def now() -> float:
    return time.time()


def record_request(
    db: Database, *, request_id: str, kind: str, session: str, query: str, locale: str,
    answered: bool, top_confidence: float, fallback: bool, results: list[dict], source: str = "",
) -> None:
    """Store one suggest or search with what it returned (deferred: one commit per batch)."""
    db.defer(
        "INSERT OR REPLACE INTO requests (id, ts, kind, session, query, locale, answered,"
        " top_confidence, fallback, results, source) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (request_id, now(), kind, session, query, locale, int(answered), top_confidence,
         int(fallback), json.dumps(results, ensure_ascii=False), source),
    )


def record_event(db: Database, *, session: str, type: str, request_id: str = "", slug: str = "",
                 data: dict | None = None, ts: float | None = None) -> int:
    """Store one funnel event."""
    return db.execute(
        "INSERT INTO events (ts, session, type, request_id, slug, data) VALUES (?,?,?,?,?,?)",
        (ts or now(), session, type, request_id, slug, json.dumps(data or {}, ensure_ascii=False)),
    )


COMMENT_CHARS = 2000  # the longest "Was this helpful?" comment (API, article page, widget)


def record_feedback(db: Database, *, request_id: str, slug: str, helpful: bool, comment: str,
                    session: str, source: str) -> int:
    """Store one "Was this helpful?" answer, with the request text it answered if known."""
    row = db.one("SELECT query, locale FROM requests WHERE id = ?", (request_id,)) if request_id else None
    return db.execute(
        "INSERT INTO feedback (ts, request_id, slug, helpful, comment, session, source, query, locale)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (now(), request_id, slug, int(helpful), comment, session, source,
         row["query"] if row else "", row["locale"] if row else ""),
    )
