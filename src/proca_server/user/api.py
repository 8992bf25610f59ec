"""GraphQL: the current user and their API token."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from proca_server.auth import tokens
from proca_server.auth.permissions import is_admin
from proca_server.errors import Unauthorized
from proca_server.graphql.context import Context
from proca_server.graphql.scalars import NaiveDateTime
from proca_server.models import User
from proca_server.user import repository, service


@strawberry.type(name="ApiToken")
class ApiTokenType:
    expires_at: NaiveDateTime


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
    async def api_token(self, info: Info[Context, None]) -> ApiTokenType | None:
        row = await repository.get_latest_token(info.context.session, self.user_id, "api")
        if row is None:
            return None
        expires: datetime = tokens.api_token_expires_at(row.inserted_at)
        return ApiTokenType(expires_at=NaiveDateTime(expires))


def require_user(info: Info[Context, None]) -> User:
    user = info.context.user
    if user is None:
        raise Unauthorized("Authentication is required for this API call")
    return user


@strawberry.type
class UserQuery:
    @strawberry.field
    def current_user(self, info: Info[Context, None]) -> UserType:
        return UserType.from_model(require_user(info))


@strawberry.type
class UserMutation:
    # Replaces the caller's API token with a new one (older tokens stop working).
    @strawberry.mutation
    async def reset_api_token(self, info: Info[Context, None]) -> str:
        return await service.reset_api_token(info.context.session, require_user(info))
