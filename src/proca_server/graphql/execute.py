"""One document run in a request's unit of work, for every transport (HTTP, the websocket)."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types import ExecutionResult

from proca_server.audit import service as audit
from proca_server.graphql.context import Context
from proca_server.graphql.schema import ProcaSchema


async def run_document(
    context: Context,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    *,
    on: ProcaSchema,
) -> ExecutionResult:
    """Run the document on the schema `on` in the context's session. Root mutations commit
    one by one (graphql/transactions.py); what is left is a query's own writes (such as a
    token's last use), kept when nothing failed. The after-commit callbacks are the caller's
    to run."""
    try:
        result = await on.execute(
            query, variable_values=variables, context_value=context, operation_name=operation_name
        )
    except CannotGetOperationTypeError as exc:
        # no operation of that name, or several and no name: a request error, like validation
        result = ExecutionResult(data=None, errors=[GraphQLError(exc.as_http_error_reason())])
    if result.errors:
        await context.session.rollback()
        if context.audited_reads:
            # the personal data was read all the same: its entries stay
            for entry in context.audited_reads:
                audit.record(context.session, **entry)
            await context.session.commit()
    else:
        await context.session.commit()
    return result
