"""The storage layer: one `Database` over SQLite (the default) or PostgreSQL, through SQLAlchemy Core.

The schema is in kb/storage/schema.py and reaches the database through migrations (migrate.py),
applied when a `Database` opens. Modules pass Core statements, never dialect-specific SQL; the
one place that needs a dialect's own construct, the upsert, is `upsert` below.

SQLite keeps a single writer per process (one connection behind a lock, BEGIN IMMEDIATE) and
pooled readers in autocommit; PostgreSQL uses a connection pool for both. On either engine the
request log is written in deferred batches (see `defer`), and `write()` is one transaction,
committed before the block's caller goes on.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from sqlalchemy import Connection, Engine, Executable, Insert, RowMapping, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from kb.errors import KbError
from kb.storage import migrate, schema
from kb.storage.engine import database_url, make_engine, sqlite_path
from kb.storage.text import clean, strip_controls

log = logging.getLogger("kb.storage.database")
DEFER_SECONDS = 0.2
DEFER_BATCH = 64
MAX_DEFERRED = 20_000  # rows kept while the database is unreachable (~2 min of suggests at 170/s)
WRITE_ATTEMPTS = 8
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
Statement = Executable | str


class StoreError(KbError):
    """The database could not be written."""

    status_code = 503


def upsert(dialect: str, table: Table, index: Sequence[str], *, replace: Sequence[str] = (),
           update: Mapping[str, Any] | None = None, where: Any = None) -> Insert:
    """INSERT … ON CONFLICT (index) DO UPDATE SET (the `replace` columns from the new row, then
    `update`) [WHERE where]; DO NOTHING when neither is given. The one statement whose spelling
    differs between the engines."""
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    values = {c: insert.excluded[c] for c in replace} | dict(update or {})
    if not values:
        return insert.on_conflict_do_nothing(index_elements=list(index))
    return insert.on_conflict_do_update(index_elements=list(index), set_=values, where=where)


def _statement(stmt: Statement) -> Executable:
    return text(stmt) if isinstance(stmt, str) else stmt


class Database:
    """SQLite or PostgreSQL behind one interface: reads, write transactions, deferred batches."""

    def __init__(self, url: str | Path | URL, *, upgrade: bool = True) -> None:
        if isinstance(url, Path) or (isinstance(url, str) and "://" not in url):
            url = URL.create("sqlite", database=str(url))
        self.url: URL = url if isinstance(url, URL) else database_url(str(url), Path("."))
        self.dialect = self.url.get_backend_name()
        path = sqlite_path(self.url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = make_engine(self.url, writer=True)
        self._reader = make_engine(self.url) if self.dialect == "sqlite" else self._writer
        # SQLite: the one writer connection; both: the deferred queue.
        self._write_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # PostgreSQL: one flush at a time, outside the write lock
        self._inflight = 0  # PostgreSQL: deferred rows taken out of the queue by the flush under way
        self._closed = False
        self._deferred: list[tuple[Executable, Mapping[str, Any]]] = []
        self._flusher: threading.Timer | None = None
        self._failures = 0  # flushes in a row that could not reach the database
        self.dropped = 0  # deferred rows dropped because the queue outgrew MAX_DEFERRED
        self.cache: dict[str, Any] = {}  # values fixed for the life of the database (shared secrets)
        if upgrade:
            try:
                migrate.upgrade(self._writer, self._reader)
            except OperationalError as exc:
                self.close()
                raise StoreError(f"database unavailable: {exc.orig}") from exc

    @property
    def queued(self) -> int:
        """Deferred rows not committed yet (they pile up, to MAX_DEFERRED, while the database is down)."""
        return len(self._deferred) + self._inflight

    @property
    def engine(self) -> Engine:
        """The engine writes go through (the only one on PostgreSQL)."""
        return self._writer

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    # -- reads ------------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads that sees every write this Database made before it."""
        self.flush()
        try:
            with self._reader.connect() as conn:
                yield conn
        except (OperationalError, InterfaceError) as exc:
            raise StoreError(f"database unavailable: {exc.orig}") from exc

    def query(self, stmt: Statement, params: Params = None) -> list[RowMapping]:
        """Every row of a select, as mappings."""
        with self.read() as conn:
            return list(conn.execute(_statement(stmt), params).mappings())

    def one(self, stmt: Statement, params: Params = None) -> RowMapping | None:
        """The first row of a select, or None."""
        with self.read() as conn:
            return conn.execute(_statement(stmt), params).mappings().first()

    def scalar(self, stmt: Statement, params: Params = None) -> Any:
        """The first column of the first row, or None."""
        with self.read() as conn:
            return conn.execute(_statement(stmt), params).scalar()

    # -- writes -----------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed (durably) before the block's caller goes on.

        On SQLite another process holding the write lock makes us wait and retry rather than fail.
        """
        if self.dialect == "sqlite":
            with self._write_lock:
                self._check_open()
                if self._deferred:
                    self._commit_deferred()
                with self._begin() as conn:
                    yield conn
            return
        self.flush()
        with self._begin() as conn:
            yield conn

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        conn = self._connect_begun()
        with conn:
            try:
                with conn.get_transaction():  # type: ignore[union-attr]  # commit, or roll back on error
                    yield conn
            except (OperationalError, InterfaceError) as exc:
                raise StoreError(f"database unavailable: {exc.orig}") from exc

    def _connect_begun(self) -> Connection:
        """A writer connection inside a new transaction (SQLite: holding the write lock)."""
        for attempt in range(WRITE_ATTEMPTS):
            conn = None
            try:
                conn = self._writer.connect()
                conn.begin()
                return conn
            except (OperationalError, InterfaceError) as exc:
                if conn is not None:
                    conn.close()
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or attempt == WRITE_ATTEMPTS - 1:
                    raise StoreError(f"database unavailable: {exc.orig}") from exc
                time.sleep(0.05 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")

    def execute(self, stmt: Statement, params: Params = None) -> int:
        """Run one write statement in its own transaction; the number of rows it touched."""
        with self.write() as conn:
            return conn.execute(_statement(stmt), params).rowcount

    def insert(self, table: Table, values: Mapping[str, Any]) -> Any:
        """Insert one row in its own transaction; its primary key (the new id where numbered)."""
        with self.write() as conn:
            key = conn.execute(table.insert().values(**values)).inserted_primary_key
        return key[0] if key is not None and len(key) == 1 else key

    def defer(self, stmt: Executable, params: Mapping[str, Any]) -> None:
        """Queue a write that may be committed up to DEFER_SECONDS later, with others, in one
        transaction: for the request log, written on every keystroke-driven suggest.

        Any read, write or close through this Database commits the queue first, so the process
        always reads its own writes; a crash loses at most DEFER_SECONDS of deferred rows. While
        the database cannot be reached the queue is kept (the caller is not failed) and retried,
        up to MAX_DEFERRED rows; beyond that the oldest are dropped and counted in `dropped`.
        On PostgreSQL the caller never waits for a commit: a database host that stops answering
        holds the flushing thread for the connect timeout, never a suggest.
        """
        with self._write_lock:
            self._check_open()
            self._deferred.append((stmt, params))
            self._trim()
            full = len(self._deferred) >= DEFER_BATCH and self._failures == 0
            if not full or self.dialect != "sqlite":
                self._schedule(0.0 if full else DEFER_SECONDS)
        if full and self.dialect == "sqlite":  # the caller pays for the batch: SQLite's writer is local
            try:
                self.flush()
            except StoreError as exc:  # kept for the timer's retry
                log.warning("deferred writes not committed yet: %s", exc.message)

    def _schedule(self, delay: float = DEFER_SECONDS) -> None:
        """Start the flush timer unless one is pending (the write lock is held)."""
        if self._flusher is None and not self._closed:
            self._flusher = threading.Timer(delay, self._timed_flush)
            self._flusher.daemon = True
            self._flusher.start()

    def _trim(self) -> None:
        """Keep at most MAX_DEFERRED queued rows, dropping and counting the oldest (the write lock is held)."""
        excess = len(self._deferred) - MAX_DEFERRED
        if excess > 0:
            del self._deferred[:excess]
            self.dropped += excess

    def flush(self) -> None:
        """Commit the deferred writes now (one transaction); on PostgreSQL, after any flush under way."""
        if not self._deferred and not self._inflight:  # a read waits for rows another thread is committing
            return
        if self.dialect == "sqlite":  # one writer connection: the commit holds the write lock, as every write
            with self._write_lock:
                self._check_open()
                if self._deferred:
                    self._commit_deferred()
            return
        with self._flush_lock:  # the queue is taken out under the write lock, committed outside it
            with self._write_lock:
                self._check_open()
                pending, self._deferred, self._inflight = self._deferred, [], len(self._deferred)
            try:
                if pending:
                    self._commit_rows(pending)
            except BaseException:
                with self._write_lock:  # back in front of what came meanwhile, within the bound
                    self._deferred[:0] = pending
                    self._trim()
                raise
            finally:
                self._inflight = 0
            with self._write_lock:
                self._flushed()

    def _timed_flush(self) -> None:
        # `_flusher` stays set while this runs: a flush can wait the whole connect timeout for a
        # database that does not answer, and rows queued meanwhile must not start timer after
        # timer, each waiting its turn on the flush lock (they piled up by the hundred).
        try:
            self.flush()
            self._failures = 0
            delay = DEFER_SECONDS
        except StoreError as exc:  # closed meanwhile (close() committed the queue), or the database is down
            if self._closed:
                return
            self._failures += 1
            log.warning("deferred writes not committed yet (%d queued): %s", len(self._deferred), exc.message)
            delay = min(5.0, DEFER_SECONDS * 2 ** self._failures)  # try again, backing off to every 5 s
        finally:
            with self._write_lock:
                if self._flusher is not None and self._flusher.ident == threading.get_ident():
                    self._flusher = None
        with self._write_lock:
            if self._deferred:
                self._schedule(delay)

    def _commit_deferred(self) -> None:
        """SQLite: commit the queue (the write lock is held, so defer() waits and nothing is added)."""
        self._commit_rows(self._deferred)
        self._deferred = []
        self._flushed()

    def _commit_rows(self, pending: list[tuple[Executable, Mapping[str, Any]]]) -> None:
        """Commit queued writes in their own transaction: a bad one is dropped with a warning and
        never undoes the caller's write. On failure to reach the database nothing is committed
        and StoreError says so (the caller keeps the rows for the next try)."""
        with self._begin() as conn:
            for stmt, group in groupby(pending, key=lambda item: item[0]):
                rows = [params for _stmt, params in group]
                try:
                    with conn.begin_nested():
                        conn.execute(stmt, rows)
                except DBAPIError:
                    self._one_by_one(conn, stmt, rows)

    def _flushed(self) -> None:
        """After a commit (the write lock is held): no backoff, and no timer unless rows wait."""
        self._failures = 0
        if not self._deferred and self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None

    @staticmethod
    def _one_by_one(conn: Connection, stmt: Executable, rows: list[Mapping[str, Any]]) -> None:
        for params in rows:
            try:
                with conn.begin_nested():
                    conn.execute(stmt, params)
            except DBAPIError as exc:
                log.warning("dropped a deferred write (%s): %s", type(exc.orig).__name__, str(stmt)[:80])

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the database is closed")

    def close(self) -> None:
        """Commit what is queued, then close every connection."""
        if not self._closed:
            try:
                self.flush()
            except StoreError:
                pass
        # Under the write lock: a background writer (the outbox) must never see a half-closed engine.
        with self._flush_lock, self._write_lock:
            self._closed = True
            if self._flusher is not None:
                self._flusher.cancel()
            self._writer.dispose()
            self._reader.dispose()


def now() -> float:
    return time.time()


def record_request(
    db: Database, *, request_id: str, kind: str, session: str, query: str, locale: str,
    answered: bool, top_confidence: float, fallback: bool, results: list[dict], source: str = "",
) -> None:
    """Store one suggest or search with what it returned (deferred: one commit per batch)."""
    stmt = db.cache.get("record_request")
    if stmt is None:  # one statement object for every row: the batch goes out as one executemany
        columns = [c.name for c in schema.requests.columns if c.name != "id"]
        stmt = upsert(db.dialect, schema.requests, ["id"], replace=columns)
        db.cache["record_request"] = stmt
    db.defer(stmt, {
        "id": request_id, "ts": now(), "kind": kind, "session": session, "query": strip_controls(query), "locale": locale,
        "answered": int(answered), "top_confidence": top_confidence, "fallback": int(fallback),
        "results": json.dumps(results, ensure_ascii=False), "source": source,
    })


def record_event(db: Database, *, session: str, type: str, request_id: str = "", slug: str = "",
                 data: dict | None = None, ts: float | None = None, deferred: bool = False) -> int:
    """Store one funnel event (control characters stripped from its strings, kb/storage/text.py); its
    id. `deferred` queues it with the request log instead (id 0): for page views, which must neither
    wait for the database nor fail while it restarts."""
    values = {"ts": ts or now(), "session": session, "type": type, "request_id": strip_controls(request_id),
              "slug": strip_controls(slug), "data": json.dumps(clean(data or {}), ensure_ascii=False)}
    if deferred:
        stmt = db.cache.setdefault("record_event", schema.events.insert())  # one object: batched together
        db.defer(stmt, values)
        return 0
    return int(db.insert(schema.events, values))


COMMENT_CHARS = 2000  # the longest "Was this helpful?" comment (API, article page, widget)


def record_feedback(db: Database, *, request_id: str, slug: str, helpful: bool, comment: str,
                    session: str, source: str) -> int:
    """Store one "Was this helpful?" answer, with the request text it answered if known; its id."""
    r = schema.requests
    row = db.one(r.select().with_only_columns(r.c.query, r.c.locale).where(r.c.id == request_id)) if request_id else None
    return int(db.insert(schema.feedback, {
        "ts": now(), "request_id": strip_controls(request_id), "slug": slug, "helpful": int(helpful),
        "comment": strip_controls(comment),
        "session": session, "source": source, "query": row["query"] if row else "",
        "locale": row["locale"] if row else ""}))


__all__ = ["Database", "StoreError", "upsert", "record_request", "record_event", "record_feedback"]
