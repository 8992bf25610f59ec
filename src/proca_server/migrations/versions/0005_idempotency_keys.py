"""idempotency keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen column types: this file must not change when the models do.
TIMESTAMP = sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=0), "postgresql")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("idempotency_keys_pkey")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("idempotency_keys_inserted_at_index"), ["inserted_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
