"""Each root mutation of a document is its own transaction, as the clients expect: a later
mutation's failure does not undo an earlier one's success.

The root mutation fields' resolvers are wrapped once, when the schema is built
(`own_transactions`), rather than through a schema extension's per-field hook: such a hook
is graphql-core middleware around every field of every answer (a query's thousands of leaf
fields included), and cost a large query a tenth of its time to decide, field by field, that
there was nothing to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from graphql import GraphQLFieldResolver, GraphQLResolveInfo, GraphQLSchema
from strawberry.utils.await_maybe import await_maybe

from proca_server.graphql import idempotency

T = TypeVar("T")


def own_transactions(schema: GraphQLSchema) -> None:
    """Make each root mutation field of `schema` commit on its own (`in_own_transaction`)."""
    mutation = schema.mutation_type
    if mutation is None:
        return
    for field in mutation.fields.values():
        if field.resolve is not None:
            field.resolve = _in_own_transaction(field.resolve)


def _in_own_transaction(resolve: GraphQLFieldResolver) -> GraphQLFieldResolver:
    async def resolved(root: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        return await in_own_transaction(
            info.context, lambda: await_maybe(resolve(root, info, **args))
        )

    return resolved


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
