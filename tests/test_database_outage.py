"""The request log while PostgreSQL is away: kept within its bound, never making a suggest wait, and
written once the database answers again."""

from __future__ import annotations

import socket
import time

import pytest

from kb.storage import database
from kb.storage.database import Database, record_request


def log_one(db: Database, n: int) -> float:
    """Queue one request-log row as a suggest does; the seconds the caller waited."""
    started = time.monotonic()
    record_request(db, request_id=f"r_out{n}", kind="suggest", session="s", query=f"vpn {n}", locale="en",
                   answered=True, top_confidence=0.9, fallback=False, results=[])
    return time.monotonic() - started


def test_a_database_host_that_stops_answering_never_holds_a_suggest():
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    db = Database(f"postgresql://kb@127.0.0.1:{silent.getsockname()[1]}/kb", upgrade=False)
    try:
        waits = []
        for n in range(3 * database.DEFER_BATCH):  # several batches fall due while every connect hangs
            waits.append(log_one(db, n))
            time.sleep(0.02)
        assert max(waits) < 1.0, f"a suggest waited {max(waits):.1f} s for the database (connect timeout 5 s)"
        assert db.queued == 3 * database.DEFER_BATCH and db.dropped == 0
    finally:
        db.close()  # its last flush times out too: nothing is committed, nothing raised
        silent.close()


def test_the_queue_is_bounded_counted_and_written_when_the_database_is_back(postgres, monkeypatch):
    monkeypatch.setattr(database, "MAX_DEFERRED", 50)
    url = postgres.new_database()
    db = Database(url)
    try:
        postgres.halt()
        try:
            for n in range(80):
                log_one(db, n)
            assert db.queued == 50 and db.dropped == 30
            with pytest.raises(database.StoreError):
                db.flush()
            assert db.queued == 50, "a failed flush keeps the rows"
        finally:
            postgres.start()
        db.flush()
        assert db.queued == 0
        logged = {row["id"] for row in db.query("SELECT id FROM requests")}
        assert logged == {f"r_out{n}" for n in range(30, 80)}, "the newest rows are kept, the oldest dropped"
    finally:
        db.close()
        postgres.drop_database(url)
