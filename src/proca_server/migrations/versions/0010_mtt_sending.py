"""mail-to-target sending: message send state, plan lease, per-target counts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Frozen column types: this file must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=0), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("send_status", sa.SmallInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(sa.Column("scheduled_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("claimed_until", TIMESTAMP, nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(sa.Column("sent_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("error", sa.String(length=255), nullable=True))
    # messages sent before this revision were marked sent by the original's rules
    op.execute("UPDATE messages SET send_status = 1 WHERE sent")
    op.execute("UPDATE messages SET send_status = 6 WHERE NOT sent AND dupe_rank > 0")
    waiting = sa.text("send_status = 0 AND scheduled_at IS NULL AND dupe_rank = 0")
    op.create_index(
        "messages_waiting_index",
        "messages",
        ["target_id", "id"],
        postgresql_where=waiting,
        sqlite_where=waiting,
    )
    planned = sa.text("scheduled_at IS NOT NULL")
    op.create_index(
        "messages_due_index",
        "messages",
        ["send_status", "scheduled_at"],
        postgresql_where=planned,
        sqlite_where=planned,
    )
    op.create_index(
        "messages_unranked_index",
        "messages",
        ["id"],
        postgresql_where=sa.text("dupe_rank IS NULL"),
        sqlite_where=sa.text("dupe_rank IS NULL"),
    )
    with op.batch_alter_table("mtt") as batch:
        batch.add_column(sa.Column("next_plan_at", TIMESTAMP, nullable=True))
    op.create_table(
        "mtt_target_counts",
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("queued", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("planned", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cancelled", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("undeliverable", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("in_doubt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("target_id", name=op.f("mtt_target_counts_pkey")),
    )
    op.create_index(
        op.f("mtt_target_counts_campaign_id_index"), "mtt_target_counts", ["campaign_id"]
    )
    # the counts of the letters the original had ranked (and sent)
    op.execute(
        "INSERT INTO mtt_target_counts (target_id, campaign_id, queued, planned, sent) "
        "SELECT m.target_id, t.campaign_id, count(*), "
        "sum(CASE WHEN m.sent THEN 1 ELSE 0 END), sum(CASE WHEN m.sent THEN 1 ELSE 0 END) "
        "FROM messages m JOIN targets t ON t.id = m.target_id "
        "JOIN actions a ON a.id = m.action_id "
        "WHERE m.dupe_rank = 0 AND NOT a.testing GROUP BY m.target_id, t.campaign_id"
    )


def downgrade() -> None:
    op.drop_index(op.f("mtt_target_counts_campaign_id_index"), table_name="mtt_target_counts")
    op.drop_table("mtt_target_counts")
    with op.batch_alter_table("mtt") as batch:
        batch.drop_column("next_plan_at")
    op.drop_index("messages_unranked_index", table_name="messages")
    op.drop_index("messages_due_index", table_name="messages")
    op.drop_index("messages_waiting_index", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for column in ("error", "sent_at", "attempts", "claimed_until", "scheduled_at"):
            batch.drop_column(column)
        batch.drop_column("send_status")
