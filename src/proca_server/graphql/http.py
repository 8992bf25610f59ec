"""The GraphQL HTTP transport, shaped to what the Proca clients send and expect
(docs/clients/recorded-operations.md, docs/api-compatibility.md): POST and GET, `variables`
as object / JSON string / null, `operationName: ""` meaning none, and errors as HTTP 200
application/json."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from graphql import OperationType
from graphql.error import GraphQLError

from proca_server.app_state import AppState, state_of
from proca_server.auth.authenticate import ANY_METHOD, AuthMethod, authenticate_request
from proca_server.errors import AuthenticationFailed
from proca_server.graphql import idempotency, response_cache
from proca_server.graphql.context import Context
from proca_server.graphql.errors import format_error
from proca_server.graphql.execute import run_document
from proca_server.graphql.names import Prepared, convert_variables, make_preparer
from proca_server.graphql.response_cache import ResponseCache
from proca_server.graphql.schema import ProcaSchema, core_schema
from proca_server.kit import jsontext
from proca_server.processing import events
from proca_server.processing.handoff import pipeline_of
from proca_server.web.explorer import explorer_response

log = logging.getLogger("proca_server.http")
router = APIRouter()


@dataclass(frozen=True)
class Endpoint:
    """A GraphQL route: the schema it runs and who may call it."""

    schema: ProcaSchema
    # the credentials read; None: none are, every caller is anonymous
    auth: AuthMethod | None = ANY_METHOD
    # anonymous callers get HTTP 401
    require_user: bool = False
    # a browser's GET without a query gets GraphiQL
    explorer: bool = True
    # the app serves subscriptions on its websocket
    websocket: bool = True
    # names normalised, per document text (names.py)
    prepare: Callable[[str], Prepared | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prepare", make_preparer(core_schema(self.schema)))


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return _raw_json(dumps_answer(body), status)


def _error(status: int, message: str, code: str | None = None) -> Response:
    error: dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code}
    return _json({"data": None, "errors": [error]}, status)


# JSON nesting no client comes near (the widget's variables are four levels deep); deeper
# values would only reach recursive code (coercion, encoders) at the interpreter's limit
MAX_VARIABLES_DEPTH = 32
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def parse_variables(raw: Any, source: bytes | None = None) -> dict[str, Any] | None:
    """The request's variables; `source`, the JSON text they were read from, when there is
    one (a request whose text has few brackets needs no walk to know its depth)."""
    if raw is None or raw == "":
        return None
    brackets = None
    if isinstance(raw, str):
        brackets = raw.count("{") + raw.count("[")
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(400, "variables is not valid JSON") from exc
        if raw is None:
            return None
    if not isinstance(raw, dict):
        raise BadRequest(400, "variables must be a JSON object")
    if brackets is None and source is not None:
        brackets = source.count(b"{") + source.count(b"[")
    if (brackets is None or brackets > MAX_VARIABLES_DEPTH) and nested_deeper(
        raw, MAX_VARIABLES_DEPTH
    ):
        raise BadRequest(400, f"variables are nested deeper than {MAX_VARIABLES_DEPTH} levels")
    return raw


def nested_deeper(value: Any, limit: int) -> bool:
    """Whether a JSON value has objects or arrays nested more than `limit` deep."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        next_level: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                next_level.extend(item.values())
            elif isinstance(item, list):
                next_level.extend(item)
        if not next_level:
            return False
        level = next_level
    return True


