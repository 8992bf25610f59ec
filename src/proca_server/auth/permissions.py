"""Permission bits, bit-exact with the Proca server's (a stored `perms` integer means the
same in both), and the named roles, strongest first."""

from __future__ import annotations

import enum
import functools
import operator


class Permission(enum.IntFlag):
    INSTANCE_OWNER = 1 << 0
    JOIN_ORGS = 1 << 1
    MANAGE_USERS = 1 << 2
    MANAGE_ORGS = 1 << 3
    ORG_OWNER = 1 << 7
    USE_API = 1 << 8
    EXPORT_CONTACTS = 1 << 9
    DELETE_CONTACTS = 1 << 10
    CHANGE_ORG_USERS = 1 << 15
    CHANGE_ORG_SETTINGS = 1 << 16
    CHANGE_ORG_SERVICES = 1 << 16  # alias of CHANGE_ORG_SETTINGS
    MANAGE_CAMPAIGNS = 1 << 17
    MANAGE_ACTION_PAGES = 1 << 18
    LAUNCH_ACTION_PAGE = 1 << 19
    CHANGE_CAMPAIGN_SETTINGS = 1 << 20


ADMIN = (
    Permission.INSTANCE_OWNER
    | Permission.JOIN_ORGS
    | Permission.MANAGE_USERS
    | Permission.MANAGE_ORGS
)

# Strongest first: role detection takes the first role whose bits are all present.
ROLES: dict[str, Permission] = {
    "owner": Permission.ORG_OWNER
    | Permission.EXPORT_CONTACTS
    | Permission.DELETE_CONTACTS
    | Permission.CHANGE_ORG_USERS
    | Permission.CHANGE_ORG_SETTINGS
    | Permission.CHANGE_CAMPAIGN_SETTINGS
    | Permission.MANAGE_CAMPAIGNS
    | Permission.MANAGE_ACTION_PAGES,
    "campaigner": Permission.CHANGE_ORG_USERS
    | Permission.CHANGE_ORG_SETTINGS
    | Permission.CHANGE_CAMPAIGN_SETTINGS
    | Permission.MANAGE_CAMPAIGNS
    | Permission.MANAGE_ACTION_PAGES,
    "translator": Permission.CHANGE_ORG_USERS | Permission.CHANGE_CAMPAIGN_SETTINGS,
    "coordinator": Permission.CHANGE_CAMPAIGN_SETTINGS,
}

# Owners created before delete_contacts existed still count as owners.
LEGACY_OWNER = ROLES["owner"] & ~Permission.DELETE_CONTACTS

# The staffer bits the roles are made of: what makes one member stronger than another.
ROLE_BITS = functools.reduce(operator.or_, ROLES.values())


def has_all(perms: int, required: Permission) -> bool:
    return (perms & required) == required


def role_of(perms: int) -> str:
    if is_owner(perms):
        return "owner"
    for name, bits in ROLES.items():
        if has_all(perms, bits):
            return name
    return "custom"


def is_owner(perms: int) -> bool:
    return has_all(perms, LEGACY_OWNER)


def outranks(member_perms: int, actor_perms: int) -> bool:
    """The member holds a role bit the actor lacks (a legacy owner counts as a full owner)."""

    def held(perms: int) -> int:
        return (perms | ROLES["owner"] if is_owner(perms) else perms) & ROLE_BITS

    return bool(held(member_perms) & ~held(actor_perms))


def is_admin(user_perms: int) -> bool:
    return bool(user_perms & Permission.INSTANCE_OWNER)
