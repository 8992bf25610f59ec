from __future__ import annotations

import strawberry
from strawberry.types import Info

from proca_server.graphql.context import Context
from proca_server.models import Confirm
from proca_server.user.api import UserType


@strawberry.type(name="Confirm")
class ConfirmType:
    confirm: strawberry.Private[Confirm]
    code: str
    email: str | None
    message: str | None
    object_id: int | None

    @classmethod
    def of(cls, confirm: Confirm) -> ConfirmType:
        return cls(
            confirm=confirm,
            code=confirm.code,
            email=confirm.email,
            message=confirm.message,
            object_id=confirm.object_id,
        )

    @strawberry.field
    async def creator(self, info: Info[Context, None]) -> UserType | None:
        if self.confirm.creator_id is None:
            return None
        user = await info.context.loaders.user.load(self.confirm.creator_id)
        return UserType.from_model(user) if user else None
