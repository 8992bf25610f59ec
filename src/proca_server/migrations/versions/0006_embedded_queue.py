"""embedded message queue

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen column types: this file must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# microseconds: retry delays and leases are short
TIMESTAMP = sa.DateTime()


def upgrade() -> None:
    op.create_table(
        "broker_exchanges",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("broker_exchanges_pkey")),
    )
    op.create_table(
        "broker_queues",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("arguments", JSONB, server_default=sa.text("'{}'"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("broker_queues_pkey")),
    )
    op.create_table(
        "broker_bindings",
        sa.Column("exchange", sa.String(length=255), nullable=False),
        sa.Column("queue", sa.String(length=255), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint(
            "exchange", "queue", "routing_key", name=op.f("broker_bindings_pkey")
        ),
    )
    op.create_table(
        "broker_messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("queue", sa.String(length=255), nullable=False),
        sa.Column("exchange", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("routing_key", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("retries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("deliveries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("available_at", TIMESTAMP, nullable=False),
        sa.Column("locked_until", TIMESTAMP, nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("broker_messages_pkey")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("broker_messages_queue_available_at_id_index"),
        "broker_messages",
        ["queue", "available_at", "id"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        # A queue table: rows live for seconds and every claim rewrites them.
        op.execute(
            "ALTER TABLE broker_messages SET (autovacuum_vacuum_scale_factor = 0, "
            "autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_insert_scale_factor = 0, "
            "autovacuum_vacuum_insert_threshold = 5000)"
        )


def downgrade() -> None:
    op.drop_index(op.f("broker_messages_queue_available_at_id_index"), table_name="broker_messages")
    op.drop_table("broker_messages")
    op.drop_table("broker_bindings")
    op.drop_table("broker_queues")
    op.drop_table("broker_exchanges")
