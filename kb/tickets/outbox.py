"""Deliver stored tickets to their sinks (webhook, email) at least once, with retries and backoff.

All delivery state lives in the ``outbox`` table (see kb/tickets/intake.py), so delivery resumes
after a restart. A worker claims due rows in one write transaction (``claimed_until`` = now + 60 s)
so two workers, processes or replicas never send the same row at once: on PostgreSQL the claiming
select is ``FOR UPDATE SKIP LOCKED`` (replicas claiming together take disjoint rows without
waiting), on SQLite the write lock serialises claims. A worker that dies mid-delivery leaves a
claim that simply expires. Every attempt carries the ticket's idempotency key (the webhook's
``Idempotency-Key`` header, the email's Message-ID), so receivers that dedupe on it turn
at-least-once into exactly-once.

Duplicates: a runner whose lease ran out mid-attempt (a stalled process) may find, when it
finishes, that another runner delivered the row meanwhile; it counts a duplicate (``duplicates``
in the pass's counts, and a warning) and leaves the row delivered. A runner killed after the sink
accepted but before the row was marked cannot count anything: that send is repeated once its
claim expires, and only the receiver, deduplicating on the key, sees it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import random
import re
import smtplib
import ssl
import time
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Callable

import httpx

from sqlalchemy import ColumnElement, Connection, func, select, update

from kb.errors import KbError
from kb.settings import Settings
from kb.storage.database import Database, StoreError
from kb.storage.schema import outbox, tickets
from kb.tickets.intake import get_ticket, is_email

log = logging.getLogger("kb.tickets.outbox")

LEASE_SECONDS = 60.0
TIMEOUT_SECONDS = 10.0
MAX_DELAY_SECONDS = 3600.0
BATCH = 20


class DeliveryError(KbError):
    """The sink did not accept the ticket."""


def payload(ticket: dict[str, Any]) -> dict[str, Any]:
    """What every sink receives: the ticket, its transcript and the idempotency key."""
    fields = ("id", "created", "name", "email", "subject", "body", "category", "locale", "session", "request_id")
    return {"ticket": {k: ticket[k] for k in fields}, "transcript": ticket["transcript"],
            "idempotency_key": ticket["idempotency_key"]}


def sign(secret: str, body: bytes) -> str:
    """The X-KB-Signature value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@functools.cache
def _http() -> httpx.Client:
    """One pooled client for all deliveries (httpx clients are thread-safe; building one costs ~0.1 s)."""
    return httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)


