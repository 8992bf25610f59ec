"""Each root mutation of a document is its own transaction, as in the original: a later
mutation's failure does not undo an earlier one's success."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension
from strawberry.utils.await_maybe import AwaitableOrValue, await_maybe

from proca_server.graphql import idempotency


class MutationTransactions(SchemaExtension):
    async def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> AwaitableOrValue[object]:
        if info.path.prev is not None or info.operation.operation.value != "mutation":
            return await await_maybe(_next(root, info, *args, **kwargs))
        context = info.context
        try:
            result = await await_maybe(_next(root, info, *args, **kwargs))
            if context.idempotency_key and not context.idempotency_reserved:
                await idempotency.reserve(context.session, context.idempotency_key)
                context.idempotency_reserved = True
        except Exception:
            await context.session.rollback()
            context.after_commit.clear()
            raise
        await context.session.commit()
        await context.run_after_commit()
        return cast(object, result)
