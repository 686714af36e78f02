"""The request log is written in batches: read-your-writes in process, bounded delay for others,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import time

from sqlalchemy import text

from kb.storage import schema
from kb.storage.database import DEFER_SECONDS, Database, record_request


def log(db: Database, i: int) -> None:
    record_request(db, request_id=f"r{i}", kind="suggest", session="s", query=f"vpn {i}", locale="en",
                   answered=True, top_confidence=0.5, fallback=False, results=[])


def others(url: str) -> int:
    """What another process sees: a second Database over the same database."""
    other = Database(url, upgrade=False)
    try:
        with other._reader.connect() as conn:  # no flush of its own: it has nothing queued
            return int(conn.execute(text("SELECT count(*) FROM requests")).scalar_one())
    finally:
        other.close()


def test_deferred_writes_are_read_at_once_in_process_and_soon_by_others(database_url):
    db = Database(database_url)
    for i in range(5):
        log(db, i)
    assert others(database_url) == 0  # not committed yet: one transaction will carry them all
    assert db.one("SELECT count(*) AS n FROM requests")["n"] == 5  # a read commits the queue first
    assert others(database_url) == 5
    log(db, 5)
    time.sleep(DEFER_SECONDS * 3)
    assert others(database_url) == 6  # the timer committed it without any read
    log(db, 6)
    db.close()
    assert others(database_url) == 7  # close commits what is queued


def test_a_request_logged_twice_keeps_the_last_answer(database_url):
    db = Database(database_url)
    log(db, 1)
    record_request(db, request_id="r1", kind="suggest", session="s", query="vpn again", locale="ru",
                   answered=False, top_confidence=0.1, fallback=True, results=[{"slug": "vpn"}])
    [row] = db.query(schema.requests.select())
    assert (row["query"], row["locale"], row["answered"], row["fallback"]) == ("vpn again", "ru", 0, 1)
    db.close()


def test_a_failing_deferred_write_never_undoes_another_write(database_url):
    db = Database(database_url)
    db.defer(text("INSERT INTO no_such_table VALUES (1)"), {})
    log(db, 1)
    db.defer(schema.events.insert(), {"ts": 1.0, "session": "s", "type": "x"})
    db.execute(schema.events.insert().values(ts=1, session="s", type="feedback", request_id="", slug="", data="{}"))
    assert db.one("SELECT count(*) AS n FROM events")["n"] == 2
    assert db.one("SELECT count(*) AS n FROM requests")["n"] == 1
    db.close()
