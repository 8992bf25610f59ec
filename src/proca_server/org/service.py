"""Orgs: the instance org and its sign key."""

from __future__ import annotations

from dataclasses import dataclass

from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Org, PublicKey


@dataclass(frozen=True)
class InstanceSetup:
    org: Org
    key: PublicKey
    created_org: bool
    created_key: bool


async def get_org_by_name(session: AsyncSession, name: str) -> Org | None:
    result = await session.execute(select(Org).where(Org.name == name))
    return result.scalar_one_or_none()


async def get_active_key(session: AsyncSession, org_id: int) -> PublicKey | None:
    result = await session.execute(
        select(PublicKey)
        .where(PublicKey.org_id == org_id, PublicKey.active.is_(True))
        .order_by(PublicKey.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def ensure_instance_org(session: AsyncSession, name: str) -> InstanceSetup:
    """Create the instance org and its active key pair (private part kept) unless present."""
    org = await get_org_by_name(session, name)
    created_org = org is None
    if org is None:
        org = Org(name=name, title=name)
        session.add(org)
        await session.flush()
    key = await get_active_key(session, org.id)
    created_key = key is None
    if key is None:
        private = PrivateKey.generate()
        key = PublicKey(
            name=f"{name} sign key",
            public=bytes(private.public_key),
            private=bytes(private),
            active=True,
            org_id=org.id,
        )
        session.add(key)
        await session.flush()
    return InstanceSetup(org, key, created_org, created_key)
