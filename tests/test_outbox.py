"""The outbox against real local sinks: an HTTP receiver and an aiosmtpd SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from kb.tickets.outbox import BATCH, LEASE_SECONDS, backoff, deliver_all, deliver_due, email_message, retry
from kb.settings import Settings
from kb.storage.database import Database, record_event, record_request
from kb.storage.schema import outbox, tickets
from kb.tickets.intake import create_ticket, get_ticket
from servers import TEST_HOST, committed, free_port

SECRET = "s3cret-for-tests"
FORM = {"name": "Ann Lee", "email": "ann@example.com", "subject": "VPN drops", "body": "It drops every hour."}


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # the connections the receiver hangs up on purpose


class Receiver:
    """A real HTTP webhook receiver that checks signatures and dedupes by Idempotency-Key."""

    def __init__(self, port: int = 0, delay: float = 0.0) -> None:
        self.posts: list[dict] = []  # every POST that arrived, duplicates included
        self.tickets: dict[str, dict] = {}  # what the desk keeps: one entry per idempotency key
        self.bad_signatures = 0
        self.drop_responses = 0  # record the POST, then hang up before answering (lost ack)
        self.status = 200
        self.delay = delay
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get("X-KB-Signature", "")):
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                time.sleep(receiver.delay)
                key = self.headers["Idempotency-Key"]
                with receiver.lock:
                    receiver.posts.append({"key": key, "headers": dict(self.headers), "body": json.loads(raw)})
                    if receiver.status == 200:
                        receiver.tickets.setdefault(key, json.loads(raw))
                    drop = receiver.drop_responses > 0
                    receiver.drop_responses -= drop
                if drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kb"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "kb.db")
    yield database
    database.close()


def make_settings(tmp_path, **changes) -> Settings:
    base = dict(data=tmp_path, webhook_secret=SECRET, outbox_backoff_seconds=2.0, outbox_max_attempts=12,
                base_url="https://desk.example.com")
    return Settings.load(environ={}, config=tmp_path / "none.toml", **{**base, **changes})


def test_webhook_is_signed_and_carries_the_transcript(tmp_path, db, receiver):
    settings = make_settings(tmp_path, webhook_url=receiver.url)
    record_request(db, request_id="r_1", kind="suggest", session="S", query="vpn error 809", locale="en",
                   answered=False, top_confidence=0.2, fallback=False,
                   results=[{"slug": "vpn-error-codes", "anchor": "809", "confidence": 0.2}])
    record_event(db, session="S", type="feedback", request_id="r_1", slug="vpn-error-codes", data={"helpful": False})
    ticket = create_ticket(db, settings, {**FORM, "session": "S"}, "127.0.0.1")
    assert ticket["sinks"] == ["webhook"] and ticket["status"] == "pending"
    assert deliver_due(db, settings)["delivered"] == 1
    [post] = receiver.posts
    assert receiver.bad_signatures == 0
    headers = post["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == ticket["idempotency_key"]
    [row] = committed(settings.db_path, "SELECT * FROM outbox")
    assert headers["X-KB-Delivery"] == str(row["id"])
    assert post["body"]["idempotency_key"] == ticket["idempotency_key"]
    assert post["body"]["ticket"]["id"] == ticket["id"] and post["body"]["ticket"]["body"] == FORM["body"]
    assert "ip_hash" not in post["body"]["ticket"]
    assert [r["query"] for r in post["body"]["transcript"]["requests"]] == ["vpn error 809"]
    assert post["body"]["transcript"]["requests"][0]["results"][0]["slug"] == "vpn-error-codes"
    assert post["body"]["transcript"]["events"][0]["data"] == {"helpful": False}
    assert (row["status"], row["attempts"]) == ("delivered", 1) and row["delivered_at"] > 0
    assert get_ticket(db, ticket["id"])["status"] == "delivered"
    assert deliver_due(db, settings)["claimed"] == 0  # delivered rows are never sent again
    assert len(receiver.posts) == 1


def test_a_wrong_secret_is_refused_and_retried(tmp_path, db, receiver):
    settings = make_settings(tmp_path, webhook_url=receiver.url, webhook_secret="not-the-secret")
    create_ticket(db, settings, FORM, "127.0.0.1")
    counts = deliver_due(db, settings)
    assert counts["retrying"] == 1 and receiver.bad_signatures == 1 and not receiver.tickets
    [row] = committed(settings.db_path, "SELECT * FROM outbox")
    assert row["status"] == "pending" and "401" in row["last_error"]


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self) -> None:
            self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

        async def handle_DATA(self, server, session, envelope):
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append((list(envelope.rcpt_tos), msg))
            return "250 OK"

    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


def test_email_reaches_a_real_smtp_server_without_injected_headers(tmp_path, db, smtp):
    controller, handler = smtp
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=controller.port,
                             smtp_from="kb@desk.example.com", smtp_to="desk@example.com")
    record_request(db, request_id="r_2", kind="suggest", session="S2", query="printer jam on floor 3",
                   locale="en", answered=True, top_confidence=0.8, fallback=False,
                   results=[{"slug": "printer-jam", "anchor": "", "confidence": 0.8}])
    ticket = create_ticket(db, settings, {**FORM, "session": "S2"}, "127.0.0.1")
    # create_ticket refuses line breaks; a row written some other way must still be safe.
    db.execute(update(tickets).where(tickets.c.id == ticket["id"]).values(
        subject="Help\r\nBcc: evil@example.com\nX-Evil: 1"))
    assert deliver_due(db, settings)["delivered"] == 1
    [(rcpt, msg)] = handler.messages
    assert rcpt == ["desk@example.com"]
    assert msg["Subject"] == f"[kb {ticket['id']}] Help Bcc: evil@example.com X-Evil: 1"
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert sorted(k.lower() for k in msg.keys() if k.lower() not in ("x-peer", "x-mailfrom", "x-rcptto")) == sorted(
        ["subject", "from", "to", "reply-to", "message-id", "x-kb-ticket", "content-type",
         "content-transfer-encoding", "mime-version"])
    assert msg["Reply-To"].addresses[0].addr_spec == "ann@example.com"
    assert msg["Message-ID"] == f"<{ticket['idempotency_key']}@desk.example.com>"
    text = msg.get_content()
    assert FORM["body"] in text and '"printer jam on floor 3"' in text
    assert "https://desk.example.com/articles/printer-jam" in text


def test_email_message_strips_every_control_character(tmp_path):
    settings = make_settings(tmp_path, smtp_to="desk@example.com")
    ticket = {"id": "T-AAAAAAAAAA", "subject": "a\r\nBcc: evil@example.com\x00\u2028b\u0085c", "name": "Eve\r\nX: y",
              "email": "eve@example.com\r\nBcc: x@example.com", "idempotency_key": "k", "created": "now",
              "category": "", "locale": "", "body": "b", "transcript": {"requests": [], "events": []}}
    msg = email_message(settings, ticket)
    raw = msg.as_bytes().split(b"\n\n", 1)[0]  # the header block
    assert b"\nBcc:" not in raw and b"\nX: y" not in raw
    assert msg["Reply-To"] is None  # an invalid address is dropped, not passed through
    assert msg["Subject"] == "[kb T-AAAAAAAAAA] a Bcc: evil@example.com b c"
    named = email_message(settings, {**ticket, "email": "eve@example.com"})
    assert b"\nX: y" not in named.as_bytes().split(b"\n\n", 1)[0]
    assert named["Reply-To"].addresses[0].display_name == "Eve X: y"


def test_backoff_doubles_with_jitter_and_is_capped(tmp_path):
    settings = make_settings(tmp_path, outbox_backoff_seconds=2.0)
    for attempts, base in [(1, 2), (2, 4), (3, 8), (6, 64)]:
        delays = [backoff(settings, attempts) for _ in range(50)]
        assert all(0.9 * base <= d <= 1.1 * base for d in delays)
        assert len(set(delays)) > 1  # jittered, so retries of many rows spread out
    assert max(backoff(settings, n) for n in range(1, 60)) <= 3600


def test_a_down_receiver_gets_retries_then_every_ticket_exactly_once(tmp_path, db):
    port = free_port()  # nothing listens here yet
    settings = make_settings(tmp_path, webhook_url=f"http://127.0.0.1:{port}/hooks/kb",
                             outbox_backoff_seconds=1.0, outbox_max_attempts=50)
    ids = [create_ticket(db, settings, {**FORM, "subject": f"ticket {n}"}, "127.0.0.1")["id"] for n in range(30)]
    now = time.time()
    for _ in range(200):  # the receiver is down: every row is tried and rescheduled
        deliver_due(db, settings, now=now)
        now += 1.0
    rows = committed(settings.db_path, "SELECT * FROM outbox ORDER BY id")
    assert len(rows) == 30 and all(r["status"] == "pending" for r in rows)
    assert all(r["attempts"] >= 2 for r in rows) and all("ConnectError" in r["last_error"] for r in rows)
    # Doubling delays: in 200 s no row was tried more than 1 + log2(200) times, and waits grew long.
    assert max(r["attempts"] for r in rows) <= 9
    assert max(r["next_attempt_at"] for r in rows) - now > 30
    receiver = Receiver(port=port)
    receiver.drop_responses = 5  # five acknowledgements get lost: those are sent again
    try:
        for _ in range(100):
            now += 60.0
            deliver_all(db, settings, now=now)
            if all(r["status"] == "delivered" for r in committed(settings.db_path, "SELECT status FROM outbox")):
                break
        keys = {r["idempotency_key"] for r in committed(settings.db_path, "SELECT idempotency_key FROM tickets")}
        assert set(receiver.tickets) == keys  # none lost, one entry per ticket at the receiver
        assert len(receiver.posts) == 30 + 5  # only the lost acknowledgements were resent
        assert sorted(t["ticket"]["id"] for t in receiver.tickets.values()) == sorted(ids)
        assert all(t["status"] == "delivered" for t in committed(settings.db_path, "SELECT status FROM tickets"))
    finally:
        receiver.close()


def test_max_attempts_marks_failed_then_retry_delivers(tmp_path, db):
    port = free_port()
    settings = make_settings(tmp_path, webhook_url=f"http://127.0.0.1:{port}/hook", outbox_max_attempts=3,
                             outbox_backoff_seconds=1.0)
    ticket = create_ticket(db, settings, FORM, "127.0.0.1")
    now = time.time()
    outcomes, waits = [], []
    for _ in range(3):
        counts = deliver_due(db, settings, now=now)
        outcomes.append("failed" if counts["failed"] else "retrying" if counts["retrying"] else "none")
        waits.append(committed(settings.db_path, "SELECT next_attempt_at FROM outbox")[0]["next_attempt_at"] - now)
        now += 3600
    assert outcomes == ["retrying", "retrying", "failed"]
    assert 0.9 <= waits[0] <= 1.1 and 1.8 <= waits[1] <= 2.2  # backoff * 2^(attempts-1), ±10%
    assert deliver_due(db, settings, now=now + 10 * 3600)["claimed"] == 0  # failed rows stay put
    assert get_ticket(db, ticket["id"])["status"] == "failed"
    receiver = Receiver(port=port)
    try:
        assert retry(db) == 1
        assert get_ticket(db, ticket["id"])["status"] == "pending"
        assert deliver_due(db, settings)["delivered"] == 1
        assert list(receiver.tickets) == [ticket["idempotency_key"]]
        assert get_ticket(db, ticket["id"])["status"] == "delivered"
    finally:
        receiver.close()


def test_cli_lists_and_retries(tmp_path, db):
    from kb.cli import main

    port = free_port()
    settings = make_settings(tmp_path, webhook_url=f"http://127.0.0.1:{port}/hook", outbox_max_attempts=1)
    ticket = create_ticket(db, settings, FORM, "127.0.0.1")
    assert deliver_due(db, settings)["failed"] == 1
    env = {"KB_WEBHOOK_URL": settings.webhook_url, "KB_WEBHOOK_SECRET": SECRET,
           "KB_CONFIG": str(tmp_path / "none.toml")}
    runner = CliRunner()
    listed = runner.invoke(main, ["tickets", "--data", str(tmp_path), "--status", "failed", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["id"] == ticket["id"] and row["deliveries"][0]["status"] == "failed"
    assert "ConnectError" in row["deliveries"][0]["last_error"]
    assert runner.invoke(main, ["tickets", "--data", str(tmp_path), "--status", "delivered"], env=env).output.strip() == "No tickets."
    text = runner.invoke(main, ["tickets", "--data", str(tmp_path)], env=env).output
    assert ticket["id"] in text and "webhook  failed" in text
    receiver = Receiver(port=port)
    try:
        done = runner.invoke(main, ["tickets", "retry", "--data", str(tmp_path), ticket["id"]], env=env)
        assert done.exit_code == 0, done.output
        assert "1 deliveries reset; delivered 1" in done.output
        assert list(receiver.tickets) == [ticket["idempotency_key"]]
    finally:
        receiver.close()
    assert committed(settings.db_path, "SELECT status FROM tickets")[0]["status"] == "delivered"


def test_concurrent_workers_never_double_deliver(tmp_path, db):
    receiver = Receiver(delay=0.01)
    settings = make_settings(tmp_path, webhook_url=receiver.url)
    other = Database(settings.db_path)  # a second connection, as another process would have
    try:
        for n in range(30):
            create_ticket(db, settings, {**FORM, "subject": f"t{n}"}, "127.0.0.1")
        start = threading.Barrier(4)

        def work(database: Database) -> None:
            start.wait()
            for _ in range(20):
                deliver_due(database, settings, limit=3)

        threads = [threading.Thread(target=work, args=(d,)) for d in (db, db, other, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(receiver.posts) == 30 and len(receiver.tickets) == 30
        assert committed(settings.db_path, "SELECT count(*) AS n FROM outbox WHERE status = 'delivered'")[0]["n"] == 30
    finally:
        other.close()
        receiver.close()


def test_delivery_resumes_after_a_crash(tmp_path, receiver):
    settings = make_settings(tmp_path, webhook_url=receiver.url)
    first = Database(settings.db_path)
    ticket = create_ticket(first, settings, FORM, "127.0.0.1")
    now = time.time()
    # A worker claims the row and dies before delivering it.
    first.execute(update(outbox).values(claimed_until=now + LEASE_SECONDS))
    first.close()
    second = Database(settings.db_path)
    try:
        assert deliver_due(second, settings, now=now + 1)["claimed"] == 0  # the dead worker's lease holds
        assert deliver_due(second, settings, now=now + LEASE_SECONDS + 1)["delivered"] == 1
        assert list(receiver.tickets) == [ticket["idempotency_key"]]
    finally:
        second.close()


def test_more_than_one_batch_is_drained(tmp_path, db, receiver):
    settings = make_settings(tmp_path, webhook_url=receiver.url)
    for n in range(BATCH + 5):
        create_ticket(db, settings, {**FORM, "subject": f"t{n}"}, "127.0.0.1")
    assert deliver_all(db, settings)["delivered"] == BATCH + 5 == len(receiver.tickets)


def test_the_app_delivers_in_the_background(tmp_path, data_dir, embedder, receiver):
    from litestar.testing import TestClient

    from kb.web.app import build_services, create_app

    settings = make_settings(data_dir, webhook_url=receiver.url, articles=tmp_path / "none", allowed_hosts=(TEST_HOST,))
    services = build_services(settings, embedder=embedder)
    try:
        with TestClient(create_app(settings, services=services)) as client:
            token = client.post("/api/v1/session", json={}).json()["session"]
            client.get("/api/v1/suggest", params={"q": "vpn keeps disconnecting", "session": token})
            r = client.post("/api/v1/tickets", json={**FORM, "session": token})
            assert r.status_code == 201 and r.json()["status"] == "pending"
            deadline = time.monotonic() + 10
            while not receiver.tickets and time.monotonic() < deadline:
                time.sleep(0.05)
        [delivered] = receiver.tickets.values()
        assert delivered["ticket"]["id"] == r.json()["id"]
        assert [q["query"] for q in delivered["transcript"]["requests"]] == ["vpn keeps disconnecting"]
    finally:
        services["db"].close()


def test_a_runner_whose_lease_ran_out_counts_the_duplicate_and_leaves_the_row_delivered(tmp_path, db, receiver):
    from kb.tickets.outbox import _attempt, claim

    settings = make_settings(tmp_path, webhook_url=receiver.url)
    ids = [create_ticket(db, settings, {**FORM, "subject": f"ticket {n}"}, "127.0.0.1")["id"] for n in range(3)]
    now = time.time()
    stalled = claim(db, now)  # runner A claims, then stalls past its lease
    assert len(stalled) == 3
    assert deliver_due(db, settings, now=now + LEASE_SECONDS + 1)["delivered"] == 3  # runner B takes over
    assert [_attempt(db, settings, row, now) for row in stalled] == ["duplicates"] * 3  # A wakes up and sends
    receiver.status = 500
    assert deliver_due(db, settings, now=now + 2 * LEASE_SECONDS)["claimed"] == 0
    assert _attempt(db, settings, stalled[0], now) == "retrying"  # a late failure ...
    statuses = committed(settings.db_path, "SELECT status FROM outbox")
    assert [r["status"] for r in statuses] == ["delivered"] * 3  # ... never reopens a delivered row
    assert len(receiver.posts) == 3 + 3 + 1 and len(receiver.tickets) == 3  # one ticket per key after dedupe
    assert sorted(t["ticket"]["id"] for t in receiver.tickets.values()) == sorted(ids)
