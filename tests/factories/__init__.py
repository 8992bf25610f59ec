"""Small worlds in one call: orgs, campaigns, pages, users with roles, keys."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

from nacl.public import PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.passwords import hash_password
from proca_server.auth.permissions import ADMIN, ROLES
from proca_server.models import ActionPage, Campaign, Org, PublicKey, Staffer, User
from proca_server.user.service import reset_api_token

_seq = itertools.count(1)
PASSWORD = "Secret-Passw0rd!"


def unique(prefix: str) -> str:
    return f"{prefix}{next(_seq)}"


async def make_org(session: AsyncSession, name: str | None = None, **fields: object) -> Org:
    name = name or unique("org")
    org = Org(name=name, title=fields.pop("title", name.title()), **fields)
    session.add(org)
    await session.flush()
    return org


async def make_key(
    session: AsyncSession, org: Org, *, active: bool = True, keep_private: bool = False
) -> tuple[PublicKey, PrivateKey]:
    private = PrivateKey.generate()
    key = PublicKey(
        name=unique("key"),
        public=bytes(private.public_key),
        private=bytes(private) if keep_private else None,
        active=active,
        org_id=org.id,
    )
    session.add(key)
    await session.flush()
    return key, private


async def make_campaign(session: AsyncSession, org: Org, name: str | None = None) -> Campaign:
    name = name or unique("campaign")
    campaign = Campaign(name=name, title=name.title(), org_id=org.id)
    session.add(campaign)
    await session.flush()
    return campaign


async def make_page(
    session: AsyncSession, campaign: Campaign, org: Org, name: str | None = None
) -> ActionPage:
    page = ActionPage(
        name=name or f"{org.name}/{unique('page')}",
        locale="en",
        campaign_id=campaign.id,
        org_id=org.id,
    )
    session.add(page)
    await session.flush()
    return page


@functools.cache
def _password_hash() -> str:
    # bcrypt is slow on purpose; hash the shared test password once
    return hash_password(PASSWORD)


async def make_user(
    session: AsyncSession,
    email: str | None = None,
    *,
    admin: bool = False,
    org: Org | None = None,
    role: str | None = None,
) -> User:
    user = User(
        email=email or f"{unique('user')}@example.org",
        hashed_password=_password_hash(),
        perms=int(ADMIN) if admin else 0,
    )
    session.add(user)
    await session.flush()
    if org is not None:
        perms = ROLES[role or "owner"]
        session.add(Staffer(org_id=org.id, user_id=user.id, perms=int(perms)))
        await session.flush()
    return user


@dataclass
class World:
    """An org with an active key, a campaign and a page, plus its staff by role."""

    org: Org
    key: PublicKey
    private_key: PrivateKey
    campaign: Campaign
    page: ActionPage
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


async def make_world(
    session: AsyncSession, *, roles: tuple[str, ...] = ("owner",), admin: bool = False
) -> World:
    org = await make_org(session)
    key, private = await make_key(session, org)
    campaign = await make_campaign(session, org)
    page = await make_page(session, campaign, org)
    world = World(org, key, private, campaign, page)
    for role in roles:
        user = await make_user(session, org=org, role=role)
        world.users[role] = user
        world.tokens[role] = await reset_api_token(session, user)
    if admin:
        user = await make_user(session, admin=True)
        world.users["admin"] = user
        world.tokens["admin"] = await reset_api_token(session, user)
    await session.commit()
    return world


__all__ = [
    "ADMIN",
    "PASSWORD",
    "World",
    "make_campaign",
    "make_key",
    "make_org",
    "make_page",
    "make_user",
    "make_world",
    "unique",
]
