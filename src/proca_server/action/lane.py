"""The signature lane: the widget's addActionContact answered in a few hundred microseconds.

A signature is the hot path of a campaign in a viral spike, and most of its cost on the general
path is machinery, not work: the ASGI router, the GraphQL executor, the ORM session and its
greenlets, and BEGIN and COMMIT round trips around a single statement. The lane is an ASGI
middleware in front of the router (inside CORS) that answers a `POST /api` signature itself
when it can, and otherwise passes the request on untouched (its body replayed):

- requests with credentials (Authorization, session cookies) or a body that is not JSON are
  not the widget's: passed on at once, and not counted;
- a document is compiled once per text (`compile_document`): one `addActionContact` mutation
  selecting only `contactRef`, `firstName` and `__typename` (aliases allowed) is a
  `LaneDocument`; another document with addActionContact is counted as a "document" fallback;
- the signature itself goes through signature.py: the arguments as graphql-core coerces them,
  mapped by widget_api.py, and then `plain_statement`, which asks the shared rule
  (`general_path_reason`: captcha, idempotency key, donation, MTT, contactRef...) and runs the
  signature's steps from this process's caches (page, sources row, keys; a miss goes the
  general path, which fills them).

So every request the lane takes would succeed on the general path, and every error comes from
the general path, in its shape. The lane then runs the signature's one statement on its own
asyncpg pool, grouped with the signatures of the same few milliseconds (`SIGNATURE_BATCH_MS`)
into one round trip and one commit (batcher.py: a group is atomic, and a refused group is
retried statement by statement), hands the action off as the general path does after its
commit, and writes the answer.

Every signature the lane leaves to the general path is counted in
`proca_signature_lane_fallbacks_total{reason}` (FALLBACKS) and logged at DEBUG, the signatures
it answers in `proca_signature_lane_answered_total`. An unexpected exception in the lane's own
steps is the "error" reason, logged as a WARNING with its type and place (never its message,
which may echo the input), once a minute per type at most.
docs/adr/0002-signature-fast-path.md; tests/test_signature_lane.py checks that both paths
store and answer the same."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

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

from proca_server.action import captcha, service
from proca_server.action.batcher import StatementBatcher
from proca_server.action.signature import (
    CacheEntry,
    PlainFallback,
    PlainStatement,
    hand_off,
    plain_statement,
)
from proca_server.action.tracking import SourceKey
from proca_server.action.velocity import UNLIMITED, SignatureVelocity
from proca_server.action.widget_api import signature_input
from proca_server.app_state import AppState, state_of
from proca_server.auth.authenticate import carries_credentials
from proca_server.config import Settings
from proca_server.contact.keyrings import keyring_for
from proca_server.errors import NotFound, ProcaError, QueryTooComplex, TooManySignatures
from proca_server.graphql import idempotency
from proca_server.graphql.errors import format_error
from proca_server.graphql.http import BadRequest, dumps_answer, parse_variables
from proca_server.graphql.limits import Limits, check_document, default_limits
from proca_server.graphql.names import convert_variables
from proca_server.kit import base64url
from proca_server.kit.cache import Cache
from proca_server.metrics import SIGNATURE_LANE_ANSWERED, SIGNATURE_LANE_FALLBACKS
from proca_server.processing.handoff import pipeline_of

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DOCUMENT_CACHE_SIZE = 256
POOL_RETRY = 10.0
# how long a signature waits for what it found missing from the caches to be loaded (`_fill`)
# before it goes the general way
FILL_WAIT = 1.0
# connections the lane's pool opens at start and keeps (a PostgreSQL connection is a process
# to fork and warm: opening them in the first seconds of a spike was that spike's worst tail)
WARM_CONNECTIONS = 4
# the most often an unexpected exception of one type is logged
ERROR_LOG_INTERVAL = 60.0
_OUTPUT_FIELDS = frozenset(("contactRef", "firstName", "__typename"))

# Why a signature went the general way: the shared rule's reasons and the plain steps' own
# (signature.py: captcha, idempotency, input, invalid, cache), then the lane's: "document" (an
# addActionContact document the lane does not answer), "velocity" (over a velocity limit: the
# general path refuses it in its shape), "pool" (no connection pool), "refused" (the database
# refused the statement, or it could not be sent: nothing was written) and "error" (an
# unexpected exception: a bug).
Fallback = Literal[PlainFallback, "document", "velocity", "pool", "refused", "error"]
FALLBACKS: tuple[Fallback, ...] = get_args(Fallback)
_FALLBACKS = {reason: SIGNATURE_LANE_FALLBACKS.labels(reason=reason) for reason in FALLBACKS}


@dataclass(frozen=True)
class LaneDocument:
    """A compiled document the lane answers: its variables, the mutation field and what it
    selects."""

    variable_definitions: list[VariableDefinitionNode]
    variable_types: dict[str, GraphQLInputType]
    field: GraphQLField
    node: FieldNode
    response_key: str
    outputs: tuple[tuple[str, str], ...]  # (response key, field name)


# a document with addActionContact in a shape the lane does not answer
OTHER_SHAPE: Literal["document"] = "document"


def compile_document(
    schema: GraphQLSchema, query: str, operation_name: str | None, limits: Limits | None = None
) -> LaneDocument | Literal["document"] | None:
    """The lane's compiled form of a valid document, within the document limits, whose
    operation is one plain addActionContact; OTHER_SHAPE for another mutation with
    addActionContact; None for anything else (not a signature, or not a valid document)."""
    try:
        document = check_document(schema, query, limits or default_limits(), count=False)
    except (GraphQLError, QueryTooComplex):
        return None
    if validate(schema, document):
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        named = operations
    else:
        named = [o for o in operations if o.name and o.name.value == operation_name]
    if len(named) != 1 or named[0].operation is not OperationType.MUTATION:
        return None
    operation = named[0]
    selections = operation.selection_set.selections
    if not any(isinstance(s, FieldNode) and s.name.value == "addActionContact" for s in selections):
        return None
    if len(operations) != len(document.definitions) or operation.directives:
        return OTHER_SHAPE  # fragments, directives: not the widget's shape
    if len(selections) != 1:
        return OTHER_SHAPE
    node = selections[0]
    assert isinstance(node, FieldNode)
    if node.directives or node.selection_set is None:
        return OTHER_SHAPE
    outputs = []
    for child in node.selection_set.selections:
        if (
            not isinstance(child, FieldNode)
            or child.directives
            or child.selection_set is not None
            or child.name.value not in _OUTPUT_FIELDS
        ):
            return OTHER_SHAPE
        outputs.append(((child.alias or child.name).value, child.name.value))
    mutation = schema.mutation_type
    assert mutation is not None
    definitions = list(operation.variable_definitions or [])
    types: dict[str, GraphQLInputType] = {}
    for definition in definitions:
        type_ = type_from_ast(schema, definition.type)
        if type_ is None:
            return OTHER_SHAPE
        types[definition.variable.name.value] = type_  # type: ignore[assignment]
    return LaneDocument(
        variable_definitions=definitions,
        variable_types=types,
        field=mutation.fields["addActionContact"],
        node=node,
        response_key=(node.alias or node.name).value,
        outputs=tuple(outputs),
    )


class SignatureLane:
    """The lane's state in one process: compiled documents and the asyncpg pool."""

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
        self._refreshing: dict[CacheEntry, asyncio.Task[None]] = {}
        self._refresher = self._refresh  # bound once: the plain steps call it back
        self.enabled = settings.signature_lane and engine.dialect.name == "postgresql"
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._pool_retry_at = 0.0
        self._opening: asyncio.Task[asyncpg.Pool | None] | None = None
        # compiled documents, for good: they depend on the text alone
        self._documents: Cache[
            tuple[str, str | None], LaneDocument | Literal["document"] | None
        ] = Cache(DOCUMENT_CACHE_SIZE)
        self.batcher = StatementBatcher(
            self._connections, window=settings.signature_batch_ms / 1000
        )
        self.answered = 0  # signatures the lane stored (the general path's are not counted)
        # when an unexpected exception of each type may be logged again
        self._quiet_until: dict[str, float] = {}

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

    def _document(
        self, query: str, operation_name: str | None
    ) -> LaneDocument | Literal["document"] | None:
        key = (query, operation_name)
        cached = self._documents.get_aged(key)
        if cached is not None:
            return cached[0]
        document = compile_document(self.schema, query, operation_name, self.limits)
        self._documents.put(key, document)
        return document

    async def answer(
        self,
        body: bytes,
        referer: str | None,
        state: AppState,
        address: str | None = None,
        *,
        idempotency_header: bool = False,
    ) -> bytes | None:
        """The response body for a request the lane takes; None to pass it on."""
        request = _request(body)
        if request is None:
            return None
        query, operation_name, params = request
        document = self._document(query, operation_name)
        if document is None:
            return None  # not a signature
        if isinstance(document, str):
            self._fall_back(document)  # another shape of addActionContact
            return None
        missing: list[CacheEntry] = []
        plain = self._prepare(document, params, body, referer, idempotency_header, missing)
        if plain == "cache" and missing:
            # each try names what it missed first (the page before its keys): load, try again
            deadline = time.monotonic() + FILL_WAIT
            loaded: set[CacheEntry] = set()
            while plain == "cache" and missing and not loaded.issuperset(missing):
                loaded.update(missing)
                if not await self._fill(missing, deadline - time.monotonic()):
                    break
                missing.clear()
                plain = self._prepare(document, params, body, referer, idempotency_header, missing)
        if isinstance(plain, str):
            self._fall_back(plain)
            return None
        if await self._connections() is None:
            self._fall_back("pool")
            return None
        try:
            self.velocity.admit(address, plain.email)
        except TooManySignatures:
            self._fall_back("velocity")  # the general path refuses it, in its shape
            return None
        try:
            row = await self.batcher.fetchrow(plain.sql, plain.arguments)
        except (asyncpg.PostgresError, OSError) as exc:
            # refused or never sent: nothing was written; the general path answers (and counts
            # the signature against the velocity limits again)
            self.velocity.give_back(address, plain.email)
            log.info("signature lane: %s; the request goes the general way", type(exc).__name__)
            self._fall_back("refused")
            return None
        except Exception as exc:
            # the connection broke with the statement in flight: it may or may not have been
            # committed, so it must not be sent again
            log.exception("signature lane: the statement's outcome is unknown")
            error = GraphQLError(str(exc), path=[document.response_key], original_error=exc)
            return _encode({"errors": [format_error(error)], "data": None})
        self.answered += 1
        SIGNATURE_LANE_ANSWERED.inc()
        await hand_off(pipeline_of(state), [int(row[1])], "addActionContact")
        values = {
            "contactRef": base64url.encode(plain.fingerprint),
            "firstName": plain.first_name,
            "__typename": get_named_type(document.field.type).name,
        }
        result = {key: values[name] for key, name in document.outputs}
        return _encode({"data": {document.response_key: result}})

    def _prepare(
        self,
        document: LaneDocument,
        params: dict[str, Any],
        body: bytes,
        referer: str | None,
        idempotency_header: bool,
        missing: list[CacheEntry],
    ) -> PlainStatement | Fallback:
        """The signature's statement (signature.py `plain_statement`) from the request's
        variables and extensions, or why the general path takes it (with "cache", what was
        not cached is added to `missing`)."""
        try:
            extensions = params.get("extensions")
            if extensions is not None and not isinstance(extensions, dict):
                return "invalid"
            idempotency_key = idempotency_header or (
                extensions is not None and idempotency.key_from({}, extensions) is not None
            )
            variables = get_variable_values(
                self.schema,
                document.variable_definitions,
                convert_variables(
                    parse_variables(params.get("variables"), body) or {}, document.variable_types
                ),
            )
            if isinstance(variables, list):
                return "invalid"
            args = get_argument_values(document.field, document.node, variables)
            signature = signature_input(args)
            if signature is None:
                return "input"
            return plain_statement(
                self.settings,
                self.page_cache,
                signature,
                referer,
                idempotency_key=idempotency_key,
                refresh=self._refresher,
                missing=missing.append,
            )
        except (GraphQLError, ProcaError, BadRequest, idempotency.BadKey):
            return "invalid"  # the general path answers why
        except Exception as exc:
            # the last safety net: a bug here must neither fail the request nor send all
            # signatures the slower way unseen
            self._unexpected(exc)
            return "error"

    def _fall_back(self, reason: Fallback) -> None:
        """Count a signature left to the general path (its answer is the general path's)."""
        _FALLBACKS[reason].inc()
        log.debug("signature lane: %s; the signature goes the general way", reason)

    def _unexpected(self, exc: Exception) -> None:
        """Log an unexpected exception's type and where it was raised, at most once per type
        every ERROR_LOG_INTERVAL seconds; never its message, which may echo the input."""
        kind = type(exc).__name__
        now = time.monotonic()
        if now < self._quiet_until.get(kind, 0.0):
            return
        self._quiet_until[kind] = now + ERROR_LOG_INTERVAL
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        log.warning(
            "signature lane: unexpected %s%s; signatures go the general way (counted as "
            "reason error, logged at most once a minute)",
            kind,
            where,
        )

    def _refresh(self, what: CacheEntry) -> asyncio.Task[None]:
        """Reload a page snapshot, an org's keys or a sources row in the background, once at
        a time: before they expire (without it every entry's expiry sent all the requests of
        that moment the general way at once, each needing a session and a pooled connection,
        a stall that was most of the lane's p99), and when they are missing (`_fill`).
        Entries are used only while fresh either way."""
        task = self._refreshing.get(what)
        if task is not None:
            return task
        task = asyncio.get_running_loop().create_task(self._reload(what))
        self._refreshing[what] = task
        task.add_done_callback(lambda _: self._refreshing.pop(what, None))
        return task

    async def _fill(self, missing: list[CacheEntry], wait: float) -> bool:
        """Load what a signature found missing from the caches, one load per entry for all
        the requests that miss it at once, waiting `wait` seconds at most (FILL_WAIT in all
        for a signature); whether the loads ended (the caller then tries the caches again).
        Without it the first burst after a quiet spell (a page snapshot expired) or with new
        tracking sent every signature of that moment the general way at once: in a spike of
        500 connections, a few hundred of them, stalled for seconds on the general path's
        pool (docs/benchmarks.md (13)). A request cancelled while it waits leaves the load
        running for the others."""
        if wait <= 0:
            return False
        loads = [self._refresh(entry) for entry in dict.fromkeys(missing)]
        _, pending = await asyncio.wait(loads, timeout=wait)
        return not pending

    async def _reload(self, what: CacheEntry) -> None:
        kind, ident = what
        try:
            async with self.sessionmaker() as session:
                if kind == "page" and isinstance(ident, int):
                    with contextlib.suppress(NotFound):  # the general path answers it
                        await self.page_cache.reload_page(session, ident)
                elif kind == "keys" and isinstance(ident, int):
                    await keyring_for(self.settings.org_name).refresh(session, ident)
                elif kind == "source" and isinstance(ident, SourceKey):
                    await self.page_cache.fill_source(session, ident)
        except Exception:
            log.info("signature lane: loading the %s entry failed", kind, exc_info=True)


async def _keep(connection: asyncpg.Connection) -> None:
    """The pool's reset between two uses. asyncpg's default (advisory unlocks, CLOSE ALL,
    UNLISTEN *, RESET ALL) is a further round trip per signature; the lane's one autocommit
    statement leaves no session state behind to reset."""


def _request(body: bytes) -> tuple[str, str | None, dict[str, Any]] | None:
    """(query, operationName, the whole request) of a JSON request body with a query; None
    when it is not one."""
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
    return query, operation_name, params


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
            or carries_credentials(scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        referer = None
        idempotency_header = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                kind = value.split(b";", 1)[0].strip().lower()
                if kind not in (b"application/json", b""):
                    await self.app(scope, receive, send)
                    return
            elif name == b"referer":
                referer = value.decode("latin-1")
            elif name == b"idempotency-key":
                idempotency_header = True
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
            body,
            referer,
            state_of(scope["app"]),
            client[0] if client else None,
            idempotency_header=idempotency_header,
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
