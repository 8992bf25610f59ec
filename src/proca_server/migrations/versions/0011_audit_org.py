"""audit log entries name the org they concern

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Frozen column types: this file must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # no foreign key: an org's audit trail outlives the org
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("org_id", ID, nullable=True))
    op.create_index("audit_log_org_id_inserted_at_index", "audit_log", ["org_id", "inserted_at"])
    op.create_index("audit_log_inserted_at_index", "audit_log", ["inserted_at"])


def downgrade() -> None:
    op.drop_index("audit_log_inserted_at_index", table_name="audit_log")
    op.drop_index("audit_log_org_id_inserted_at_index", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("org_id")
