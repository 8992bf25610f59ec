"""Orgs: creation and settings, members and roles, the instance org and its sign key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.permissions import ROLES, Permission, has_all, is_owner, outranks, role_of
from proca_server.email import readiness
from proca_server.errors import BadArgument, NotFound, PermissionDenied
from proca_server.models import Org, PublicKey, Staffer, User
from proca_server.models.enums import ContactSchema
from proca_server.org.repository import get_org_by_name as get_org_by_name
from proca_server.org.repository import lock_staff
from proca_server.retention.policy import check_org_config

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
EMAIL_RE = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")


@dataclass(frozen=True)
class InstanceSetup:
    org: Org
    key: PublicKey
    created_org: bool
    created_key: bool


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


async def access_org(session: AsyncSession, name: str) -> Org:
    org = await get_org_by_name(session, name)
    if org is None:
        raise NotFound("Entity not found")
    return org


async def _check_name_free(session: AsyncSession, name: str, org_id: int | None) -> None:
    if not NAME_RE.match(name):
        raise BadArgument("has invalid format", field="name")
    other = await get_org_by_name(session, name)
    if other is not None and other.id != org_id:
        raise BadArgument("has already been taken", field="name")


async def check_email_settings(
    session: AsyncSession, org: Org, attrs: dict[str, Any], *, sending_changed: bool
) -> None:
    """Refuse `supporterConfirm` or `doiThankYou` turned on (given true) while their emails
    could not go out (email/readiness.py); after another change of what sending depends on
    (`sending_changed`: a backend, a template name), log what no longer works."""
    await session.flush()
    refusals = (
        ("supporter_confirm", "supporterConfirm", readiness.supporter_confirm_gap),
        ("doi_thank_you", "doiThankYou", readiness.doi_thank_you_gap),
    )
    for key, field, gap_of in refusals:
        if attrs.get(key) is True and (gap := await gap_of(session, org)) is not None:
            raise BadArgument(gap, field=field)
    if sending_changed:
        await readiness.warn_org_gaps(session, org)


def _apply_settings(org: Org, attrs: dict[str, Any]) -> None:
    if "title" in attrs:
        if not attrs["title"]:
            raise BadArgument("can't be blank", field="title")
        org.title = attrs["title"]
    if "contact_schema" in attrs and attrs["contact_schema"] is not None:
        org.contact_schema = ContactSchema(attrs["contact_schema"])
    for flag in ("supporter_confirm", "doi_thank_you", "reply_enabled", "sender_rewrite"):
        if attrs.get(flag) is not None:
            setattr(org, flag, bool(attrs[flag]))
    if "supporter_confirm_template" in attrs:
        org.supporter_confirm_template = attrs["supporter_confirm_template"]
    if attrs.get("config") is not None:
        check_org_config(attrs["config"])
        org.config = attrs["config"]


async def add_org(
    session: AsyncSession, user: User | None, attrs: dict[str, Any], instance_org_name: str
) -> Org:
    """A new org lending the instance org's email backend; `user` becomes its owner and
    sender (None: an org set up by the operator, without staff yet)."""
    name = attrs.get("name")
    if not name:
        raise BadArgument("can't be blank", field="name")
    if not attrs.get("title"):
        raise BadArgument("can't be blank", field="title")
    await _check_name_free(session, name, None)
    instance = await get_org_by_name(session, instance_org_name)
    org = Org(
        name=name,
        title=attrs["title"],
        email_from=user.email if user else None,
        email_backend_id=instance.email_backend_id if instance else None,
    )
    _apply_settings(org, attrs)
    session.add(org)
    await session.flush()
    if user is not None:
        session.add(Staffer(org_id=org.id, user_id=user.id, perms=int(ROLES["owner"])))
    await check_email_settings(session, org, attrs, sending_changed=False)
    return org


async def update_org(session: AsyncSession, org: Org, attrs: dict[str, Any]) -> Org:
    if attrs.get("name") is not None and attrs["name"] != org.name:
        await _check_name_free(session, attrs["name"], org.id)
        org.name = attrs["name"]
    _apply_settings(org, attrs)
    await check_email_settings(
        session, org, attrs, sending_changed="supporter_confirm_template" in attrs
    )
    return org


def validate_email_from(value: str | None) -> str | None:
    if value is not None and not EMAIL_RE.match(value):
        raise BadArgument("must be an email address", field="emailFrom")
    return value


# The answers of the member mutations, as the Proca CLIs have always shown them.
NO_SUCH_USER = "User does not exist"
NOT_A_MEMBER = "User is not a member of this org"
NO_SUCH_ROLE = "No such role"
HIGHER_ROLE = "User must have higher role"


def check_role(role: str) -> Permission:
    bits = ROLES.get(role)
    if bits is None:
        raise NotFound(NO_SUCH_ROLE)
    return bits


def assignable_role(caller_perms: int, staffer: Staffer | None, role: str) -> Permission:
    """The role's bits, once the caller may hand it out."""
    bits = check_role(role)
    if not can_assign_role(caller_perms, staffer, bits):
        raise PermissionDenied(HIGHER_ROLE, extensions={"required": [role]})
    return bits


def can_assign_role(caller_perms: int, staffer: Staffer | None, role_bits: Permission) -> bool:
    """A staffer may hand out only bits they hold themselves; outside an org, manage_users."""
    if caller_perms & Permission.INSTANCE_OWNER:
        return True
    if staffer is None:
        return bool(caller_perms & Permission.MANAGE_USERS)
    return has_all(staffer.perms, role_bits)


