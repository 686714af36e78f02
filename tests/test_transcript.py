"""A ticket's transcript lists settled requests, not every typing pause (kb/tickets/transcript.py).

Requests are made through the real suggest API (the real model answers them); only their times are
set afterwards, to the pauses a person typing would leave.
"""

from __future__ import annotations

import json
import time

from kb.storage import schema
from kb.storage.settle import CONTINUE_SECONDS, SETTLE_SECONDS
from kb.tickets.intake import get_ticket
from kb.tickets.outbox import email_text, payload

TICKET = {"name": "Ann Lee", "email": "ann.lee@example.com", "subject": "Help", "body": "Please help.",
          "locale": "en"}


def new_session(client) -> str:
    return client.post("/api/v1/session", json={}).json()["session"]


def typed(client, token: str, steps: list[tuple[float, str]]) -> list[str]:
    """Ask for suggestions for each (seconds before now, text) and date the logged rows so; their ids."""
    ids = [client.get("/api/v1/suggest", params={"q": text, "session": token}).json()["request_id"]
           for _, text in steps]
    db = client.app.state["db"]
    db.flush()
    now, r = time.time(), schema.requests
    with db.write() as conn:
        for rid, (ago, _) in zip(ids, steps):
            conn.execute(r.update().where(r.c.id == rid).values(ts=now - ago))
    return ids


def file_ticket(client, token: str, request_id: str = "") -> dict:
    r = client.post("/api/v1/tickets", json={**TICKET, "session": token, "request_id": request_id})
    assert r.status_code == 201, r.text
    return get_ticket(client.app.state["db"], r.json()["id"])


def test_a_request_typed_with_pauses_is_one_request_with_its_full_text(client, settings):
    token = new_session(client)
    ids = typed(client, token, [(60, "my"), (57, "my laptop"), (40, "my laptop screen is cracked")])
    ticket = file_ticket(client, token, ids[-1])
    [request] = ticket["transcript"]["requests"]
    assert request["query"] == "my laptop screen is cracked" and request["id"] == ids[-1]
    assert request["typed_rows"] == 3 and request["folded"] == ids[:2]
    assert request["started"] < request["ts"] and request["kind"] == "suggest"
    assert ticket["request_id"] == ids[-1]
    text = email_text(settings, ticket)
    assert '1. "my laptop screen is cracked"' in text and "typed in 3 steps" in text
    assert '"my laptop"' not in text and "2. " not in text


def test_an_event_on_a_folded_prefix_lands_on_its_settled_request(client):
    token = new_session(client)
    ids = typed(client, token, [(30, "outlook"), (25, "outlook keeps asking for my password")])
    client.post("/api/v1/events", json={"session": token, "type": "suggestions_shown",
                                        "data": {"request_id": ids[0], "items": []}})
    ticket = file_ticket(client, token, ids[-1])
    [request] = ticket["transcript"]["requests"]
    [shown] = [e for e in ticket["transcript"]["events"] if e["type"] == "suggestions_shown"]
    assert shown["request_id"] == request["id"] == ids[-1] and shown["prefix_id"] == ids[0]


def test_two_different_requests_minutes_apart_stay_two(client):
    token = new_session(client)
    later = 10 * 60
    assert later > CONTINUE_SECONDS
    ids = typed(client, token, [(later + 8, "vpn"), (later + 5, "vpn is down"), (12, "printer"),
                                (8, "printer jammed")])
    requests = file_ticket(client, token, ids[-1])["transcript"]["requests"]
    assert [r["query"] for r in requests] == ["vpn is down", "printer jammed"]
    assert [r["typed_rows"] for r in requests] == [2, 2] and [r["id"] for r in requests] == [ids[1], ids[3]]


def test_pressing_enter_ends_a_request_even_when_the_next_text_continues_it(client):
    token = new_session(client)
    ids = typed(client, token, [(30, "vpn"), (20, "vpn error 809")])
    client.post("/api/v1/events", json={"session": token, "type": "request_settled",
                                        "data": {"request_id": ids[0], "text": "vpn", "by": "enter"}})
    requests = file_ticket(client, token, ids[-1])["transcript"]["requests"]
    assert [r["query"] for r in requests] == ["vpn", "vpn error 809"]


def test_a_request_ticketed_while_still_being_typed_is_in_the_transcript(client):
    for named in (True, False):  # from the widget (request_id) and from the contact form (none)
        token = new_session(client)
        ids = typed(client, token, [(0.9, "wifi keeps"), (0.1, "wifi keeps dropping")])
        ticket = file_ticket(client, token, ids[-1] if named else "")
        [request] = ticket["transcript"]["requests"]
        assert ticket["ts"] - request["ts"] < SETTLE_SECONDS  # filed while the request was still being typed
        assert (request["query"], request["typed_rows"]) == ("wifi keeps dropping", 2), named
        assert ticket["request_id"] == (ids[-1] if named else "")


def test_a_russian_request_typed_with_pauses_folds_the_same_way(client):
    token = new_session(client)
    ids = typed(client, token, [(50, "не"), (47, "не работает"), (35, "не работает впн")])
    [request] = file_ticket(client, token, ids[-1])["transcript"]["requests"]
    assert request["query"] == "не работает впн" and request["typed_rows"] == 3
    assert request["folded"] == ids[:2]


def test_a_transcript_stored_before_requests_were_settled_still_reads(client, settings):
    old = {"requests": [{"id": f"r{n}", "ts": 1.0e9 + n, "kind": "suggest", "query": q, "locale": "en",
                         "answered": n == 2, "top_confidence": 0.5, "fallback": False,
                         "results": [{"slug": "vpn-error-codes", "anchor": "", "confidence": 0.5}]}
                        for n, q in enumerate(["vp", "vpn err", "vpn error 809"])],
           "events": [{"ts": 1.0e9 + 3, "type": "feedback", "request_id": "r2", "slug": "vpn-error-codes",
                       "data": {"helpful": False}}]}
    db = client.app.state["db"]
    with db.write() as conn:
        conn.execute(schema.tickets.insert().values(
            id="T-OLDOLDOLD", ts=1.0e9 + 10, name="Ann", email="ann@example.com", subject="vpn", body="b",
            category="", locale="en", session="s", request_id="r2", transcript=json.dumps(old),
            idempotency_key="old-key", ip_hash="h", status="stored"))
    ticket = get_ticket(db, "T-OLDOLDOLD")
    assert payload(ticket)["transcript"] == old
    text = email_text(settings, ticket)
    assert '1. "vp" (no confident answer)' in text and '3. "vpn error 809" (answered)' in text
    assert "steps" not in text and '"helpful": false' in text
