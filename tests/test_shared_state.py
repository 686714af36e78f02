"""State several processes share through the database, on SQLite and on PostgreSQL: login limits
under a concurrent burst, merged per-IP limits, sessions and secrets, outbox claiming, tickets."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from kb.errors import RateLimitedError
from kb.settings import Settings
from kb.staff import auth
from kb.storage import schema
from kb.storage.database import Database
from kb.storage.limits import RateLimiter
from kb.tickets.intake import create_ticket
from kb.tickets.outbox import claim

PASSWORD = "correct horse battery"
FORM = {"name": "Ann Lee", "email": "ann@example.com", "subject": "VPN drops", "body": "It drops every hour."}


@pytest.fixture
def pair(database_url):
    """Two Database objects over one database: what two processes or replicas hold."""
    one, two = Database(database_url), Database(database_url)
    yield one, two
    one.close()
    two.close()


def test_a_concurrent_login_burst_gets_at_most_the_limit_of_password_checks(pair, tmp_path, monkeypatch):
    db, other = pair
    settings = Settings.load(environ={}, data=tmp_path)
    limit = settings.rate_login_per_15min
    auth.add_user(db, "owner@example.com", "owner", PASSWORD)
    verifies: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash, password):  # type: ignore[no-untyped-def]
            verifies.append(password)
            return super().verify(hash, password)

    monkeypatch.setattr(auth, "_hasher", CountingHasher())
    limiters = [RateLimiter(db), RateLimiter(other)]  # half the burst on each "replica"
    start = threading.Barrier(29)

    def attempt(n: int) -> str:
        if n < 29:
            start.wait()
            password = f"wrong password {n}"
        else:
            time.sleep(0.3)  # the right password comes last
            password = PASSWORD
        try:
            auth.authenticate((db, other)[n % 2], settings, limiters[n % 2], "owner@example.com", password, "10.0.0.7")
            return "ok"
        except auth.LoginError:
            return "401"
        except RateLimitedError:
            return "429"

    with ThreadPoolExecutor(max_workers=30) as pool:
        outcomes = list(pool.map(attempt, range(30)))
    assert len(verifies) <= limit, f"{len(verifies)} argon2 checks for a limit of {limit}"
    assert outcomes.count("401") == len(verifies) == limit
    assert outcomes.count("429") == 30 - limit
    assert outcomes[29] == "429", "the right password must be refused once the limit is reached"


def test_a_successful_login_gives_its_reservation_back(pair, tmp_path):
    db, _ = pair
    settings = Settings.load(environ={}, data=tmp_path, rate_login_per_15min=2)
    auth.add_user(db, "a@example.com", "writer", PASSWORD)
    limiter = RateLimiter(db)
    for _ in range(5):  # only failures count
        assert auth.authenticate(db, settings, limiter, "a@example.com", PASSWORD, "10.1.1.1") > 0
    with pytest.raises(auth.LoginError):
        auth.authenticate(db, settings, limiter, "a@example.com", "not it at all", "10.1.1.1")
    assert auth.authenticate(db, settings, limiter, "a@example.com", PASSWORD, "10.1.1.1") > 0
    with pytest.raises(auth.LoginError):
        auth.authenticate(db, settings, limiter, "a@example.com", "not it either", "10.1.1.2")
    with pytest.raises(RateLimitedError):  # two failures for the account, from any address
        auth.authenticate(db, settings, limiter, "a@example.com", PASSWORD, "10.1.1.3")


def test_exact_reservations_are_shared_between_processes(pair):
    one, two = RateLimiter(pair[0]), RateLimiter(pair[1])
    for limiter in (one, two, one):
        limiter.reserve("tickets:10.0.0.1", 3, 3600)
    with pytest.raises(RateLimitedError) as info:
        two.reserve("tickets:10.0.0.1", 3, 3600)
    assert 3500 < info.value.retry_after <= 3601
    two.reserve("tickets:10.0.0.2", 3, 3600)  # another key has its own budget


def test_merged_hits_reach_the_other_process_within_one_merge(pair):
    one, two = RateLimiter(pair[0], merge_seconds=0.05), RateLimiter(pair[1], merge_seconds=0.05)
    try:
        for _ in range(6):
            one.hit("suggest:10.0.0.9", 10, 60)
        with pytest.raises(RateLimitedError):  # one process alone is exact
            for _ in range(5):
                one.hit("suggest:10.0.0.9", 10, 60)
        time.sleep(0.5)  # several merge intervals
        two.hit("suggest:10.0.0.9", 10, 60)  # the first hit here only learns the shared count at its merge
        time.sleep(0.5)
        with pytest.raises(RateLimitedError):
            two.hit("suggest:10.0.0.9", 10, 60)
        shared = pair[0].one(select(schema.rate_limits).where(schema.rate_limits.c.key == "suggest:10.0.0.9"))
        assert shared["hits"] == 11  # 10 from one, 1 from two: over by what two admitted before one merge
    finally:
        one.close()
        two.close()


def test_a_session_started_on_one_replica_holds_on_the_other(pair, tmp_path):
    a, b = pair
    settings = Settings.load(environ={}, data=tmp_path)
    uid = auth.add_user(a, "w@example.com", "writer", PASSWORD)
    cookie = auth.start_session(a, settings, uid)
    staff = auth.load_session(b, settings, cookie)
    assert staff is not None and staff.email == "w@example.com"
    assert staff.csrf == auth.load_session(a, settings, cookie).csrf  # the same CSRF token everywhere
    nonce, token = auth.login_nonce(a, settings)
    assert auth.login_token(b, settings, nonce) == token
    auth.end_session(b, settings, cookie)
    assert auth.load_session(a, settings, cookie) is None


def test_a_ticket_and_its_outbox_rows_are_stored_together_and_claimed_once(pair, tmp_path):
    a, b = pair
    settings = Settings.load(environ={}, data=tmp_path, webhook_url="http://127.0.0.1:9/hook",
                             smtp_host="127.0.0.1", smtp_to="desk@example.com")
    ids = [create_ticket(a, settings, {**FORM, "subject": f"ticket {n}"}, "10.0.0.1")["id"] for n in range(30)]
    rows = b.query(select(schema.outbox.c.ticket_id, schema.outbox.c.sink))
    assert sorted((r["ticket_id"], r["sink"]) for r in rows) == sorted((i, s) for i in ids for s in ("webhook", "email"))
    now = time.time() + 1
    with ThreadPoolExecutor(max_workers=4) as pool:  # four workers on two "replicas" claim at once
        claims = list(pool.map(lambda db: claim(db, now, limit=20), [a, b, a, b]))
    taken = [r["id"] for c in claims for r in c]
    assert len(taken) == len(set(taken)) == 60, "a row was claimed twice, or one was never claimed"
    assert claim(a, now) == [] and claim(b, now) == []  # every lease holds


def test_ip_hashes_agree_between_replicas(pair, tmp_path):
    from kb.tickets.intake import ip_hash

    settings = Settings.load(environ={}, data=tmp_path)
    assert ip_hash(pair[0], settings, "10.0.0.1") == ip_hash(pair[1], settings, "10.0.0.1")
    assert ip_hash(pair[0], settings, "10.0.0.1") != ip_hash(pair[0], settings, "10.0.0.2")