def send_webhook(settings: Settings, ticket: dict[str, Any], delivery_id: int) -> None:
    """POST the signed JSON payload; any non-2xx answer or network error raises DeliveryError."""
    if not settings.webhook_url:
        raise DeliveryError("webhook_url is not set")
    body = json.dumps(payload(ticket), ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "X-KB-Signature": sign(settings.webhook_secret, body),
               "Idempotency-Key": ticket["idempotency_key"], "X-KB-Delivery": str(delivery_id),
               "User-Agent": "kb-outbox/1"}
    try:
        response = _http().post(settings.webhook_url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook: {type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook answered {response.status_code}: {response.text[:200]}")


def one_line(text: str, limit: int = 200) -> str:
    """Text made safe for a mail header: control and separator characters become spaces."""
    cleaned = "".join(" " if not c.isprintable() else c for c in text)
    return re.sub(r"\s+", " ", cleaned).strip()[:limit]


def email_message(settings: Settings, ticket: dict[str, Any]) -> EmailMessage:
    """The ticket as an email to the desk, replying to the user, with a stable Message-ID."""
    msg = EmailMessage()
    msg["Subject"] = f"[kb {ticket['id']}] {one_line(ticket['subject'])}"
    msg["From"] = settings.smtp_from
    msg["To"] = settings.smtp_to
    if is_email(ticket["email"]):
        try:
            msg["Reply-To"] = Address(display_name=one_line(ticket["name"]), addr_spec=ticket["email"])
        except (ValueError, IndexError):
            msg["Reply-To"] = ticket["email"]
    domain = settings.smtp_from.rsplit("@", 1)[-1].strip("> ") or "kb.localhost"
    msg["Message-ID"] = f"<{ticket['idempotency_key']}@{one_line(domain, 100).replace(' ', '')}>"
    msg["X-KB-Ticket"] = ticket["id"]
    msg.set_content(email_text(settings, ticket))
    return msg


def email_text(settings: Settings, ticket: dict[str, Any]) -> str:
    """Plain-text body: the ticket, then what the user asked (settled requests) and was shown before asking."""
    lines = [f"Ticket {ticket['id']} from {one_line(ticket['name'])} <{one_line(ticket['email'])}>",
             f"Created: {ticket['created']}   Category: {ticket['category'] or '-'}   Locale: {ticket['locale'] or '-'}",
             "", ticket["body"], "", "-- What the user tried before asking --"]
    requests = ticket["transcript"].get("requests", [])
    if not requests:
        lines.append("(no earlier requests in this session)")
    for n, r in enumerate(requests, 1):
        verdict = "answered" if r.get("answered") else "no confident answer"
        typed = r.get("typed_rows", 1)  # transcripts stored before 2026-11-29 listed every row
        steps = f", typed in {typed} steps" if isinstance(typed, int) and typed > 1 else ""
        lines.append(f"{n}. \"{one_line(str(r.get('query', '')), 500)}\" ({verdict}{steps})")
        for item in r.get("results", []):
            link = settings.urls.absolute(settings.urls.article(str(item.get("slug")), str(item.get("anchor") or "")))
            lines.append(f"   - {link}  confidence {item.get('confidence')}")
    events = ticket["transcript"].get("events", [])
    if events:
        lines += ["", "-- Widget events --"]
        for e in events:
            detail = json.dumps(e.get("data") or {}, ensure_ascii=False)[:300]
            lines.append(f"{e.get('type')} {e.get('slug') or ''} {detail}".rstrip())
    return "\n".join(lines) + "\n"


def send_email(settings: Settings, ticket: dict[str, Any], delivery_id: int) -> None:
    """Send the ticket email over SMTP (optional STARTTLS and login); failures raise DeliveryError."""
    if not (settings.smtp_host and settings.smtp_to):
        raise DeliveryError("smtp_host or smtp_to is not set")
    msg = email_message(settings, ticket)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"smtp: {type(exc).__name__}: {exc}") from exc


SINKS: dict[str, Callable[[Settings, dict[str, Any], int], None]] = {"webhook": send_webhook, "email": send_email}


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before the next attempt: doubling from outbox_backoff_seconds, ±10% jitter, ≤ 1 h."""
    delay = settings.outbox_backoff_seconds * 2 ** min(max(attempts - 1, 0), 30)
    return min(MAX_DELAY_SECONDS, delay * random.uniform(0.9, 1.1))


def claim(db: Database, now: float, limit: int = BATCH) -> list[dict[str, Any]]:
    """Atomically take up to `limit` due rows for this worker for LEASE_SECONDS."""
    o = outbox
    due = (o.c.status == "pending", o.c.next_attempt_at <= now, o.c.claimed_until < now)
    if db.one(select(o.c.id).where(*due).limit(1)) is None:
        return []  # the common case stays a read: no write lock every second
    with db.write() as conn:
        rows = conn.execute(select(o.c.id, o.c.ticket_id, o.c.sink, o.c.attempts).where(*due)
                            .order_by(o.c.next_attempt_at, o.c.id).limit(limit)
                            .with_for_update(skip_locked=True)).mappings().all()  # SQLite renders no FOR UPDATE
        if rows:
            conn.execute(update(o).where(o.c.id.in_([r["id"] for r in rows])).values(claimed_until=now + LEASE_SECONDS))
    return [dict(r) for r in rows]


def deliver_due(db: Database, settings: Settings, now: float | None = None, limit: int = BATCH) -> dict[str, int]:
    """One delivery pass over the due outbox rows; returns counts by outcome."""
    now = time.time() if now is None else now
    counts = {"claimed": 0, "delivered": 0, "retrying": 0, "failed": 0, "released": 0, "duplicates": 0}
    rows = claim(db, now, limit)
    counts["claimed"] = len(rows)
    started, down = time.monotonic(), set()
    for row in rows:
        # Stop while the lease still covers a whole attempt, and skip a sink that is down.
        if row["sink"] in down or time.monotonic() - started > LEASE_SECONDS - 3 * TIMEOUT_SECONDS:
            db.execute(update(outbox).where(outbox.c.id == row["id"]).values(claimed_until=0))
            counts["released"] += 1
            continue
        outcome = _attempt(db, settings, row, now)
        counts[outcome] += 1
        if outcome in ("retrying", "failed"):
            down.add(row["sink"])
    return counts


def deliver_all(db: Database, settings: Settings, now: float | None = None, passes: int = 50) -> dict[str, int]:
    """Delivery passes until nothing more is due now (bounded); returns the summed counts."""
    total: dict[str, int] = {}
    for _ in range(passes):
        counts = deliver_due(db, settings, now)
        total = {k: total.get(k, 0) + v for k, v in counts.items()}
        if counts["claimed"] < BATCH or counts["released"]:
            break
    return total


def _attempt(db: Database, settings: Settings, row: dict[str, Any], now: float) -> str:
    ticket = get_ticket(db, row["ticket_id"])
    try:
        if ticket is None:
            raise DeliveryError(f"ticket {row['ticket_id']} is missing")
        sender = SINKS.get(row["sink"])
        if sender is None:
            raise DeliveryError(f"unknown sink {row['sink']!r}")
        sender(settings, ticket, row["id"])
    except Exception as exc:  # any failure of one row must not stop the others
        attempts = row["attempts"] + 1
        failed = attempts >= settings.outbox_max_attempts
        message = exc.message if isinstance(exc, KbError) else f"{type(exc).__name__}: {exc}"
        log.warning("delivery %s of %s to %s failed (attempt %d): %s", row["id"], row["ticket_id"],
                    row["sink"], attempts, message)
        with db.write() as conn:  # unless another runner delivered it meanwhile (our lease ran out)
            conn.execute(update(outbox).where(outbox.c.id == row["id"], outbox.c.status != "delivered").values(
                status="failed" if failed else "pending", attempts=attempts, claimed_until=0,
                next_attempt_at=now + backoff(settings, attempts), last_error=message[:1000]))
            _settle(conn, row["ticket_id"])
        return "failed" if failed else "retrying"
    with db.write() as conn:
        marked = conn.execute(update(outbox).where(outbox.c.id == row["id"], outbox.c.status != "delivered").values(
            status="delivered", attempts=outbox.c.attempts + 1, delivered_at=time.time(), last_error="",
            claimed_until=0)).rowcount
        _settle(conn, row["ticket_id"])
    if not marked:  # our lease ran out mid-attempt and another runner delivered it too
        log.warning("ticket %s reached %s twice (same Idempotency-Key): a runner's lease ran out mid-delivery",
                    row["ticket_id"], row["sink"])
        return "duplicates"
    return "delivered"


def _settle(conn: Connection, ticket_id: str) -> None:
    """Set the ticket's status from its outbox rows: failed > pending > delivered."""
    states = set(conn.execute(select(outbox.c.status).where(outbox.c.ticket_id == ticket_id)).scalars())
    status = "failed" if "failed" in states else "pending" if "pending" in states else "delivered"
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(status=status))


