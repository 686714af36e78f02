"""POST /api/v1/tickets and kb.tickets.intake: validation, honeypot, rate limit, transcript, durability."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from kb.errors import RateLimitedError, ValidationError
from kb.storage.limits import RateLimiter
from kb.tickets.intake import create_ticket, get_ticket
from servers import committed

GOOD = {"name": "Ann Lee", "email": "ann.lee@example.com", "subject": "Outlook keeps asking for my password",
        "body": "Since this morning Outlook asks for my password every few minutes.", "category": "email",
        "locale": "en"}


def post(client, **changes):
    return client.post("/api/v1/tickets", json={**GOOD, **changes})


def new_session(client) -> tuple[str, str]:
    """(token, the session id it names) from POST /api/v1/session."""
    token = client.post("/api/v1/session", json={}).json()["session"]
    return token, token.rpartition(".")[0]


def test_ticket_is_committed_before_the_201(client, settings):
    token, sid = new_session(client)
    r = post(client, session=token)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "status", "created"}  # nothing but the ticket's own id, status and time
    assert re.fullmatch(r"T-[A-Z2-7]{10}", body["id"])
    assert body["status"] == "stored"  # no sink configured in these settings
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created"])
    [row] = committed(settings.db_path, "SELECT * FROM tickets WHERE id = ?", (body["id"],))
    assert (row["name"], row["email"], row["subject"], row["category"]) == (
        GOOD["name"], GOOD["email"], GOOD["subject"], "email")
    assert row["body"] == GOOD["body"] and row["session"] == sid
    assert re.fullmatch(r"[0-9a-f-]{36}", row["idempotency_key"])
    assert re.fullmatch(r"[0-9a-f]{64}", row["ip_hash"])
    assert row["ip_hash"] != hashlib.sha256(b"testclient").hexdigest()
    assert "testclient" not in json.dumps(dict(row))  # the raw client address is never stored
    [event] = committed(settings.db_path, "SELECT * FROM events WHERE type = 'ticket_created'")
    assert json.loads(event["data"]) == {"ticket_id": body["id"]} and event["session"] == sid


def test_transcript_holds_what_the_session_typed_and_rejected(client, settings):
    token, _ = new_session(client)
    other, _ = new_session(client)
    first = client.get("/api/v1/suggest", params={"q": "outlook keeps asking for my password", "session": token}).json()
    second = client.get("/api/v1/suggest", params={"q": "vpn error 809", "session": token}).json()
    client.get("/api/v1/suggest", params={"q": "printer jam", "session": other})
    slug = first["suggestions"][0]["slug"]
    client.post("/api/v1/events", json={"session": token, "type": "suggestion_opened",
                                        "data": {"request_id": first["request_id"], "slug": slug}})
    client.post("/api/v1/feedback", json={"helpful": False, "request_id": first["request_id"], "slug": slug,
                                          "session": token})
    r = post(client, session=token, request_id=second["request_id"])
    assert r.status_code == 201, r.text
    assert "vpn error 809" not in r.text and "transcript" not in r.json()
    ticket = get_ticket(client.app.state["db"], r.json()["id"])
    assert ticket["request_id"] == second["request_id"]
    queries = [q["query"] for q in ticket["transcript"]["requests"]]
    assert queries == ["outlook keeps asking for my password", "vpn error 809"]
    shown = ticket["transcript"]["requests"][0]["results"]
    assert [s["slug"] for s in shown] == [s["slug"] for s in first["suggestions"]]
    assert all(0 <= s["confidence"] <= 1 for s in shown)
    events = [(e["type"], e["slug"]) for e in ticket["transcript"]["events"]]
    assert ("suggestion_opened", slug) in events and ("feedback", slug) in events
    assert [e["data"] for e in ticket["transcript"]["events"] if e["type"] == "feedback"] == [{"helpful": False}]
    [row] = committed(settings.db_path, "SELECT transcript FROM tickets WHERE id = ?", (r.json()["id"],))
    assert "printer jam" not in row["transcript"]


def test_no_session_means_an_empty_transcript(client):
    client.get("/api/v1/suggest", params={"q": "vpn error 809"})  # recorded with session ""
    r = post(client, session="")
    assert r.status_code == 201
    assert get_ticket(client.app.state["db"], r.json()["id"])["transcript"]["requests"] == []


@pytest.mark.parametrize("field, value, message", [
    ("name", "", "enter your name"),
    ("name", "x" * 201, "at most 200"),
    ("email", "not-an-email", "valid email"),
    ("email", "ann@example.com\r\nBcc: evil@example.com", "valid email"),
    ("email", "Ann <ann@example.com>", "valid email"),
    ("email", "a" * 245 + "@example.com", "valid email"),
    ("subject", "", "enter a subject"),
    ("subject", "s" * 201, "at most 200"),
    ("subject", "Help\r\nBcc: evil@example.com", "one line"),
    ("subject", "Help\u202eevil", "one line"),
    ("body", "   ", "describe"),
    ("body", "x" * 20_001, "at most 20,000"),
    ("body", "nul\x00byte", "control"),
    ("category", "Not A Slug!", "unknown category"),
    ("category", "c" * 51, "unknown category"),
    ("locale", "english please", "language tag"),
    ("session", 42, "must be text"),
    ("request_id", "r_1; DROP TABLE tickets", "at most 100"),
    ("name", 42, "must be text"),
])
def test_each_bad_field_is_a_422_naming_it(client, settings, field, value, message):
    r = post(client, **{field: value})
    assert r.status_code == 422, r.text
    extra = r.json()["extra"]
    assert [e["key"] for e in extra] == [field]
    assert message in extra[0]["message"]
    assert committed(settings.db_path, "SELECT count(*) AS n FROM tickets")[0]["n"] == 0


def test_all_bad_fields_are_listed_at_once(client):
    r = client.post("/api/v1/tickets", json={"email": "nope", "subject": "a\nb", "body": "x" * 20_001})
    assert r.status_code == 422
    assert sorted(e["key"] for e in r.json()["extra"]) == ["body", "email", "name", "subject"]


def test_limits_are_inclusive(client):
    r = post(client, name="n" * 200, subject="s" * 200, body="b" * 20_000, category="c" * 50,
             session="s" * 100, email="a" * 64 + "@" + "d" * 63 + ".example.com")
    assert r.status_code == 201, r.text


def test_unicode_and_crlf_bodies_are_kept(client, settings):
    r = post(client, name="Анна Ли", subject="Не работает VPN", body="строка 1\r\nстрока 2\tконец", locale="ru")
    assert r.status_code == 201, r.text
    [row] = committed(settings.db_path, "SELECT name, body, locale FROM tickets")
    assert tuple(row.values()) == ("Анна Ли", "строка 1\nстрока 2\tконец", "ru")


def test_honeypot_pretends_success_and_stores_nothing(client, settings):
    r = post(client, website="http://spam.example")
    assert r.status_code == 201
    assert re.fullmatch(r"T-[A-Z2-7]{10}", r.json()["id"]) and r.json()["status"] == "stored"
    assert committed(settings.db_path, "SELECT count(*) AS n FROM tickets")[0]["n"] == 0
    assert committed(settings.db_path, "SELECT count(*) AS n FROM events WHERE type = 'ticket_created'")[0]["n"] == 0
    assert post(client, website="").status_code == 201
    assert committed(settings.db_path, "SELECT count(*) AS n FROM tickets")[0]["n"] == 1


def test_rate_limit_per_ip_is_a_429(client, settings):
    limit = settings.rate_tickets_per_hour
    codes = [post(client, subject=f"ticket {n}").status_code for n in range(limit)]
    assert codes == [201] * limit
    r = post(client)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert committed(settings.db_path, "SELECT count(*) AS n FROM tickets")[0]["n"] == limit


def test_create_ticket_library_api(services, settings):
    db = services["db"]
    limiter = RateLimiter(db)
    one = settings.replace(rate_tickets_per_hour=1)
    ticket = create_ticket(db, one, {**GOOD, "email": "Ann@EXAMPLE.com"}, "10.0.0.1", limiter=limiter)
    assert ticket["email"] == "Ann@example.com"  # the domain is case-insensitive, the local part is not
    assert get_ticket(db, ticket["id"])["idempotency_key"] == ticket["idempotency_key"]
    with pytest.raises(RateLimitedError):
        create_ticket(db, one, GOOD, "10.0.0.1", limiter=limiter)
    create_ticket(db, one, GOOD, "10.0.0.2", limiter=limiter)  # another address has its own budget
    with pytest.raises(ValidationError) as info:
        create_ticket(db, settings, {}, "10.0.0.3")
    assert sorted(e["key"] for e in info.value.errors) == ["body", "email", "name", "subject"]


def test_tickets_need_a_json_body(client):
    r = client.post("/api/v1/tickets", content="name=Ann", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
