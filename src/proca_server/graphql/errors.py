"""The one translator from our errors to GraphQL error objects."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from proca_server.errors import ProcaError

log = logging.getLogger("proca_server.graphql")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def format_error(error: GraphQLError) -> dict[str, Any]:
    out: dict[str, Any] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    path = list(error.path) if error.path else None
    original = error.original_error
    if isinstance(original, GraphQLError) and isinstance(original.original_error, ProcaError):
        # an input value a scalar refused: graphql-core's message names the argument and the
        # path within it; the code is the scalar's
        out["extensions"] = {"code": original.original_error.code}
    elif isinstance(original, ProcaError):
        out["message"] = original.message
        if original.field:
            path = [*(path or []), *(_camel(f) for f in original.field)]
        out["extensions"] = {"code": original.code, **original.extensions}
    elif not is_expected(error):
        # An unexpected failure: the client sees a generic message, the log the details.
        out["message"] = "Internal server error"
        out["extensions"] = {"code": "internal"}
    if path is not None:
        out["path"] = path
    return out


def is_expected(error: GraphQLError) -> bool:
    """False for a crash in a resolver; true for our errors and for bad documents or input
    (coercion errors carry no path)."""
    original = error.original_error
    if original is None or isinstance(original, (ProcaError, GraphQLError)):
        return True
    return not error.path