async def _read_params(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        return dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        raise BadRequest(415, "Unsupported content type: send application/json")
    body = await request.body()
    if content_type == "application/graphql":
        try:
            return {**request.query_params, "query": body.decode("utf-8")}
        except UnicodeDecodeError as exc:
            raise BadRequest(400, "Request body is not valid UTF-8") from exc
    if not body.strip():
        return dict(request.query_params)
    try:
        params = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers invalid UTF-8; RecursionError, nesting past the parser's depth
        raise BadRequest(400, "Request body is not valid JSON") from exc
    if not isinstance(params, dict):
        raise BadRequest(400, "Request body must be a JSON object")
    return params


def _wants_ide(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


async def execute_request(
    request: Request, endpoint: Endpoint, cache: ResponseCache | None
) -> Response:
    cache_key: response_cache.Key | None = None
    if cache is not None and response_cache.anonymous(request.scope):
        raw = await request.body() if request.method == "POST" else b""
        cache_key = cache.key(request.scope, raw)
        hit = cache.get(cache_key) if cache_key is not None else None
        if hit is not None:
            return _raw_json(hit)
    started_at = time.monotonic()
    try:
        params = await _read_params(request)
        query = params.get("query")
        if not query or not isinstance(query, str):
            if endpoint.explorer and _wants_ide(request):
                return await asyncio.to_thread(explorer_response, request)
            raise BadRequest(400, "No query document supplied")
        operation_name = params.get("operationName") or None
        if operation_name is not None and not isinstance(operation_name, str):
            raise BadRequest(400, "operationName must be a string")
        body = await request.body() if request.method == "POST" else None
        variables = parse_variables(params.get("variables"), body)
        raw_extensions = params.get("extensions")
        extensions: dict[str, Any] = raw_extensions if isinstance(raw_extensions, dict) else {}
        prepared = endpoint.prepare(query)
        operation = prepared.operation(operation_name) if prepared else None
        if request.method == "GET" and operation and operation[0] is not OperationType.QUERY:
            return _error(405, "Can only perform a query operation over GET")
        if operation and operation[0] is OperationType.SUBSCRIPTION:
            if not endpoint.websocket:
                return _error(400, "Subscriptions are not served by this server")
            return _error(
                400, "Subscriptions are served over the websocket /socket/websocket, not /api"
            )
        if prepared is not None:
            query = prepared.query
            if variables and operation:
                variables = convert_variables(variables, operation[1])
        key = None
        if operation and operation[0] is OperationType.MUTATION:
            try:
                key = idempotency.key_from(request.headers, extensions)
            except idempotency.BadKey as exc:
                raise BadRequest(400, str(exc)) from exc
    except BadRequest as exc:
        return _error(exc.status, exc.message)

    def execute(cacheable: bool) -> Awaitable[tuple[Response, str | None]]:
        return _execute(
            request,
            state_of(request),
            query,
            variables,
            operation_name,
            extensions,
            key,
            endpoint,
            cacheable=cacheable,
        )

    if (
        cache is None
        or cache_key is None
        or operation is None
        or operation[0] is not OperationType.QUERY
    ):
        return (await execute(False))[0]
    # Concurrent identical anonymous queries share one execution: when an answer expires in
    # a spike, one request computes it and the others wait for it.
    shared = cache.in_flight(cache_key)
    if shared is not None:
        answer = await asyncio.shield(shared)
        if answer is not None:
            return _raw_json(answer)
        return (await execute(False))[0]
    cache.lead(cache_key)
    answer = None
    try:
        response, answer = await execute(True)
        if answer is not None:
            cache.put(cache_key, started_at, answer)
        return response
    finally:
        cache.finish(cache_key, answer)


async def _execute(
    request: Request,
    state: AppState,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    extensions: dict[str, Any],
    key: str | None,
    endpoint: Endpoint,
    *,
    cacheable: bool,
) -> tuple[Response, str | None]:
    """Run the document; the response, and the answer's text when `cacheable` and it is
    one to keep (no errors)."""
    client = request.client.host if request.client else None
    settings, sessionmaker = state.settings, state.sessionmaker
    async with sessionmaker() as session:
        try:
            user = None
            if endpoint.auth is not None:
                user = await authenticate_request(
                    session,
                    settings,
                    authorization=request.headers.get("authorization"),
                    cookies=request.cookies,
                    client=client,
                    throttle=state.login_throttle,
                    key_sets=state.key_sets,
                    methods=endpoint.auth,
                    required=endpoint.require_user,
                )
        except AuthenticationFailed as exc:
            await session.rollback()
            response = _error(exc.http_status, exc.message, exc.code)
            response.headers.update(exc.headers)
            return response, None
        pipeline = pipeline_of(state)
        await events.commit_registrations(session, settings, pipeline)
        # the key is looked up only now that the caller is known: it is theirs alone
        binding = None
        if key is not None:
            binding = idempotency.bind(
                key, user.id if user else None, query, operation_name, variables
            )
            try:
                taken, answer = await idempotency.stored(sessionmaker, binding, wait=True)
            except idempotency.KeyReused as exc:
                await session.rollback()
                return _error(exc.http_status, exc.message, exc.code), None
            if answer is not None:
                await session.rollback()
                return _raw_json(answer), None
            if taken:
                await session.rollback()
                return _error(409, "A request with this idempotency key is still running"), None
        context = Context(
            session=session,
            settings=settings,
            user=user,
            referer=request.headers.get("referer"),
            client_address=client,
            velocity=state.velocity,
            page_cache=state.page_cache,
            extensions=extensions,
            idempotency_key=binding,
            pipeline=pipeline,
        )
        result = await run_document(context, query, variables, operation_name, on=endpoint.schema)
    await context.run_after_commit()

    body: dict[str, Any] = {}
    if cacheable and not result.errors:
        answer = dumps_answer({"data": result.data})
        return _raw_json(answer), answer
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    if result.data is not None or not result.errors or _executed(result.errors):
        body["data"] = result.data
    if binding is not None:
        if context.idempotency_reserved:
            answer = dumps_answer(body)
            kept = idempotency.NOT_KEPT_ANSWER if context.answer_has_secret else answer
            await idempotency.save(sessionmaker, binding, kept)
            return _raw_json(answer), None
        if any(
            isinstance(e.original_error, idempotency.DuplicateRequest) for e in result.errors or []
        ):
            # a concurrent twin took the key first: answer what it answered
            try:
                _, answer = await idempotency.stored(sessionmaker, binding, wait=True)
            except idempotency.KeyReused as exc:
                return _error(exc.http_status, exc.message, exc.code), None
            if answer is not None:
                return _raw_json(answer), None
    return _json(body), None


def dumps_answer(body: dict[str, Any]) -> str:
    return jsontext.dumps(body)


def _raw_json(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="application/json")


def _executed(errors: list[GraphQLError]) -> bool:
    # Errors raised while resolving carry a path; validation errors do not and get no `data`.
    return any(e.path for e in errors)


@router.api_route("/api", methods=["GET", "POST"])
async def graphql_endpoint(request: Request) -> Response:
    state = state_of(request)
    return await execute_request(request, state.api, state.response_cache)


@router.options("/api")
async def graphql_options() -> Response:
    # Preflights that carry Origin are answered by the CORS middleware; this is for the rest
    # (the Python CLI probes the endpoint with a bare OPTIONS).
    return Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})
