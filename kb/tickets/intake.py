"""Tickets: validation, the transcript of the session, and one durable write with the outbox.

Tables (kb/storage/schema.py):

- ``tickets``: id ("T-" + 10 base32 chars), ts, name, email, subject, body, category, locale,
  session, request_id, transcript (JSON: the session's settled requests and events, see
  kb/tickets/transcript.py), idempotency_key (uuid4, unique),
  ip_hash (sha256 of ip + a secret shared by every replica; raw IPs are never stored), status (``pending`` until every
  sink has it, then ``delivered``; ``failed`` if a sink gave up; ``stored`` when no sink is
  configured).
- ``outbox``: one row per ticket and configured sink ('webhook' | 'email'): status
  pending|delivered|failed, attempts, next_attempt_at, last_error, delivered_at, claimed_until.

A ticket and its outbox rows are inserted in the same write transaction, committed before
`create_ticket` returns, so an acknowledged ticket is never lost; kb/tickets/outbox.py delivers them.

Honeypot: a non-empty ``website`` field (hidden from people, filled by bots) gets the same
success answer with a fake id, and nothing is stored, so bots learn nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import time
import unicodedata
import uuid
from typing import Any

from sqlalchemy import select

from kb.clock import iso
from kb.errors import ValidationError
from kb.settings import Settings
from kb.storage import schema
from kb.storage.database import Database
from kb.storage.limits import RateLimiter
from kb.storage.secrets import IP_SALT, shared_secret
from kb.tickets.transcript import loads, transcript

log = logging.getLogger("kb.tickets.intake")

# The longest value of each ticket field, in characters: the API, the contact form and the widget use these.
FIELD_CHARS = {"name": 200, "email": 254, "subject": 200, "body": 20_000}
STATUSES = ("pending", "delivered", "failed", "stored")
CATEGORIES = ("access", "accounts", "email", "facilities", "finance", "hardware", "hr", "network",
              "onboarding", "phones", "printing", "security", "software", "other")
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,3}$")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def sinks(settings: Settings) -> list[str]:
    """The sinks tickets are delivered to with these settings."""
    out = []
    if settings.webhook_url:
        out.append("webhook")
    if settings.smtp_host and settings.smtp_to:
        out.append("email")
    return out


def new_ticket_id() -> str:
    """'T-' and 10 random base32 characters (50 bits)."""
    return "T-" + base64.b32encode(secrets.token_bytes(10)).decode()[:10]


def is_email(value: str) -> bool:
    """Whether value is a plain addr-spec (no display name, comments or whitespace), ≤ 254 chars."""
    return len(value) <= FIELD_CHARS["email"] and len(value.split("@", 1)[0]) <= 64 and bool(_EMAIL.match(value))


def has_controls(text: str, multiline: bool = False) -> bool:
    """Whether text holds control characters, line breaks or bidi overrides (one-line fields).

    Multi-line text may hold newlines, tabs and bidi marks (Arabic or Hebrew prose needs them).
    """
    if multiline:
        return any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text)
    return any(c in _BIDI or unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


def validate(data: dict[str, Any]) -> dict[str, str]:
    """Clean the submitted fields or raise ValidationError listing every bad one."""
    errors: list[dict[str, str]] = []
    out: dict[str, str] = {}

    def text(key: str) -> str:
        value = data.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            errors.append({"key": key, "message": "must be text"})
            return ""
        return value.strip()

    def check(key: str, ok: bool, message: str) -> None:
        if not ok and not any(e["key"] == key for e in errors):
            errors.append({"key": key, "message": message})

    name, email, subject = text("name"), text("email"), text("subject")
    check("name", bool(name), "enter your name")
    check("name", len(name) <= FIELD_CHARS["name"], f"at most {FIELD_CHARS['name']} characters")
    check("name", not has_controls(name), "must not contain control characters or line breaks")
    check("email", bool(email), "enter your email address")
    check("email", is_email(email), "enter a valid email address, like name@example.com")
    check("subject", bool(subject), "enter a subject")
    check("subject", len(subject) <= FIELD_CHARS["subject"], f"at most {FIELD_CHARS['subject']} characters")
    check("subject", not has_controls(subject), "must be one line without control characters")
    body = text("body").replace("\r\n", "\n").replace("\r", "\n")
    check("body", bool(body), "describe your problem")
    check("body", len(body) <= FIELD_CHARS["body"], f"at most {FIELD_CHARS['body']:,} characters")
    check("body", not has_controls(body, multiline=True), "must not contain control characters")
    category = text("category").lower()
    check("category", not category or category in CATEGORIES or bool(_SLUG.match(category)),
          "unknown category (letters, digits and dashes, at most 50)")
    locale = text("locale")
    check("locale", not locale or bool(_LOCALE.match(locale)), "not a language tag like en or ru-RU")
    for key in ("session", "request_id"):
        value = text(key)
        check(key, not value or bool(_TOKEN.match(value)), "at most 100 letters, digits, '_', '.', ':' or '-'")
        out[key] = value
    if errors:
        raise ValidationError(errors)
    domain = email.rsplit("@", 1)[1]
    out.update(name=name, email=email[: -len(domain)] + domain.lower(), subject=subject, body=body,
               category=category, locale=locale.lower())
    return out


def ip_hash(db: Database, settings: Settings, ip: str) -> str:
    """sha256 of the client address and a secret: counts repeat senders, never stores the IP."""
    salt = settings.secret_key or shared_secret(db, IP_SALT)
    return hashlib.sha256(f"{salt}|{ip}".encode()).hexdigest()


def create_ticket(db: Database, settings: Settings, data: dict[str, Any], ip: str,
                  limiter: RateLimiter | None = None) -> dict[str, Any]:
    """Validate, rate-limit and durably store a ticket with its transcript and outbox rows."""
    if limiter is not None:
        limiter.reserve("tickets:" + ip, settings.rate_tickets_per_hour, 3600)
    fields = validate(data)
    now = time.time()
    if str(data.get("website") or "").strip():
        log.info("honeypot field filled: ticket dropped")
        return {"id": new_ticket_id(), "status": "pending" if sinks(settings) else "stored", "created": iso(now), "ts": now,
                "transcript": {"requests": [], "events": []}, "transcript_requests": 0, **fields}
    since = now - settings.implicit_window_hours * 3600
    transcript_of = transcript(db, fields["session"], fields["request_id"], since,
                               session_idle=settings.session_idle_minutes * 60.0)
    if not any(r["id"] == fields["request_id"] for r in transcript_of["requests"]):
        fields["request_id"] = ""  # not this session's request: the ticket does not point at it
    record: dict[str, Any] = {"id": new_ticket_id(), "ts": now, **fields,
              "transcript": transcript_of,
              "idempotency_key": str(uuid.uuid4()), "ip_hash": ip_hash(db, settings, ip)}
    targets = sinks(settings)
    record["status"] = "pending" if targets else "stored"
    with db.write() as conn:
        conn.execute(schema.tickets.insert().values(
            **{**record, "transcript": json.dumps(record["transcript"], ensure_ascii=False)}))
        for sink in targets:
            conn.execute(schema.outbox.insert().values(
                ticket_id=record["id"], sink=sink, status="pending", attempts=0, next_attempt_at=now,
                last_error="", delivered_at=None, claimed_until=0))
        conn.execute(schema.events.insert().values(
            ts=now, session=fields["session"], type="ticket_created", request_id=fields["request_id"], slug="",
            data=json.dumps({"ticket_id": record["id"]})))
    record.pop("ip_hash")
    return {**record, "created": iso(now), "sinks": targets,
            "transcript_requests": len(transcript_of["requests"])}


def get_ticket(db: Database, ticket_id: str) -> dict[str, Any] | None:
    """One stored ticket with its transcript decoded (the IP hash left out)."""
    row = db.one(select(schema.tickets).where(schema.tickets.c.id == ticket_id))
    if row is None:
        return None
    out = {k: v for k, v in row.items() if k != "ip_hash"}
    out["transcript"] = loads(out["transcript"], {"requests": [], "events": []})
    out["created"] = iso(out["ts"])
    return out


def list_tickets(db: Database, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Newest tickets first, each with its delivery state per sink."""
    t, o = schema.tickets, schema.outbox
    query = select(t.c.id, t.c.ts, t.c.name, t.c.email, t.c.subject, t.c.status).order_by(t.c.ts.desc()).limit(limit)
    rows = db.query(query.where(t.c.status == status) if status else query)
    deliveries: dict[str, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
    if deliveries:
        for d in db.query(select(o.c.id, o.c.ticket_id, o.c.sink, o.c.status, o.c.attempts, o.c.next_attempt_at,
                                 o.c.last_error, o.c.delivered_at)
                          .where(o.c.ticket_id.in_(list(deliveries))).order_by(o.c.ticket_id, o.c.sink)):
            deliveries[d["ticket_id"]].append({k: v for k, v in d.items() if k != "ticket_id"})
    return [{**dict(row), "created": iso(row["ts"]), "deliveries": deliveries[row["id"]]} for row in rows]
