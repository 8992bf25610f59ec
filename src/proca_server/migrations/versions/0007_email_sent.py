"""supporter emails accepted by the provider, per action and kind

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen column types: this file must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=0), "postgresql")


def upgrade() -> None:
    op.create_table(
        "email_sent",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("action_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["actions.id"],
            name=op.f("email_sent_action_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("email_sent_pkey")),
    )
    op.create_index(
        op.f("email_sent_action_id_kind_index"), "email_sent", ["action_id", "kind"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("email_sent_action_id_kind_index"), table_name="email_sent")
    op.drop_table("email_sent")
