"""What one visitor can learn of another (issue 17, finding 6), and what typed text can do to a
staff terminal (finding 7). Each test is written from the issue's description of the attack."""

from __future__ import annotations

import json
import re
import time

import pytest
from click.testing import CliRunner

from kb.storage.database import DEFER_SECONDS
from kb.tickets.intake import get_ticket
from servers import committed

TICKET = {"name": "Mallory", "email": "mallory@example.com", "subject": "Please help", "body": "Something broke."}
SECRET_TEXT = "my manager Ivanov is bullying me, vpn error 809"
HOSTILE = "vpn \x1b]0;owned\x07\x1b[8m hidden \x9b31m\x00\r\nline"


def new_session(client) -> tuple[str, str]:
    """(token, the session id it names) from POST /api/v1/session."""
    r = client.post("/api/v1/session", json={})
    assert r.status_code == 200 and r.json()["new"] is True
    token = r.json()["session"]
    return token, token.rpartition(".")[0]


@pytest.fixture
def victim(client):
    """A visitor who typed something private: their token, session id and request id."""
    token, sid = new_session(client)
    answer = client.get("/api/v1/suggest", params={"q": SECRET_TEXT, "session": token}).json()
    return {"token": token, "sid": sid, "request_id": answer["request_id"]}


# 6. A ticket never echoes or attaches someone else's requests.


def test_another_visitors_request_id_is_neither_echoed_nor_attached(client, victim):
    """The issue: POST /api/v1/tickets with another visitor's request_id (from a /go?r= link) -> their text."""
    mine, _ = new_session(client)
    for session in (mine, "", None):
        r = client.post("/api/v1/tickets", json={**TICKET, "session": session, "request_id": victim["request_id"]})
        assert r.status_code == 201, r.text
        assert set(r.json()) == {"id", "status", "created"}
        assert "Ivanov" not in r.text
        ticket = get_ticket(client.app.state["db"], r.json()["id"])
        assert ticket["request_id"] == "" and "Ivanov" not in json.dumps(ticket["transcript"])


@pytest.mark.parametrize("name", ["raw id", "forged signature", "token of another server", "staff cookie", "old style"])
def test_another_visitors_session_cannot_be_named(client, victim, settings, name):
    """The issue: ... or their session id -> 201 and the body contains that person's typed text."""
    from kb.staff import auth

    key = auth.secret_key(client.app.state["db"], settings)
    claimed = {"raw id": victim["sid"], "forged signature": victim["sid"] + ".AAAA",
               "token of another server": auth.sign(b"another key", victim["sid"]),
               "staff cookie": auth.sign(key, victim["sid"]), "old style": "9b2f5e0c-4a1d-4c39-9d7e-2f1d3b6a7c80"}[name]
    r = client.post("/api/v1/tickets", json={**TICKET, "session": claimed, "request_id": victim["request_id"]})
    assert r.status_code == 201 and "Ivanov" not in r.text
    ticket = get_ticket(client.app.state["db"], r.json()["id"])
    assert ticket["session"] == "" and ticket["transcript"] == {"requests": [], "events": []}


def test_the_submitting_session_gets_its_own_transcript(client, victim):
    r = client.post("/api/v1/tickets", json={**TICKET, "session": victim["token"], "request_id": victim["request_id"]})
    assert r.status_code == 201 and "Ivanov" not in r.text  # not even the sender's own text is echoed
    ticket = get_ticket(client.app.state["db"], r.json()["id"])
    assert ticket["session"] == victim["sid"] and ticket["request_id"] == victim["request_id"]
    assert [q["query"] for q in ticket["transcript"]["requests"]] == [SECRET_TEXT]


def test_a_request_of_the_session_older_than_the_window_is_attached_only_for_that_session(client, victim, settings):
    from kb.storage import schema

    db = client.app.state["db"]
    db.flush()
    r = schema.requests
    with db.write() as conn:  # the request leaves the transcript window
        conn.execute(r.update().where(r.c.id == victim["request_id"]).values(ts=r.c.ts - 7 * 86400))
    mine, _ = new_session(client)
    theirs = client.post("/api/v1/tickets", json={**TICKET, "session": mine, "request_id": victim["request_id"]})
    own = client.post("/api/v1/tickets", json={**TICKET, "session": victim["token"], "request_id": victim["request_id"]})
    assert get_ticket(db, theirs.json()["id"])["transcript"]["requests"] == []
    assert [q["query"] for q in get_ticket(db, own.json()["id"])["transcript"]["requests"]] == [SECRET_TEXT]


def test_session_tokens_are_kept_when_valid_and_replaced_when_not(client, victim):
    kept = client.post("/api/v1/session", json={"session": victim["token"]}).json()
    assert kept == {"session": victim["token"], "new": False}
    for bad in (victim["sid"], victim["token"][:-2] + "xx", "", "s_" + "a" * 24 + ".x"):
        fresh = client.post("/api/v1/session", json={"session": bad}).json()
        assert fresh["new"] is True and fresh["session"] not in (victim["token"], bad)
        assert re.fullmatch(r"s_[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{43}", fresh["session"])


