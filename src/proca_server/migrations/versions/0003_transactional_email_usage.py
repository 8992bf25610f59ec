"""transactional email usage

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen column types: this file must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=0), "postgresql")


def upgrade() -> None:
    op.create_table(
        "transactional_email_usage",
        sa.Column("org_id", ID, nullable=False),
        sa.Column("sent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("reset_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["orgs.id"],
            name=op.f("transactional_email_usage_org_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("transactional_email_usage_pkey")),
    )


def downgrade() -> None:
    op.drop_table("transactional_email_usage")
