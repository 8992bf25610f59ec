"""Authorization as the Proca server's middleware chain: load the entity named by
exactly one identifier argument, determine the caller's auth context for it (their staffer
membership in the org that is responsible), then `allow` by `:user`, `:staffer` or any-of a
list of permissions (instance_owner always passes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.permissions import Permission
from proca_server.errors import BadArgument, NotFound, PermissionDenied, Unauthorized
from proca_server.graphql.context import Context
from proca_server.models import Staffer, User

M = TypeVar("M")


@dataclass(frozen=True)
class Auth:
    """The caller and their membership in the org responsible for the resource."""

    user: User
    staffer: Staffer | None

    @property
    def perms(self) -> int:
        return self.user.perms | (self.staffer.perms if self.staffer else 0)

    def can(self, perm: Permission) -> bool:
        return (self.perms & perm) == perm

    @property
    def org_id(self) -> int | None:
        return self.staffer.org_id if self.staffer else None


async def auth_for(ctx: Context, org_id: int | None) -> Auth | None:
    """The auth context for a resource of org `org_id`; None for an anonymous caller."""
    if ctx.user is None:
        return None
    staffer = None
    if org_id is not None:
        key = (ctx.user.id, org_id)
        if key not in ctx.staffers:
            # through the loader: the views of a list's items ask together, in one statement
            ctx.staffers[key] = await ctx.loaders.membership.load(key)
        staffer = ctx.staffers[key]
    return Auth(ctx.user, staffer)


def require_user(ctx: Context) -> User:
    if ctx.user is None:
        raise Unauthorized("Authentication is required for this API call")
    return ctx.user


def permission_names(bits: int) -> list[str]:
    return [p.name.lower() for p in Permission if p.name and bits & p == p and p.value]


def allow(auth: Auth | None, *perms: Permission) -> Auth:
    """Pass when the caller has instance_owner or ANY of `perms` (the original's semantics)."""
    if auth is None:
        raise PermissionDenied("User is not a member of team responsible for resource")
    if any(auth.can(p) for p in (Permission.INSTANCE_OWNER, *perms)):
        return auth
    extensions: dict[str, Any] = {
        "required": [p.name.lower() for p in perms if p.name],
        "provided": permission_names(auth.perms),
    }
    if auth.org_id is not None:
        extensions["org_id"] = auth.org_id
    raise PermissionDenied("You do not have the required permission", extensions=extensions)


def allow_staffer(auth: Auth | None) -> Auth:
    if auth is None or auth.staffer is None:
        raise Unauthorized("User is not a member of organisation")
    return auth


def one_identifier(**given: Any) -> tuple[str, Any]:
    """The single identifier argument that was given; none or several is a `bad_arg` error."""
    present = [(k, v) for k, v in given.items() if v is not None]
    if len(present) != 1:
        raise BadArgument("Provide exactly one identifier argument")
    return present[0]


async def load(session: AsyncSession, model: type[M], **given: Any) -> M:
    """Load `model` by exactly one of the given identifier arguments."""
    column, value = one_identifier(**given)
    result = await session.execute(select(model).where(getattr(model, column) == value).limit(1))
    row = result.scalar_one_or_none()
    if row is None:
        raise NotFound("Entity not found")
    return row
