"""GraphQL types of MTT targets: public for everyone, private (with emails) for admins."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from proca_server.auth.permissions import Permission
from proca_server.graphql.context import Context
from proca_server.graphql.enums import EmailStatusEnum
from proca_server.graphql.scalars import Json
from proca_server.models import Target


@strawberry.type(name="TargetEmail")
class TargetEmailType:
    email: str
    email_status: EmailStatusEnum
    error: str | None


@strawberry.interface(name="Target")
class TargetInterface:
    target: strawberry.Private[Target]

    @strawberry.field
    def id(self) -> str:
        return str(self.target.id)

    @strawberry.field
    def name(self) -> str:
        return self.target.name

    @strawberry.field
    def external_id(self) -> str:
        return self.target.external_id

    @strawberry.field
    def locale(self) -> str | None:
        return self.target.locale

    @strawberry.field
    def area(self) -> str | None:
        return self.target.area

    @strawberry.field
    def fields(self) -> Json | None:
        return Json(self.target.fields or {})


@strawberry.type(name="PublicTarget")
class PublicTarget(TargetInterface):
    pass


@strawberry.type(name="PrivateTarget")
class PrivateTarget(TargetInterface):
    @strawberry.field
    async def emails(self, info: Info[Context, None]) -> list[TargetEmailType | None]:
        return [
            TargetEmailType(
                email=e.email or "", email_status=EmailStatusEnum.of(e.email_status), error=e.error
            )
            for e in await info.context.loaders.target_emails.load(self.target.id)
        ]


def target_view(ctx: Context, target: Target) -> TargetInterface:
    user = ctx.user
    if user is not None and user.perms & Permission.INSTANCE_OWNER:
        return PrivateTarget(target=target)
    return PublicTarget(target=target)
