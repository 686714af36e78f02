"""Every table kb stores, in one MetaData (SQLAlchemy Core); migrations/ records how they came to be.

- ``requests``: every suggest (widget/API) and search (portal): id, ts, kind, session, query,
  locale, answered, top_confidence, fallback, results (JSON list of {slug, anchor, confidence}).
  The raw log: one row per pause while someone types. What counts as a request (a settled
  request) is decided from it by kb/storage/settle.py.
- ``events``: the widget funnel and portal activity: ts, session, type, request_id, slug, data.
  Types: session_start, request_settled (a request the widget settled: {request_id, text, by}),
  suggestions_shown, suggestion_opened, feedback, ticket_started, ticket_created, article_view,
  result_click.
- ``feedback``: "Was this helpful?" answers: request_id, slug, helpful, comment, session, source.
- ``tickets`` and ``outbox``: see kb/tickets/intake.py.
- ``users`` and ``admin_sessions``: see kb/staff/auth.py.
- ``gaps``, ``gap_misses``, ``gap_runs``: see kb/insight/gaps.py.
- ``rate_limits``: one shared counter per limited key (kb/storage/limits.py).
- ``secrets``: keys every replica must share (session signing, the IP salt; kb/storage/secrets.py).
- ``audit``: what staff did to articles and gaps, who and when (kb/storage/audit.py).

Flags are integers 0/1 and times are Unix seconds (floats), as the first SQLite release stored them.
Index names are the ones sqlite-utils gave them, so the first migration recognises existing ones.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, Table, Text,
                        text)

# An auto-numbered id: SQLite only auto-numbers an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
Serial = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

requests = Table(
    "requests", metadata,
    Column("id", Text, primary_key=True),
    Column("ts", Float), Column("kind", Text), Column("session", Text), Column("query", Text),
    Column("locale", Text), Column("answered", Integer), Column("top_confidence", Float),
    Column("fallback", Integer), Column("results", Text), Column("source", Text),
    Index("idx_requests_ts", "ts"), Index("idx_requests_session", "session"),
)

events = Table(
    "events", metadata,
    Column("id", Serial, primary_key=True),
    Column("ts", Float), Column("session", Text), Column("type", Text), Column("request_id", Text),
    Column("slug", Text), Column("data", Text),
    Index("idx_events_ts", "ts"), Index("idx_events_session", "session"), Index("idx_events_type_ts", "type", "ts"),
)

feedback = Table(
    "feedback", metadata,
    Column("id", Serial, primary_key=True),
    Column("ts", Float), Column("request_id", Text), Column("slug", Text), Column("helpful", Integer),
    Column("comment", Text), Column("session", Text), Column("source", Text), Column("query", Text),
    Column("locale", Text),
    Index("idx_feedback_ts", "ts"), Index("idx_feedback_slug", "slug"),
)

tickets = Table(
    "tickets", metadata,
    Column("id", Text, primary_key=True),
    Column("ts", Float), Column("name", Text), Column("email", Text), Column("subject", Text), Column("body", Text),
    Column("category", Text), Column("locale", Text), Column("session", Text), Column("request_id", Text),
    Column("transcript", Text), Column("idempotency_key", Text), Column("ip_hash", Text), Column("status", Text),
    Index("idx_tickets_idempotency_key", "idempotency_key", unique=True),
    Index("idx_tickets_ts", "ts"), Index("idx_tickets_status_ts", "status", "ts"),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Serial, primary_key=True),
    Column("ticket_id", Text, ForeignKey("tickets.id")),
    Column("sink", Text), Column("status", Text), Column("attempts", Integer), Column("next_attempt_at", Float),
    Column("last_error", Text), Column("delivered_at", Float), Column("claimed_until", Float),
    Index("idx_outbox_ticket_id_sink", "ticket_id", "sink", unique=True),
    Index("idx_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)

users = Table(
    "users", metadata,
    Column("id", Serial, primary_key=True),
    Column("email", Text, nullable=False), Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False), Column("created", Float), Column("disabled", Integer),
    Index("idx_users_email", "email", unique=True),
)

admin_sessions = Table(
    "admin_sessions", metadata,
    Column("id_hash", Text, primary_key=True),
    Column("user_id", Integer), Column("created", Float), Column("expires", Float),
)

gaps = Table(
    "gaps", metadata,
    Column("id", Serial, primary_key=True),
    Column("label", Text), Column("key_terms", Text), Column("status", Text, server_default=text("'open'")),
    Column("linked_slug", Text), Column("linked_at", Float), Column("replay_total", Integer),
    Column("replay_before", Integer), Column("replay_after", Integer), Column("replayed_at", Float),
    Column("locale", Text), Column("first_seen", Float), Column("last_seen", Float), Column("size", Integer),
    Column("sessions", Integer), Column("impact", Float), Column("centroid", LargeBinary),
    Column("closest_slug", Text), Column("closest_title", Text), Column("closest_confidence", Float),
    Column("fix", Text), Column("active", Integer, server_default=text("1")), Column("created", Float),
    Column("refreshed_at", Float),
    Column("replay_unanswered", Text),  # JSON list of the miss texts the latest replay did not answer
)

gap_misses = Table(  # no key of its own: rows are replaced wholesale by each refresh
    "gap_misses", metadata,
    Column("gap_id", Integer), Column("miss_key", Text), Column("kind", Text), Column("text", Text),
    Column("locale", Text), Column("ts", Float), Column("session", Text), Column("comment", Text),
    Index("idx_gap_misses_gap_id_ts", "gap_id", "ts"),
)

gap_runs = Table(
    "gap_runs", metadata,
    Column("id", Serial, primary_key=True),
    Column("ts", Float), Column("misses", Integer), Column("gaps", Integer), Column("seconds", Float),
)

rate_limits = Table(
    "rate_limits", metadata,
    Column("key", Text, primary_key=True),
    Column("expires", Float, nullable=False),  # the end of the key's current window
    Column("hits", Integer, nullable=False),
    Index("idx_rate_limits_expires", "expires"),
)

secrets = Table(
    "secrets", metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("created", Float),
)

audit = Table(
    "audit", metadata,
    Column("id", Serial, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("user_id", Integer), Column("email", Text, nullable=False),  # the email as it was then
    Column("action", Text, nullable=False),
    Column("article", Text, nullable=False, server_default=text("''")),  # the slug, '' if none
    Column("gap_id", Integer),
    Column("detail", Text, nullable=False, server_default=text("''")),
    Index("idx_audit_ts", "ts"),
)