def retry(db: Database, ids: list[str] | None = None, now: float | None = None) -> int:
    """Make failed rows (or the given tickets' or outbox ids' rows) pending and due now."""
    now = time.time() if now is None else now
    if ids:
        numbers = [int(i) for i in ids if i.isdigit()]
        names = [i for i in ids if not i.isdigit()]
        where: ColumnElement[bool] = outbox.c.ticket_id.in_(names) | outbox.c.id.in_(numbers)
    else:
        where = outbox.c.status == "failed"
    with db.write() as conn:
        ticket_ids = list(conn.execute(select(func.distinct(outbox.c.ticket_id)).where(where)).scalars())
        count = conn.execute(update(outbox).where(where).values(
            status="pending", attempts=0, next_attempt_at=now, claimed_until=0)).rowcount
        for ticket_id in ticket_ids:
            _settle(conn, ticket_id)
    return count


async def run_outbox(db: Database, settings: Settings, interval: float = 1.0) -> None:
    """Deliver due rows about every `interval` seconds, off the event loop, until cancelled."""
    from anyio import to_thread

    unreachable = False
    while True:
        try:
            counts = await to_thread.run_sync(deliver_due, db, settings, abandon_on_cancel=True)
            unreachable = False
            if counts["claimed"] == BATCH and not counts["released"]:
                continue  # more are due: go on without sleeping
        except StoreError as exc:  # the database restarts: said once, tried again every interval
            if not unreachable:
                log.warning("outbox waits for the database: %s", exc.message)
            unreachable = True
        except Exception:  # the loop must outlive any single failure
            log.exception("outbox pass failed")
        await asyncio.sleep(interval)
