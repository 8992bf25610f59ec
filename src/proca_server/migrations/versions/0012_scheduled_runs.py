"""scheduled runs: the server's own jobs (retention policies, closing ended campaigns)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Frozen column types: this file must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=0), "postgresql")
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "scheduled_runs",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("org_id", ID, nullable=True),
        sa.Column("next_run_at", TIMESTAMP, nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.Column("last_started_at", TIMESTAMP, nullable=True),
        sa.Column("last_finished_at", TIMESTAMP, nullable=True),
        sa.Column("last_outcome", JSONB, server_default=sa.text("'{}'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("scheduled_runs_org_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job", name=op.f("scheduled_runs_pkey")),
    )
    op.create_index(op.f("scheduled_runs_org_id_index"), "scheduled_runs", ["org_id"])


def downgrade() -> None:
    op.drop_index(op.f("scheduled_runs_org_id_index"), table_name="scheduled_runs")
    op.drop_table("scheduled_runs")
