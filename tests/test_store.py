"""The request log is written in batches: read-your-writes in process, bounded delay for others."""

from __future__ import annotations

import sqlite3
import time

from kb.storage.database import DEFER_SECONDS, Database, record_request


def log(db: Database, i: int) -> None:
    record_request(db, request_id=f"r{i}", kind="suggest", session="s", query=f"vpn {i}", locale="en",
                   answered=True, top_confidence=0.5, fallback=False, results=[])


def others(db: Database) -> int:
    with sqlite3.connect(db.path) as conn:
        return conn.execute("SELECT count(*) FROM requests").fetchone()[0]


def test_deferred_writes_are_read_at_once_in_process_and_soon_by_others(tmp_path):
    db = Database(tmp_path / "kb.db")
    for i in range(5):
        log(db, i)
    assert others(db) == 0  # not committed yet: one transaction will carry them all
    assert db.one("SELECT count(*) AS n FROM requests")["n"] == 5  # a read commits the queue first
    assert others(db) == 5
    log(db, 5)
    time.sleep(DEFER_SECONDS * 3)
    assert others(db) == 6  # the timer committed it without any read
    log(db, 6)
    db.close()
    assert others(db) == 7  # close commits what is queued


def test_a_failing_deferred_write_never_undoes_another_write(tmp_path):
    db = Database(tmp_path / "kb.db")
    db.defer("INSERT INTO no_such_table VALUES (1)")
    log(db, 1)
    db.execute("INSERT INTO events (ts, session, type, request_id, slug, data) VALUES (1, 's', 'feedback', '', '', '{}')")
    assert db.one("SELECT count(*) AS n FROM events")["n"] == 1
    assert db.one("SELECT count(*) AS n FROM requests")["n"] == 1
    db.close()