def test_an_invalid_session_records_no_session(client, settings, victim):
    for endpoint, body in (("/api/v1/events", {"session": victim["sid"], "type": "ticket_started"}),
                           ("/api/v1/feedback", {"session": victim["sid"], "helpful": False, "slug": "vpn-connect"})):
        assert client.post(endpoint, json=body).status_code in (201, 202)
    client.get("/api/v1/suggest", params={"q": "printer jam", "session": victim["sid"]})
    time.sleep(DEFER_SECONDS * 2)
    sessions = {r["session"] for table in ("events", "feedback", "requests")
                for r in committed(settings.db_path, f"SELECT session FROM {table}")}
    assert sessions == {"", victim["sid"]}
    rows = committed(settings.db_path, "SELECT query FROM requests WHERE session = ?", (victim["sid"],))
    assert [r["query"] for r in rows] == [SECRET_TEXT]  # only what the token's holder typed


def test_a_portal_cookie_naming_another_session_gets_a_new_session(client, victim):
    r = client.get("/search", params={"q": "printer jam"}, headers={"cookie": f"kb_session={victim['sid']}"})
    fresh = r.cookies.get("kb_session")
    assert fresh and not fresh.startswith(victim["sid"])
    client.post("/contact", data={"name": "M", "email": "m@example.com", "subject": "s", "description": "d"},
                headers={"cookie": f"kb_session={fresh}"})
    [row] = committed(client.app.state["settings"].db_path, "SELECT session, transcript FROM tickets")
    assert row["session"] == fresh.rpartition(".")[0] and "Ivanov" not in row["transcript"]


# 7. Typed control characters are stripped where they are stored, and never reach a terminal.


def test_control_characters_are_stripped_from_stored_text(client, settings):
    token, sid = new_session(client)
    for _ in range(8):  # the issue sent the query eight times, so that it became a gap
        assert client.get("/api/v1/suggest", params={"q": HOSTILE, "session": token}).status_code == 200
    client.post("/api/v1/feedback", json={"session": token, "helpful": False, "slug": "vpn-connect", "comment": HOSTILE})
    client.post("/api/v1/events", json={"session": token, "type": "request_settled",
                                        "data": {"text": HOSTILE, HOSTILE: [HOSTILE, {"k": HOSTILE}]}})
    client.post("/articles/vpn-connect/feedback", data={"helpful": "no", "comment": HOSTILE})
    time.sleep(DEFER_SECONDS * 2)
    stored = [row["v"] for sql in ("SELECT query AS v FROM requests", "SELECT comment AS v FROM feedback",
                                    "SELECT data AS v FROM events") for row in committed(settings.db_path, sql)]
    text = json.dumps(stored, ensure_ascii=False)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "".join(stored)), text
    assert "\\u001b" not in text and "\\u0007" not in text and "\\u009b" not in text
    assert "vpn ]0;owned[8m hidden 31m" in text and "hidden 31m\nline" in "".join(stored)  # the words remain


def test_cli_output_never_carries_a_terminal_escape(client, settings, embedder, monkeypatch, tmp_path):
    """Staff commands print typed text (gap labels, ticket subjects) escaped, stored before the fix or not."""
    from kb.cli import main
    from kb.storage.database import record_request

    from kb.storage import schema

    db = client.app.state["db"]
    with db.write() as conn:  # rows written raw, as a database from before the fix holds them
        conn.execute(schema.requests.insert(), [
            {"id": f"r_{n:016x}", "ts": time.time() - 60 + n, "kind": "suggest", "session": f"s{n}",
             "query": f"coffee machine broken {HOSTILE} {n}", "locale": "en", "answered": 0, "top_confidence": 0.1,
             "fallback": 0, "results": "[]", "source": "api"} for n in range(8)])
        conn.execute(schema.tickets.insert().values(
            id="T-RAWRAWRAW1", ts=time.time(), name="n", email="e@example.com", subject=HOSTILE, body="b", category="",
            locale="en", session="", request_id="", transcript="{}", idempotency_key="k", ip_hash="h", status="stored"))
    record_request(db, request_id="r_x", kind="suggest", session="", query=HOSTILE, locale="en", answered=False,
                   top_confidence=0.1, fallback=False, results=[])
    db.flush()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("kb.content.indexer.make_embedder", lambda s: embedder)
    runner, data = CliRunner(), str(settings.data)
    outputs = []
    for argv in (["gaps", "--refresh"], ["gaps"], ["gaps", "--json"], ["stats"], ["stats", "--json"], ["tickets"],
                 ["tickets", "--json"]):
        result = runner.invoke(main, [*argv, "--data", data])
        assert result.exit_code == 0, (argv, result.output)
        outputs.append(result.output)
    everything = "".join(outputs)
    assert not any(c in everything for c in "\x1b\x07\x9b\x00\r"), repr(everything[-500:])
    assert "]0;owned" in everything
