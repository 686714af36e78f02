"""Rate limits shared by every worker and replica through the database (``rate_limits`` table).

Each key (``login-ip:1.2.3.4``, ``suggest:1.2.3.4`` …) has one row: the hits of its current
window and when that window ends. A window starts with the first hit after the previous one
ended, so a key admits at most `limit` hits per window. Two ways in:

- `reserve` (logins, tickets): exact. One atomic conditional upsert takes a hit before the
  expensive work (argon2) or refuses it; a concurrent burst cannot pass, on any number of
  processes, because the database serialises the row. `release` gives a hit back (a login that
  succeeded does not count).
- `hit` (suggest, search, events, feedback: up to hundreds a second): counted in memory and
  merged into the shared row by a background thread every MERGE_SECONDS, so a suggest never waits
  for the database. Over-admission bound: a process decides on the shared count as of its last
  merge plus its own hits since; with P processes the hits a key is admitted in a window exceed
  `limit` by at most what the other P-1 processes admitted for that key in one merge interval
  (≤ MERGE_SECONDS plus one merge round trip). With one process the count is exact.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Insert, bindparam, case, delete, or_, select, update

from kb.errors import RateLimitedError
from kb.storage import schema
from kb.storage.database import Database, StoreError, upsert

log = logging.getLogger("kb.storage.limits")
MERGE_SECONDS = 1.0
MAX_LOCAL_KEYS = 50_000
T = schema.rate_limits


@dataclass(frozen=True)
class Reservation:
    """One hit taken by `reserve`: the key and the window it was counted in."""

    key: str
    expires: float


@dataclass
class _Local:
    expires: float  # end of the window as last known
    shared: int  # the shared count at the last merge (every process's hits)
    pending: int = 0  # hits admitted here since, not merged yet
    seconds: float = 60.0


def _counter(dialect: str, reset_to: object) -> Insert:
    """INSERT the key's row, or count into it: a window that has ended starts again at `reset_to`."""
    ended = T.c.expires <= bindparam("now")
    return upsert(dialect, T, ["key"], update={
        "hits": case((ended, reset_to), else_=T.c.hits + bindparam("n")),
        "expires": case((ended, bindparam("new_expires")), else_=T.c.expires),
    })


class RateLimiter:
    """Per-key limits over the database: exact `reserve` and merged-in-the-background `hit`."""

    def __init__(self, db: Database, merge_seconds: float = MERGE_SECONDS) -> None:
        self.db = db
        self.merge_seconds = merge_seconds
        self._local: dict[str, _Local] = {}
        self._lock = threading.Lock()
        self._merger: threading.Thread | None = None
        self._stop = threading.Event()
        ended = T.c.expires <= bindparam("now")
        # The WHERE makes the upsert a no-op (no row returned) when the window is full.
        self._reserve = upsert(db.dialect, T, ["key"], update={
            "hits": case((ended, 1), else_=T.c.hits + 1),
            "expires": case((ended, bindparam("new_expires")), else_=T.c.expires),
        }, where=or_(ended, T.c.hits < bindparam("limit"))).values(
            key=bindparam("key"), expires=bindparam("new_expires"), hits=1,
        ).returning(T.c.hits, T.c.expires)
        self._merge = _counter(db.dialect, bindparam("n")).values(
            key=bindparam("key"), expires=bindparam("new_expires"), hits=bindparam("n"),
        ).returning(T.c.hits, T.c.expires)

    # -- exact ------------------------------------------------------------------------------

    def reserve(self, key: str, limit: int, seconds: float) -> Reservation | None:
        """Take one hit for the key, or raise RateLimitedError if its window is full (None: no limit)."""
        if limit <= 0:
            return None
        now = time.time()
        params = {"key": key, "now": now, "new_expires": now + seconds, "limit": limit, "n": 1}
        with self.db.write() as conn:
            row = conn.execute(self._reserve, params).first()
            if row is None:
                expires = conn.execute(select(T.c.expires).where(T.c.key == key)).scalar() or now + seconds
                raise RateLimitedError(retry_after=max(1, int(expires - now) + 1))
        return Reservation(key, float(row.expires))

    def release(self, reservation: Reservation | None) -> None:
        """Give back a reserved hit (if its window is still the current one)."""
        if reservation is None:
            return
        self.db.execute(update(T).where(T.c.key == reservation.key, T.c.expires == reservation.expires,
                                        T.c.hits > 0).values(hits=T.c.hits - 1))

    # -- merged -----------------------------------------------------------------------------

    def hit(self, key: str, limit: int, seconds: float) -> None:
        """Record one hit; raise RateLimitedError past the limit. Never waits for the database."""
        if limit <= 0:
            return
        now = time.time()
        with self._lock:
            local = self._local.get(key)
            if local is None or local.expires <= now:
                if len(self._local) >= MAX_LOCAL_KEYS:
                    self._forget(now)
                local = self._local[key] = _Local(now + seconds, 0, 0, seconds)
            if local.shared + local.pending >= limit:
                raise RateLimitedError(retry_after=max(1, int(local.expires - now) + 1))
            local.pending += 1
        if self._merger is None:
            self._start()

    def _forget(self, now: float) -> None:
        """Drop ended windows (the lock is held); a flood of fresh keys drops the oldest too."""
        for k in [k for k, v in self._local.items() if v.expires <= now and not v.pending]:
            del self._local[k]
        if len(self._local) >= MAX_LOCAL_KEYS:
            for k in sorted(self._local, key=lambda k: self._local[k].expires)[: MAX_LOCAL_KEYS // 5]:
                del self._local[k]

    def _start(self) -> None:
        with self._lock:
            if self._merger is None:
                self._merger = threading.Thread(target=self._run, name="kb-rate-merge", daemon=True)
                self._merger.start()

    def _run(self) -> None:
        last_sweep = 0.0
        while not self._stop.wait(self.merge_seconds):
            try:
                self.merge()
                if time.time() - last_sweep > 60:
                    last_sweep = time.time()
                    self.db.execute(delete(T).where(T.c.expires < last_sweep - 60))
            except StoreError as exc:
                if "closed" in exc.message:
                    return
                log.warning("rate limits not merged: %s", exc.message)

    def merge(self) -> int:
        """Add this process's pending hits to the shared counters and learn everyone's; keys merged."""
        with self._lock:
            batch = {k: (v.pending, v.seconds) for k, v in self._local.items() if v.pending}
            for k in batch:
                self._local[k].pending = 0
        if not batch:
            return 0
        now = time.time()
        try:
            with self.db.write() as conn:
                shared = {k: conn.execute(self._merge, {"key": k, "n": n, "now": now, "new_expires": now + s}).one()
                          for k, (n, s) in batch.items()}
        except Exception:
            with self._lock:  # counted again at the next merge
                for k, (n, _s) in batch.items():
                    if k in self._local:
                        self._local[k].pending += n
            raise
        with self._lock:
            for k, row in shared.items():
                local = self._local.get(k)
                if local is not None:
                    local.shared, local.expires = int(row.hits), float(row.expires)
        return len(batch)

    def close(self) -> None:
        """Stop the merge thread after one last merge."""
        self._stop.set()
        try:
            self.merge()
        except StoreError:
            pass
