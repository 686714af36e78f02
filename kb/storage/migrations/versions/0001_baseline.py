"""Baseline: the tables kb created on first use before it had migrations.

A database made by an earlier kb (sqlite-utils tables, created one module at a time) is adopted:
each missing table or index is created and each missing column added (``gaps.fix`` came after
the first release), and nothing existing is touched. A new database gets everything.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tables() -> sa.MetaData:
    """The schema as of this revision (frozen here: later revisions change it, not this one)."""
    m = sa.MetaData()
    sa.Table("requests", m, sa.Column("id", sa.Text, primary_key=True), sa.Column("ts", sa.Float),
             sa.Column("kind", sa.Text), sa.Column("session", sa.Text), sa.Column("query", sa.Text),
             sa.Column("locale", sa.Text), sa.Column("answered", sa.Integer), sa.Column("top_confidence", sa.Float),
             sa.Column("fallback", sa.Integer), sa.Column("results", sa.Text), sa.Column("source", sa.Text),
             sa.Index("idx_requests_ts", "ts"), sa.Index("idx_requests_session", "session"))
    sa.Table("events", m, sa.Column("id", Serial, primary_key=True), sa.Column("ts", sa.Float),
             sa.Column("session", sa.Text), sa.Column("type", sa.Text), sa.Column("request_id", sa.Text),
             sa.Column("slug", sa.Text), sa.Column("data", sa.Text),
             sa.Index("idx_events_ts", "ts"), sa.Index("idx_events_session", "session"),
             sa.Index("idx_events_type_ts", "type", "ts"))
    sa.Table("feedback", m, sa.Column("id", Serial, primary_key=True), sa.Column("ts", sa.Float),
             sa.Column("request_id", sa.Text), sa.Column("slug", sa.Text), sa.Column("helpful", sa.Integer),
             sa.Column("comment", sa.Text), sa.Column("session", sa.Text), sa.Column("source", sa.Text),
             sa.Column("query", sa.Text), sa.Column("locale", sa.Text),
             sa.Index("idx_feedback_ts", "ts"), sa.Index("idx_feedback_slug", "slug"))
    sa.Table("tickets", m, sa.Column("id", sa.Text, primary_key=True), sa.Column("ts", sa.Float),
             *(sa.Column(c, sa.Text) for c in ("name", "email", "subject", "body", "category", "locale", "session",
                                                "request_id", "transcript", "idempotency_key", "ip_hash", "status")),
             sa.Index("idx_tickets_idempotency_key", "idempotency_key", unique=True),
             sa.Index("idx_tickets_ts", "ts"), sa.Index("idx_tickets_status_ts", "status", "ts"))
    sa.Table("outbox", m, sa.Column("id", Serial, primary_key=True),
             sa.Column("ticket_id", sa.Text, sa.ForeignKey("tickets.id")), sa.Column("sink", sa.Text),
             sa.Column("status", sa.Text), sa.Column("attempts", sa.Integer), sa.Column("next_attempt_at", sa.Float),
             sa.Column("last_error", sa.Text), sa.Column("delivered_at", sa.Float), sa.Column("claimed_until", sa.Float),
             sa.Index("idx_outbox_ticket_id_sink", "ticket_id", "sink", unique=True),
             sa.Index("idx_outbox_status_next_attempt_at", "status", "next_attempt_at"))
    sa.Table("users", m, sa.Column("id", Serial, primary_key=True), sa.Column("email", sa.Text, nullable=False),
             sa.Column("role", sa.Text, nullable=False), sa.Column("password_hash", sa.Text, nullable=False),
             sa.Column("created", sa.Float), sa.Column("disabled", sa.Integer),
             sa.Index("idx_users_email", "email", unique=True))
    sa.Table("admin_sessions", m, sa.Column("id_hash", sa.Text, primary_key=True), sa.Column("user_id", sa.Integer),
             sa.Column("created", sa.Float), sa.Column("expires", sa.Float))
    sa.Table("gaps", m, sa.Column("id", Serial, primary_key=True), sa.Column("label", sa.Text),
             sa.Column("key_terms", sa.Text), sa.Column("status", sa.Text, server_default=sa.text("'open'")),
             sa.Column("linked_slug", sa.Text), sa.Column("linked_at", sa.Float), sa.Column("replay_total", sa.Integer),
             sa.Column("replay_before", sa.Integer), sa.Column("replay_after", sa.Integer),
             sa.Column("replayed_at", sa.Float), sa.Column("locale", sa.Text), sa.Column("first_seen", sa.Float),
             sa.Column("last_seen", sa.Float), sa.Column("size", sa.Integer), sa.Column("sessions", sa.Integer),
             sa.Column("impact", sa.Float), sa.Column("centroid", sa.LargeBinary), sa.Column("closest_slug", sa.Text),
             sa.Column("closest_title", sa.Text), sa.Column("closest_confidence", sa.Float), sa.Column("fix", sa.Text),
             sa.Column("active", sa.Integer, server_default=sa.text("1")), sa.Column("created", sa.Float),
             sa.Column("refreshed_at", sa.Float))
    sa.Table("gap_misses", m, sa.Column("gap_id", sa.Integer), sa.Column("miss_key", sa.Text),
             sa.Column("kind", sa.Text), sa.Column("text", sa.Text), sa.Column("locale", sa.Text),
             sa.Column("ts", sa.Float), sa.Column("session", sa.Text), sa.Column("comment", sa.Text),
             sa.Index("idx_gap_misses_gap_id_ts", "gap_id", "ts"))
    sa.Table("gap_runs", m, sa.Column("id", Serial, primary_key=True), sa.Column("ts", sa.Float),
             sa.Column("misses", sa.Integer), sa.Column("gaps", sa.Integer), sa.Column("seconds", sa.Float))
    return m


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for table in _tables().sorted_tables:
        if table.name not in existing:
            table.create(bind)  # with its indexes
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:  # added by a later release of the sqlite-utils schema
                op.add_column(table.name, sa.Column(column.name, column.type))
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(bind)


def downgrade() -> None:
    for table in reversed(_tables().sorted_tables):
        op.drop_table(table.name)
