"""Tickets: validation, the transcript of the session, and one durable write with the outbox.

Schema (created idempotently on first use through ``db.migrate``):

- ``tickets``: id ("T-" + 10 base32 chars), ts, name, email, subject, body, category, locale,
  session, request_id, transcript (JSON, see `transcript`), idempotency_key (uuid4, unique),
  ip_hash (sha256 of ip + a secret; raw IPs are never stored), status (``pending`` until every
  sink has it, then ``delivered``; ``failed`` if a sink gave up; ``stored`` when no sink is
  configured).
- ``outbox``: one row per ticket and configured sink ('webhook' | 'email'): status
  pending|delivered|failed, attempts, next_attempt_at, last_error, delivered_at, claimed_until.

A ticket and its outbox rows are inserted in the same write transaction, committed before
`create_ticket` returns, so an acknowledged ticket is never lost; kb/outbox.py delivers them.

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

import sqlite_utils

from kb.clock import iso
from kb.errors import ValidationError
from kb.settings import Settings
from kb.storage.database import Database

log = logging.getLogger("kb.tickets.intake")

# The longest value of each ticket field, in characters: the API, the contact form and the widget use these.
FIELD_CHARS = {"name": 200, "email": 254, "subject": 200, "body": 20_000}
STATUSES = ("pending", "delivered", "failed", "stored")
CATEGORIES = ("access", "accounts", "email", "facilities", "finance", "hardware", "hr", "network",
              "onboarding", "phones", "printing", "security", "software", "other")
TRANSCRIPT_EVENTS = ("request_settled", "suggestions_shown", "suggestion_opened", "feedback",
                     "ticket_started", "article_view", "result_click")
TRANSCRIPT_LIMIT = 200  # requests and events each; a session is attacker-controlled input
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,3}$")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_salts: dict[str, str] = {}


def ensure_schema(db: Database) -> None:
    """Create the tickets and outbox tables on this database once (idempotent)."""
    db.migrate(_schema)


def _schema(db: sqlite_utils.Database) -> None:
    db["tickets"].create(  # type: ignore[union-attr]
        {"id": str, "ts": float, "name": str, "email": str, "subject": str, "body": str,
         "category": str, "locale": str, "session": str, "request_id": str, "transcript": str,
         "idempotency_key": str, "ip_hash": str, "status": str},
        pk="id", if_not_exists=True,
    )
    db["outbox"].create(  # type: ignore[union-attr]
        {"id": int, "ticket_id": str, "sink": str, "status": str, "attempts": int,
         "next_attempt_at": float, "last_error": str, "delivered_at": float, "claimed_until": float},
        pk="id", foreign_keys=[("ticket_id", "tickets", "id")], if_not_exists=True,
    )
    db["tickets"].create_index(["idempotency_key"], unique=True, if_not_exists=True)  # type: ignore[union-attr]
    db["tickets"].create_index(["ts"], if_not_exists=True)  # type: ignore[union-attr]
    db["tickets"].create_index(["status", "ts"], if_not_exists=True)  # type: ignore[union-attr]
    db["outbox"].create_index(["ticket_id", "sink"], unique=True, if_not_exists=True)  # type: ignore[union-attr]
    db["outbox"].create_index(["status", "next_attempt_at"], if_not_exists=True)  # type: ignore[union-attr]


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


def transcript(db: Database, session: str, request_id: str = "", since: float = 0.0) -> dict[str, list]:
    """What the user typed in the session and which suggestions were shown, opened and rejected."""
    requests: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    if session:
        rows = db.query(
            "SELECT * FROM (SELECT id, ts, kind, query, locale, answered, top_confidence, fallback, results"
            " FROM requests WHERE session = ? AND ts >= ? ORDER BY ts DESC LIMIT ?) ORDER BY ts",
            (session, since, TRANSCRIPT_LIMIT),
        )
        requests = [_request(r) for r in rows]
        marks = ",".join("?" * len(TRANSCRIPT_EVENTS))
        rows = db.query(
            f"SELECT * FROM (SELECT ts, type, request_id, slug, data FROM events WHERE session = ?"
            f" AND ts >= ? AND type IN ({marks}) ORDER BY ts DESC LIMIT ?) ORDER BY ts",
            (session, since, *TRANSCRIPT_EVENTS, TRANSCRIPT_LIMIT),
        )
        events = [{"ts": r["ts"], "type": r["type"], "request_id": r["request_id"] or "",
                   "slug": r["slug"] or "", "data": _loads(r["data"], {})} for r in rows]
    if request_id and not any(r["id"] == request_id for r in requests):
        row = db.one("SELECT id, ts, kind, query, locale, answered, top_confidence, fallback, results"
                     " FROM requests WHERE id = ?", (request_id,))
        if row is not None:
            requests.append(_request(row))
    return {"requests": requests, "events": events}


def _request(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "ts": row["ts"], "kind": row["kind"], "query": row["query"],
            "locale": row["locale"], "answered": bool(row["answered"]),
            "top_confidence": row["top_confidence"], "fallback": bool(row["fallback"]),
            "results": _loads(row["results"], [])}


def _loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def ip_hash(settings: Settings, ip: str) -> str:
    """sha256 of the client address and a secret: counts repeat senders, never stores the IP."""
    return hashlib.sha256(f"{_salt(settings)}|{ip}".encode()).hexdigest()


def _salt(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = settings.data / "ip_salt"
    key = str(path)
    if key not in _salts:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(path, "x", encoding="ascii") as f:  # "x": a concurrent writer wins
                    f.write(secrets.token_hex(32))
                path.chmod(0o600)
            except FileExistsError:
                pass
        _salts[key] = path.read_text(encoding="ascii").strip()
    return _salts[key]


def create_ticket(db: Database, settings: Settings, data: dict[str, Any], ip: str, limiter=None) -> dict[str, Any]:
    """Validate, rate-limit and durably store a ticket with its transcript and outbox rows."""
    if limiter is not None:
        limiter.hit("tickets:" + ip, settings.rate_tickets_per_hour, 3600)
    fields = validate(data)
    now = time.time()
    if str(data.get("website") or "").strip():
        log.info("honeypot field filled: ticket dropped")
        return {"id": new_ticket_id(), "status": "pending" if sinks(settings) else "stored", "created": iso(now), "ts": now,
                "transcript": {"requests": [], "events": []}, "transcript_requests": 0, **fields}
    ensure_schema(db)
    since = now - settings.implicit_window_hours * 3600
    transcript_of = transcript(db, fields["session"], fields["request_id"], since)
    record: dict[str, Any] = {"id": new_ticket_id(), "ts": now, **fields,
              "transcript": transcript_of,
              "idempotency_key": str(uuid.uuid4()), "ip_hash": ip_hash(settings, ip)}
    targets = sinks(settings)
    record["status"] = "pending" if targets else "stored"
    with db.write() as conn:
        conn.execute(
            "INSERT INTO tickets (id, ts, name, email, subject, body, category, locale, session,"
            " request_id, transcript, idempotency_key, ip_hash, status)"
            " VALUES (:id, :ts, :name, :email, :subject, :body, :category, :locale, :session,"
            " :request_id, :transcript, :idempotency_key, :ip_hash, :status)",
            {**record, "transcript": json.dumps(record["transcript"], ensure_ascii=False)},
        )
        for sink in targets:
            conn.execute(
                "INSERT INTO outbox (ticket_id, sink, status, attempts, next_attempt_at, last_error,"
                " delivered_at, claimed_until) VALUES (?, ?, 'pending', 0, ?, '', NULL, 0)",
                (record["id"], sink, now),
            )
        conn.execute(
            "INSERT INTO events (ts, session, type, request_id, slug, data) VALUES (?,?,?,?,?,?)",
            (now, fields["session"], "ticket_created", fields["request_id"], "",
             json.dumps({"ticket_id": record["id"]})),
        )
    record.pop("ip_hash")
    return {**record, "created": iso(now), "sinks": targets,
            "transcript_requests": len(transcript_of["requests"])}


def get_ticket(db: Database, ticket_id: str) -> dict[str, Any] | None:
    """One stored ticket with its transcript decoded (the IP hash left out)."""
    ensure_schema(db)
    row = db.one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
    if row is None:
        return None
    out = {k: row[k] for k in row.keys() if k != "ip_hash"}
    out["transcript"] = _loads(out["transcript"], {"requests": [], "events": []})
    out["created"] = iso(out["ts"])
    return out


def list_tickets(db: Database, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Newest tickets first, each with its delivery state per sink."""
    ensure_schema(db)
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    rows = db.query(f"SELECT id, ts, name, email, subject, status FROM tickets {where}"
                    " ORDER BY ts DESC LIMIT ?", (*params, limit))
    out = []
    for row in rows:
        deliveries = db.query("SELECT id, sink, status, attempts, next_attempt_at, last_error, delivered_at"
                              " FROM outbox WHERE ticket_id = ? ORDER BY sink", (row["id"],))
        out.append({**dict(row), "created": iso(row["ts"]), "deliveries": [dict(d) for d in deliveries]})
    return out
