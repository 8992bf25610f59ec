"""Each root mutation of a document is its own transaction, as in the original: a later
mutation's failure does not undo an earlier one's success."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension
from strawberry.utils.await_maybe import AwaitableOrValue, await_maybe

from proca_server.graphql import idempotency

T = TypeVar("T")


class MutationTransactions(SchemaExtension):
    # A plain function, not a coroutine: it wraps every field's resolution, and a coroutine
    # per field (a `__typename` included) made a large query many times slower.
    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> AwaitableOrValue[object]:
        if info.path.prev is not None or info.operation.operation.value != "mutation":
            result: AwaitableOrValue[object] = _next(root, info, *args, **kwargs)
            return result
        return in_own_transaction(
            info.context, lambda: await_maybe(_next(root, info, *args, **kwargs))
        )


async def in_own_transaction(context: Any, call: Callable[[], Awaitable[T]]) -> T:
    """Run a root mutation's resolver and commit its writes (with the idempotency key's
    reservation), or roll them back when it raises; then the after-commit callbacks."""
    try:
        result = await call()
        if context.idempotency_key and not context.idempotency_reserved:
            await idempotency.reserve(context.session, context.idempotency_key)
            context.idempotency_reserved = True
    except Exception:
        await context.session.rollback()
        context.forget_loaded()
        context.after_commit.clear()
        raise
    await context.session.commit()
    context.forget_loaded()
    await context.run_after_commit()
    return result
