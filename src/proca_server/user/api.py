"""GraphQL: users, their roles and API token; the application info."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from proca_server import __version__
from proca_server.auth import tokens
from proca_server.auth.permissions import Permission, is_admin, role_of
from proca_server.errors import NotFound, PermissionDenied
from proca_server.graphql.access import allow, auth_for, require_user
from proca_server.graphql.context import Context
from proca_server.graphql.scalars import NaiveDateTime
from proca_server.models import User
from proca_server.org.interface import OrgInterface
from proca_server.org.repository import user_memberships
from proca_server.org.types import PrivateOrg
from proca_server.user import repository, service

Ctx = Info[Context, None]


@strawberry.type(name="ApiToken")
class ApiTokenType:
    expires_at: NaiveDateTime


@strawberry.type(name="UserRole")
class UserRole:
    org: OrgInterface
    role: str


@strawberry.type(name="User")
class UserType:
    id: int
    email: str
    phone: str | None
    picture_url: str | None
    job_title: str | None
    is_admin: bool
    user_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, user: User) -> UserType:
        return cls(
            id=user.id,
            email=user.email,
            phone=user.phone,
            picture_url=user.picture_url,
            job_title=user.job_title,
            is_admin=is_admin(user.perms),
            user_id=user.id,
        )

    @strawberry.field
    async def api_token(self, info: Ctx) -> ApiTokenType | None:
        row = await repository.get_latest_token(info.context.session, self.user_id, "api")
        if row is None:
            return None
        return ApiTokenType(expires_at=NaiveDateTime(tokens.api_token_expires_at(row.inserted_at)))

    @strawberry.field
    async def roles(self, info: Ctx) -> list[UserRole]:
        # Orgs reached through one's own roles are shown privately (`PrivateOrg`), whatever the
        # permissions: a member sees the org they belong to.
        memberships = await user_memberships(info.context.session, self.user_id)
        return [UserRole(org=PrivateOrg(org=org), role=role_of(s.perms)) for s, org in memberships]


@strawberry.type(name="Application")
class ApplicationType:
    name: str | None
    version: str | None
    log_level: str | None


@strawberry.input(name="SelectUser")
class SelectUser:
    id: int | None = None
    email: str | None = None
    org_name: str | None = None


@strawberry.input(name="UserDetailsInput")
class UserDetailsInput:
    picture_url: str | None = None
    job_title: str | None = None
    phone: str | None = None


@strawberry.type
class UserQuery:
    @strawberry.field
    def current_user(self, info: Ctx) -> UserType:
        return UserType.from_model(require_user(info.context))

    @strawberry.field
    async def users(self, info: Ctx, select: SelectUser | None = None) -> list[UserType]:
        ctx = info.context
        allow(await auth_for(ctx, None), Permission.MANAGE_USERS)
        criteria = select or SelectUser()
        found = await repository.list_users(
            ctx.session, id=criteria.id, email_like=criteria.email, org_name=criteria.org_name
        )
        return [UserType.from_model(u) for u in found]

    @strawberry.field
    async def application(self, info: Ctx) -> ApplicationType | None:
        ctx = info.context
        allow(await auth_for(ctx, None), Permission.INSTANCE_OWNER)
        return ApplicationType(
            name="proca-server", version=__version__, log_level=ctx.settings.log_level.lower()
        )


@strawberry.type
class UserMutation:
    # Replaces the caller's API token with a new one (older tokens stop working).
    @strawberry.mutation
    async def reset_api_token(self, info: Ctx) -> str:
        return await service.reset_api_token(info.context.session, require_user(info.context))

    @strawberry.mutation
    async def update_user(
        self,
        info: Ctx,
        input: UserDetailsInput,
        id: int | None = None,
        email: str | None = None,
    ) -> UserType:
        ctx = info.context
        caller = require_user(ctx)
        target = caller
        if id is not None or email is not None:
            if id is not None:
                found = await repository.get_user(ctx.session, id)
            else:
                found = await repository.get_user_by_email(ctx.session, email or "")
            if found is None or found.id != caller.id:
                # someone else, or no one: the same refusal, so that whether an address has an
                # account stays unsaid to those who may not manage users
                auth = await auth_for(ctx, None)
                if auth is None or not (
                    auth.can(Permission.MANAGE_USERS) or auth.can(Permission.INSTANCE_OWNER)
                ):
                    raise PermissionDenied(
                        "Only admin with manage_users permission can modify other users",
                        extensions={"required": ["manage_users"]},
                    )
            if found is None:
                raise NotFound("User not found")
            target = found
        for name in ("picture_url", "job_title", "phone"):
            value = getattr(input, name)
            if value is not None:
                setattr(target, name, value)
        await ctx.session.flush()
        return UserType.from_model(target)
