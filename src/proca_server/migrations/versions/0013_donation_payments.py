"""donations follow their payment: Stripe's ids and the last reported status

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("donations") as batch:
        batch.add_column(sa.Column("payment_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("subscription_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("payment_status", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("last_payment_id", sa.String(length=255), nullable=True))
    op.create_index("donations_payment_id_index", "donations", ["payment_id"])
    op.create_index("donations_subscription_id_index", "donations", ["subscription_id"])


def downgrade() -> None:
    op.drop_index("donations_subscription_id_index", table_name="donations")
    op.drop_index("donations_payment_id_index", table_name="donations")
    with op.batch_alter_table("donations") as batch:
        batch.drop_column("last_payment_id")
        batch.drop_column("payment_status")
        batch.drop_column("subscription_id")
        batch.drop_column("payment_id")
