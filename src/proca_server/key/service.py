"""Org encryption keys: generate, import, activate (one active key per org).

`active` picks the key new contacts are sealed for; switching it never touches a key's
`expired` flag, so an older key can be made active again (its org still holds the private
part, and each contact names the key it was sealed for). A key marked `expired` (older data
may hold some) stays out: it cannot be activated."""

from __future__ import annotations

from nacl.public import PrivateKey
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.errors import BadArgument, NotFound, ProcaError
from proca_server.kit import base64url
from proca_server.models import Org, PublicKey

KEY_BYTES = 32


class KeyExpired(ProcaError):
    code = "expired"


def _check_name(name: str) -> str:
    if not name or not name.strip():
        raise BadArgument("can't be blank", field="name")
    return name


def keeps_private_part(org: Org, instance_org_name: str) -> bool:
    """Only the instance org's private key stays on the server: it signs the contacts. Any
    other org's private part is handed out once and never stored."""
    return org.name == instance_org_name


async def generate_key(
    session: AsyncSession, org: Org, name: str, *, keep_private: bool
) -> tuple[PublicKey, bytes]:
    """A new inactive key pair; the private part is returned once and kept only for the
    instance org (whose key signs contacts)."""
    private = PrivateKey.generate()
    key = PublicKey(
        name=_check_name(name),
        public=bytes(private.public_key),
        private=bytes(private) if keep_private else None,
        org_id=org.id,
    )
    session.add(key)
    await session.flush()
    return key, bytes(private)


async def add_key(session: AsyncSession, org: Org, name: str, public: str) -> PublicKey:
    try:
        raw = base64url.decode(public)
    except ValueError as exc:
        raise BadArgument("Cannot decode public key using Base64", field="public") from exc
    if len(raw) != KEY_BYTES:
        raise BadArgument(f"must be {KEY_BYTES * 8} bits", field="public")
    key = PublicKey(name=_check_name(name), public=raw, org_id=org.id)
    session.add(key)
    await session.flush()
    return key


async def activate_key(session: AsyncSession, org: Org, key_id: int) -> None:
    """Make this key the org's one active key; the others become inactive."""
    key = await session.get(PublicKey, key_id)
    if key is None or key.org_id != org.id:
        raise NotFound("Public key not found")
    if key.expired:
        raise KeyExpired("Public key expired")
    await session.execute(
        update(PublicKey)
        .where(PublicKey.org_id == org.id, PublicKey.active.is_(True), PublicKey.id != key.id)
        .values(active=False)
        .execution_options(synchronize_session="fetch")
    )
    key.active = True
    await session.flush()


async def deactivate_all_keys(session: AsyncSession, org: Org) -> None:
    """No active key: the org's new contacts are stored in clear (or refused with
    REQUIRE_ENCRYPTION); any of its keys can be activated again."""
    await session.execute(
        update(PublicKey)
        .where(PublicKey.org_id == org.id, PublicKey.active.is_(True))
        .values(active=False)
        .execution_options(synchronize_session="fetch")
    )
    await session.flush()
