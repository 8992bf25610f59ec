"""service passwords encrypted at rest

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

# The stored format is versioned (`enc:v1:`), so these keep their meaning when the code moves on.
from proca_server.service.passwords import (
    current_secret_key_base,
    decrypt_password,
    encrypt_password,
    is_encrypted,
)

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

services = sa.table("services", sa.column("id", sa.BigInteger()), sa.column("password", sa.Text()))


def encrypt_rows(conn: Connection, secret_key_base: str) -> int:
    """Encrypt the cleartext passwords; the number of rows changed."""
    return _rewrite(
        conn, lambda p: None if is_encrypted(p) else encrypt_password(p, secret_key_base)
    )


def decrypt_rows(conn: Connection, secret_key_base: str) -> int:
    """Back to cleartext (a password that does not open with this key stops the downgrade)."""
    return _rewrite(
        conn, lambda p: decrypt_password(p, secret_key_base) if is_encrypted(p) else None
    )


def _rewrite(conn: Connection, change: Callable[[str], str | None]) -> int:
    rows = conn.execute(
        sa.select(services.c.id, services.c.password).where(services.c.password != "")
    )
    changed = 0
    for row_id, password in rows.all():
        new = change(password)
        if new is not None:
            conn.execute(services.update().where(services.c.id == row_id).values(password=new))
            changed += 1
    return changed


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        # room for the ciphertext (nonce, MAC, base64). SQLite does not enforce a length, and
        # its batch mode would drop and recreate the table, which the orgs' backend foreign
        # keys (ON DELETE SET NULL) would feel.
        op.alter_column(
            "services",
            "password",
            type_=sa.Text(),
            existing_type=sa.String(length=255),
            existing_nullable=False,
            existing_server_default=sa.text("''"),
        )
    encrypt_rows(conn, current_secret_key_base())


def downgrade() -> None:
    conn = op.get_bind()
    decrypt_rows(conn, current_secret_key_base())
    if conn.dialect.name == "postgresql":
        op.alter_column(
            "services",
            "password",
            type_=sa.String(length=255),
            existing_type=sa.Text(),
            existing_nullable=False,
            existing_server_default=sa.text("''"),
        )
