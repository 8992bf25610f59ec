"""The signature lane: the widget's addActionContact answered in a few hundred microseconds.

A signature is the hot path of a campaign in a viral spike, and most of its cost on the general
path is machinery, not work: the ASGI router, the GraphQL executor, the ORM session and its
greenlets, and BEGIN and COMMIT round trips around a single statement. The lane is an ASGI
middleware in front of the router (inside CORS) that takes a `POST /api` when everything about
it is the common case, and otherwise passes the request on untouched (its body replayed):

- PostgreSQL, no captcha configured, no credentials (Authorization, session cookies) and no
  idempotency key: those requests need the general path's checks and bookkeeping;
- a document that is one `addActionContact` mutation selecting only `contactRef`, `firstName`
  and `__typename` (aliases allowed), checked and compiled once per document text;
- variables and arguments that graphql-core coerces without error, no donation, MTT or
  `contactRef` (their extra statements stay on the general path);
- input that passes validation, and a page, source row and keys already in this process's
  caches (a miss goes the general path, which fills them).

So every request the lane takes would succeed on the general path, and every error comes from
the general path, in its shape. The lane then runs the signature's one statement
(`store.pg_signature`: the same text as the general path's, compiled by SQLAlchemy's dialect)
on its own asyncpg pool, grouped with the signatures of the same few milliseconds
(`SIGNATURE_BATCH_MS`) into one round trip and one commit (batcher.py: a group is atomic, and
a refused group is retried statement by statement), hands the action to the pipeline as the
general path does after its commit, and writes the answer.
tests/test_signature_lane.py checks that both paths store and answer the same."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLInputType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    VariableDefinitionNode,
    get_named_type,
    type_from_ast,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from proca_server.action import captcha, service, store
from proca_server.action.batcher import StatementBatcher
from proca_server.action.tracking import source_key
from proca_server.action.velocity import UNLIMITED, SignatureVelocity
from proca_server.action.widget_api import action_values, contact_values, tracking_values
from proca_server.app_state import AppState, state_of
from proca_server.auth.authenticate import REMEMBER_ME_COOKIE, SESSION_COOKIE
from proca_server.config import Settings
from proca_server.contact.keyrings import keyring_for
from proca_server.contact.schemas import validate_contact
from proca_server.errors import QueryTooComplex, TooManySignatures
from proca_server.graphql import idempotency
from proca_server.graphql.errors import format_error
from proca_server.graphql.http import BadRequest, dumps_answer, parse_variables
from proca_server.graphql.limits import Limits, check_document, default_limits
from proca_server.graphql.names import convert_variables
from proca_server.kit import base64url
from proca_server.kit.cache import Cache
from proca_server.kit.time import utcnow
from proca_server.metrics import ACTIONS_RECEIVED
from proca_server.processing.handoff import pipeline_of

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PLAN_CACHE_SIZE = 256
POOL_RETRY = 10.0
# connections the lane's pool opens at start and keeps (a PostgreSQL connection is a process
# to fork and warm: opening them in the first seconds of a spike was that spike's worst tail)
WARM_CONNECTIONS = 4
_OUTPUT_FIELDS = frozenset(("contactRef", "firstName", "__typename"))
_CREDENTIAL_COOKIES = (SESSION_COOKIE.encode(), REMEMBER_ME_COOKIE.encode())


@dataclass(frozen=True)
class Plan:
    """A document the lane answers: its variables, the mutation field and what it selects."""

    variable_definitions: list[VariableDefinitionNode]
    variable_types: dict[str, GraphQLInputType]
    field: GraphQLField
    node: FieldNode
    response_key: str
    outputs: tuple[tuple[str, str], ...]  # (response key, field name)


def compile_plan(
    schema: GraphQLSchema, query: str, operation_name: str | None, limits: Limits | None = None
) -> Plan | None:
    """The plan for a valid document, within the document limits, whose operation is one
    plain addActionContact, else None."""
    try:
        document = check_document(schema, query, limits or default_limits(), count=False)
    except (GraphQLError, QueryTooComplex):
        return None
    if validate(schema, document):
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != len(document.definitions):
        return None  # fragments: not the widget's shape
    if operation_name is None:
        if len(operations) != 1:
            return None
        operation = operations[0]
    else:
        named = [o for o in operations if o.name and o.name.value == operation_name]
        if len(named) != 1:
            return None
        operation = named[0]
    if operation.operation is not OperationType.MUTATION or operation.directives:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    node = selections[0]
    if node.name.value != "addActionContact" or node.directives or node.selection_set is None:
        return None
    outputs = []
    for child in node.selection_set.selections:
        if (
            not isinstance(child, FieldNode)
            or child.directives
            or child.selection_set is not None
            or child.name.value not in _OUTPUT_FIELDS
        ):
            return None
        outputs.append(((child.alias or child.name).value, child.name.value))
    mutation = schema.mutation_type
    assert mutation is not None
    definitions = list(operation.variable_definitions or [])
    types: dict[str, GraphQLInputType] = {}
    for definition in definitions:
        type_ = type_from_ast(schema, definition.type)
        if type_ is None:
            return None
        types[definition.variable.name.value] = type_  # type: ignore[assignment]
    return Plan(
        variable_definitions=definitions,
        variable_types=types,
        field=mutation.fields["addActionContact"],
        node=node,
        response_key=(node.alias or node.name).value,
        outputs=tuple(outputs),
    )


class SignatureLane:
    """The lane's state in one process: compiled plans and the asyncpg pool."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        schema: GraphQLSchema,
        sessionmaker: async_sessionmaker[AsyncSession],
        velocity: SignatureVelocity | None = None,
        *,
        page_cache: service.PageCache,
    ) -> None:
        self.settings = settings
        # the app's, shared with the general path, which fills it
        self.page_cache = page_cache
        self.velocity = velocity or UNLIMITED
        self.limits = Limits.of(settings)
        self.schema = schema
        self.sessionmaker = sessionmaker
        # refreshes in flight, by what they refresh; kept so that none is collected early
        self._refreshing: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.enabled = settings.signature_lane and engine.dialect.name == "postgresql"
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._pool_retry_at = 0.0
        self._opening: asyncio.Task[asyncpg.Pool | None] | None = None
        # compiled documents (None: not one for the lane), for good: they depend on the text
        self._plans: Cache[tuple[str, str | None], Plan | None] = Cache(PLAN_CACHE_SIZE)
        self.batcher = StatementBatcher(
            self._connections, window=settings.signature_batch_ms / 1000
        )
        self.answered = 0  # signatures the lane stored (the general path's are not counted)

    def start(self) -> None:
        """Open the pool in the background (a request that comes first opens it itself).
        Not while a captcha is configured (always in the ECI build): every signature then
        goes the general way, which verifies it."""
        if captcha.enabled(self.settings):
            return
        if self.enabled and self._pool is None and self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._connections())

    async def close(self) -> None:
        if self._opening is not None:
            with contextlib.suppress(Exception):
                await self._opening
        for task in list(self._refreshing.values()):
            task.cancel()
        await self.batcher.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _connections(self) -> asyncpg.Pool | None:
        """The pool, opened on first use; None (the request goes the general way) when it
        cannot be opened, and for POOL_RETRY seconds after that."""
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            now = time.monotonic()
            if self._pool is None and now >= self._pool_retry_at:
                try:
                    size = self.settings.pool_size
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=min(WARM_CONNECTIONS, size), max_size=size, reset=_keep
                    )
                except Exception:
                    self._pool_retry_at = now + POOL_RETRY
                    log.warning(
                        "signature lane: cannot open its connection pool; signatures go the "
                        "general way for %s s",
                        POOL_RETRY,
                        exc_info=True,
                    )
            return self._pool

    def _plan(self, query: str, operation_name: str | None) -> Plan | None:
        key = (query, operation_name)
        cached = self._plans.get_aged(key)
        if cached is not None:
            return cached[0]
        plan = compile_plan(self.schema, query, operation_name, self.limits)
        self._plans.put(key, plan)
        return plan

    async def answer(
        self, body: bytes, referer: str | None, state: AppState, address: str | None = None
    ) -> bytes | None:
        """The response body for a request the lane takes; None to pass it on."""
        if captcha.enabled(self.settings):
            return None
        request = _request(body)
        if request is None:
            return None
        query, operation_name, variables = request
        plan = self._plan(query, operation_name)
        if plan is None:
            return None
        prepared = self._prepare(plan, variables, referer)
        if prepared is None:
            return None
        sql, arguments, fingerprint, first_name, email = prepared
        if await self._connections() is None:
            return None
        try:
            self.velocity.admit(address, email)
        except TooManySignatures:
            return None  # the general path refuses it, in its shape
        try:
            row = await self.batcher.fetchrow(sql, arguments)
        except (asyncpg.PostgresError, OSError) as exc:
            # refused or never sent: nothing was written; the general path answers (and counts
            # the signature against the velocity limits again)
            self.velocity.give_back(address, email)
            log.info("signature lane: %s; the request goes the general way", type(exc).__name__)
            return None
        except Exception as exc:
            # the connection broke with the statement in flight: it may or may not have been
            # committed, so it must not be sent again
            log.exception("signature lane: the statement's outcome is unknown")
            error = GraphQLError(str(exc), path=[plan.response_key], original_error=exc)
            return _encode({"errors": [format_error(error)], "data": None})
        self.answered += 1
        ACTIONS_RECEIVED.labels(kind="addActionContact").inc()
        await pipeline_of(state).after_commit([], [int(row[1])])
        values = {
            "contactRef": base64url.encode(fingerprint),
            "firstName": first_name,
            "__typename": get_named_type(plan.field.type).name,
        }
        result = {key: values[name] for key, name in plan.outputs}
        return _encode({"data": {plan.response_key: result}})

    def _refresh(self, what: tuple[str, int]) -> None:
        """Reload a page snapshot or an org's keys in the background, once at a time, before
        they expire. Without it every entry's expiry sends all the requests of that moment
        the general way at once (each needing a session and a pooled connection), a stall
        that was most of the lane's p99. Entries are used only while fresh either way."""
        if what in self._refreshing:
            return
        task = asyncio.get_running_loop().create_task(self._reload(what))
        self._refreshing[what] = task
        task.add_done_callback(lambda _: self._refreshing.pop(what, None))

    async def _reload(self, what: tuple[str, int]) -> None:
        kind, ident = what
        try:
            async with self.sessionmaker() as session:
                if kind == "page":
                    await self.page_cache.reload_page(session, ident)
                else:
                    await keyring_for(self.settings.org_name).refresh(session, ident)
        except Exception:
            log.info("signature lane: refreshing %s %s failed", kind, ident, exc_info=True)

    def _prepare(
        self, plan: Plan, raw_variables: dict[str, Any], referer: str | None
    ) -> tuple[str, list[Any], bytes, str | None, str | None] | None:
        """The statement and its arguments, the fingerprint and first name; None when the
        request is not one for the lane (its outcome is then the general path's to give)."""
        try:
            variables = get_variable_values(
                self.schema,
                plan.variable_definitions,
                convert_variables(raw_variables, plan.variable_types),
            )
            if isinstance(variables, list):
                return None
            args = get_argument_values(plan.field, plan.node, variables)
            action = args["action"]
            if (
                action.get("donation") is not None
                or action.get("mtt") is not None
                or args.get("contactRef") is not None
            ):
                return None
            page_id = args["actionPageId"]
            cached = self.page_cache.cached_page(page_id)
            if cached is None:
                return None
            page, age = cached
            if age > self.page_cache.page_ttl / 2:
                self._refresh(("page", page_id))
            source = self.page_cache.cached_source(
                source_key(tracking_values(args.get("tracking")), referer)
            )
            if source == service.MISSING:
                return None
            data = action_values(action)
            service.check_action(data)
            contact = validate_contact(
                page.campaign.contact_schema,
                contact_values(args["contact"]),
                seed=self.settings.fingerprint_seed,
                today=utcnow().date(),
            )
            privacy = args["privacy"]
            receivers = service.receivers(page, privacy.get("optIn"), privacy.get("leadOptIn"))
            if not receivers:
                return None
            keyring = keyring_for(
                self.settings.org_name, require_encryption=self.settings.require_encryption
            )
            sealed = []
            for consent in receivers:
                copy = keyring.cached_seal(consent.org_id, contact.payload)
                if copy is None:
                    return None
                if keyring.ageing(consent.org_id):
                    self._refresh(("keys", consent.org_id))
                sealed.append((consent, copy))
        except Exception:
            return None
        rows = service.signature_rows(page, contact, data, source, sealed)
        sql, arguments = store.pg_signature(*rows, utcnow())
        return sql, arguments, contact.fingerprint, contact.first_name, contact.email


