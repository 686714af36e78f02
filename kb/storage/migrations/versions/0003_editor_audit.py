"""The article editor: an audit log of staff actions, and which misses a gap's replay left unanswered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", Serial, primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("article", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("gap_id", sa.Integer),
        sa.Column("detail", sa.Text, nullable=False, server_default=sa.text("''")),
    )
    op.create_index("idx_audit_ts", "audit", ["ts"])
    with op.batch_alter_table("gaps") as batch:
        batch.add_column(sa.Column("replay_unanswered", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("gaps") as batch:
        batch.drop_column("replay_unanswered")
    op.drop_index("idx_audit_ts", "audit")
    op.drop_table("audit")