async def get_staffer(session: AsyncSession, org_id: int, user_id: int) -> Staffer | None:
    result = await session.execute(
        select(Staffer).where(Staffer.org_id == org_id, Staffer.user_id == user_id)
    )
    return result.scalar_one_or_none()


async def set_member(
    session: AsyncSession,
    org: Org,
    user: User,
    role_bits: Permission,
    *,
    create: bool,
    update: bool,
) -> str:
    """Add a membership, or with `update` make an existing one `role_bits` (no guard: for
    joinOrg); the status name (`success` or `noop`)."""
    staffer = await get_staffer(session, org.id, user.id)
    if staffer is None:
        if not create:
            raise NotFound(NOT_A_MEMBER)
        session.add(Staffer(org_id=org.id, user_id=user.id, perms=int(role_bits)))
        await session.flush()
        return "success"
    if not update:
        return "noop"
    staffer.perms = int(role_bits)
    await session.flush()
    return "success"


async def assign_role(
    session: AsyncSession,
    org: Org,
    user: User,
    role_bits: Permission,
    *,
    caller_perms: int,
    staffer: Staffer | None,
) -> str | None:
    """Add the user to the org with the role, or give the member that role (as `set_member`
    and `change_member_role`: the last owner stays one); the member's role before, None when
    the user was not a member. The caller's right to give the role is checked before."""
    current = await get_staffer(session, org.id, user.id)
    if current is None:
        await set_member(session, org, user, role_bits, create=True, update=False)
        return None
    before = role_of(current.perms)
    await change_member_role(
        session, org, user, role_bits, caller_perms=caller_perms, staffer=staffer
    )
    return before


def can_manage_member(caller_perms: int, staffer: Staffer | None, member: Staffer) -> bool:
    """Nobody changes or removes a member stronger than themselves (holding a role bit they
    lack); instance owners may; outside an org, manage_users (as for assigning a role)."""
    if caller_perms & Permission.INSTANCE_OWNER:
        return True
    if staffer is None:
        return bool(caller_perms & Permission.MANAGE_USERS)
    return not outranks(member.perms, staffer.perms)


async def _locked_member(
    session: AsyncSession, org: Org, user: User, caller_perms: int, staffer: Staffer | None
) -> tuple[Staffer, list[Staffer]]:
    """The user's membership and the org's others, locked, once the caller may manage it."""
    staff = list(await lock_staff(session, org.id))
    member = next((s for s in staff if s.user_id == user.id), None)
    if member is None:
        raise NotFound(NOT_A_MEMBER)
    # the caller's own membership was reloaded by the lock: judge by its current bits
    if not can_manage_member(caller_perms, staffer, member):
        raise PermissionDenied("You cannot change or remove a member whose role is stronger")
    return member, staff


def _keep_an_owner(member: Staffer, staff: list[Staffer]) -> None:
    if is_owner(member.perms) and not any(is_owner(s.perms) for s in staff if s.id != member.id):
        raise BadArgument(
            "is the last owner of the org; make another member owner first", field="email"
        )


async def change_member_role(
    session: AsyncSession,
    org: Org,
    user: User,
    role_bits: Permission,
    *,
    caller_perms: int,
    staffer: Staffer | None,
) -> str:
    """Give a member another role (the caller's right to give it is checked before)."""
    member, staff = await _locked_member(session, org, user, caller_perms, staffer)
    if not is_owner(role_bits):
        _keep_an_owner(member, staff)
    member.perms = int(role_bits)
    await session.flush()
    return "success"


async def remove_member(
    session: AsyncSession,
    org: Org,
    user: User,
    *,
    caller_perms: int,
    staffer: Staffer | None,
) -> None:
    """Remove a member, the caller themselves included; never the org's last owner, except
    an instance admin leaving an org they joined with their instance powers (`joinOrg`, as the
    CLIs' `user join` / `user leave` do): they can join it again, and admins manage it."""
    member, staff = await _locked_member(session, org, user, caller_perms, staffer)
    admin_leaving = (
        staffer is not None
        and staffer.id == member.id
        and bool(caller_perms & (Permission.JOIN_ORGS | Permission.INSTANCE_OWNER))
    )
    if not admin_leaving:
        _keep_an_owner(member, staff)
    await session.delete(member)
    await session.flush()


async def delete_org(session: AsyncSession, org: Org) -> None:
    """Delete the org's campaigns and pages that can go, then the org; refuse (changing
    nothing) while pages with action data remain."""
    from proca_server.action_page import service as pages
    from proca_server.campaign import service as campaigns
    from proca_server.models import Campaign
    from proca_server.org.repository import list_action_pages

    own = (await session.execute(select(Campaign).where(Campaign.org_id == org.id))).scalars()
    doomed_campaigns = [c for c in own.all() if await campaigns.deletable(session, c)]
    in_doomed = {c.id for c in doomed_campaigns}
    kept_pages = [
        p for p in await list_action_pages(session, org.id) if p.campaign_id not in in_doomed
    ]
    for page in kept_pages:
        if not await pages.deletable(session, page.id):
            raise BadArgument("has action pages", field="name")
    for campaign in doomed_campaigns:
        await campaigns.delete_campaign(session, campaign)
    for page in kept_pages:
        await pages.delete_action_page(session, page)
    await session.delete(org)
    await session.flush()
