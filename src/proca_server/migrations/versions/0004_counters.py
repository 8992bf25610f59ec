"""campaign counters

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen column types: this file must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# microseconds: the reconciler compares these two (naive UTC, as every timestamp here)
TIMESTAMP = sa.DateTime()
BYTES = sa.LargeBinary()


def _zero() -> sa.TextClause:
    return sa.text("0")


def upgrade() -> None:
    op.create_table(
        "counter_people",
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("fingerprint", BYTES, nullable=False),
        sa.Column("area", sa.String(length=255), nullable=True),
        sa.Column("prev_area", sa.String(length=255), nullable=True),
        sa.Column("seen", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "fingerprint", name=op.f("counter_people_pkey")),
    )
    op.create_table(
        "counter_org_people",
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("fingerprint", BYTES, nullable=False),
        sa.PrimaryKeyConstraint(
            "campaign_id", "org_id", "fingerprint", name=op.f("counter_org_people_pkey")
        ),
    )
    op.create_table(
        "counter_deltas",
        sa.Column("id", ID, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("action_type", sa.String(length=255), nullable=True),
        sa.Column("actions", sa.Integer(), server_default=_zero(), nullable=False),
        sa.Column("supporters", sa.Integer(), server_default=_zero(), nullable=False),
        sa.Column("org_id", ID, nullable=True),
        sa.Column("org_supporters", sa.Integer(), server_default=_zero(), nullable=False),
        sa.Column("area", sa.String(length=255), nullable=True),
        sa.Column("area_supporters", sa.Integer(), server_default=_zero(), nullable=False),
        sa.Column("left_area", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("counter_deltas_pkey")),
    )
    op.create_index(
        op.f("counter_deltas_campaign_id_index"), "counter_deltas", ["campaign_id"], unique=False
    )
    op.create_table(
        "counter_totals",
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("count", sa.BigInteger(), server_default=_zero(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "kind", "key", name=op.f("counter_totals_pkey")),
    )
    op.create_table(
        "counter_campaigns",
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("changed_at", TIMESTAMP, nullable=True),
        sa.Column("reconciled_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("counter_campaigns_pkey")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # A queue table: every row is deleted within seconds. Vacuum it often, and let the
        # compactor's updates of the totals stay HOT (no indexed column changes).
        op.execute(
            "ALTER TABLE counter_deltas SET (autovacuum_vacuum_scale_factor = 0, "
            "autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_insert_scale_factor = 0, "
            "autovacuum_vacuum_insert_threshold = 5000)"
        )
        op.execute("ALTER TABLE counter_totals SET (fillfactor = 70)")


def downgrade() -> None:
    op.drop_table("counter_campaigns")
    op.drop_table("counter_totals")
    op.drop_index(op.f("counter_deltas_campaign_id_index"), table_name="counter_deltas")
    op.drop_table("counter_deltas")
    op.drop_table("counter_org_people")
    op.drop_table("counter_people")
