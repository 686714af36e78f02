"""Shared state for several processes and replicas: rate-limit counters and secrets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
    )
    op.create_index("idx_rate_limits_expires", "rate_limits", ["expires"])
    op.create_table(
        "secrets",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("secrets")
    op.drop_index("idx_rate_limits_expires", "rate_limits")
    op.drop_table("rate_limits")