async def _keep(connection: asyncpg.Connection) -> None:
    """The pool's reset between two uses. asyncpg's default (advisory unlocks, CLOSE ALL,
    UNLISTEN *, RESET ALL) is a further round trip per signature; the lane's one autocommit
    statement leaves no session state behind to reset."""


def _request(body: bytes) -> tuple[str, str | None, dict[str, Any]] | None:
    """(query, operationName, variables) of a JSON request body, None when anything about it
    is not plain."""
    try:
        params = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(params, dict):
        return None
    query = params.get("query")
    operation_name = params.get("operationName") or None
    if not isinstance(query, str) or not (
        operation_name is None or isinstance(operation_name, str)
    ):
        return None
    extensions = params.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        return None
    try:
        if idempotency.key_from({}, extensions) is not None:
            return None
        variables = parse_variables(params.get("variables"), body) or {}
    except (idempotency.BadKey, BadRequest):
        return None
    return query, operation_name, variables


def _encode(body: dict[str, Any]) -> bytes:
    return dumps_answer(body).encode()


class SignatureLaneMiddleware:
    def __init__(self, app: ASGIApp, lane: SignatureLane) -> None:
        self.app = app
        self.lane = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != "/api"
            or not self.lane.enabled
        ):
            await self.app(scope, receive, send)
            return
        referer = None
        for name, value in scope["headers"]:
            if name in (b"authorization", b"idempotency-key"):
                await self.app(scope, receive, send)
                return
            if name == b"cookie" and any(c in value for c in _CREDENTIAL_COOKIES):
                await self.app(scope, receive, send)
                return
            if name == b"content-type":
                kind = value.split(b";", 1)[0].strip().lower()
                if kind not in (b"application/json", b""):
                    await self.app(scope, receive, send)
                    return
            elif name == b"referer":
                referer = value.decode("latin-1")
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        client = scope.get("client")
        answer = await self.lane.answer(
            body, referer, state_of(scope["app"]), client[0] if client else None
        )
        if answer is None:
            await self.app(scope, _replay(body, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
