"""Schema assembly."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from proca_server.graphql.errors import is_expected, log
from proca_server.graphql.scalars import SCALAR_MAP
from proca_server.graphql.transactions import MutationTransactions
from proca_server.user.api import UserMutation, UserQuery


@strawberry.type(name="RootQueryType")
class Query(UserQuery):
    pass


@strawberry.type(name="RootMutationType")
class Mutation(UserMutation):
    pass


class ProcaSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not is_expected(error):
                log.error("resolver failed", exc_info=error.original_error)


def build_schema() -> ProcaSchema:
    return ProcaSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[MutationTransactions],
    )


schema = build_schema()


def sdl() -> str:
    return schema.as_str() + "\n"


__all__: list[Any] = ["schema", "sdl"]
