"""Detail worker (queue `wrk.N.detail`): for each lookup request, asks the org's detail
backend about the supporter, folds the answer in and emits the action's stage messages
(processing/detail.py says what the answer holds and changes).

The backend is a webhook service, reached as the webhook worker reaches one (its URL,
Basic or raw `Authorization`, `X-Proca-Signature` when its password carries a signing
secret). It gets a POST of `{"email", "contactRef"}` and has DETAIL_LOOKUP_TIMEOUT_MS to
answer.

Outcomes: 200 (any 2xx) with a valid answer → applied, then the stage messages go out; 404
(the backend does not know the supporter) → they go out without details; a timeout, a
network error, 408, 429 or 5xx → retried through the queue's retry delay, parked after
RETRY_LIMIT; any other status, a body that is not a JSON object or an invalid answer →
parked at once. An org whose detail backend is not (or no longer) a webhook service gets its
messages without details (said once an hour). A request whose action has moved on (rejected
meanwhile, say) is dropped. Each request has its own transaction: one failure never holds
back the others of the batch, and each org has its own queue and consumer.

Log lines name the action, the org and the backend's host; never the email, the contactRef
or the answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.base import (
    BatchHandler,
    BrokerError,
    Delivery,
    PermanentError,
    RetryableError,
)
from proca_server.metrics import DETAIL_LOOKUPS, WORKER_DURATION
from proca_server.models import Action, Org, Service
from proca_server.processing.detail import (
    DETAIL_WORKER,
    InvalidDetails,
    LookupRequest,
    SupporterDetails,
    apply_details,
    decode_lookup,
    lookup_body,
    lookup_due,
    parse_details,
)
from proca_server.processing.loader import load_actions_for_processing
from proca_server.processing.messages import Publication
from proca_server.processing.service import apply_plans, emission_plan
from proca_server.workers import WorkerDeps
from proca_server.workers.common import ServiceConfig, count_outcomes
from proca_server.workers.webhook import RETRY_STATUSES, request_headers

log = logging.getLogger("proca_server.workers.detail")

CONCURRENCY = 5
CONNECT_TIMEOUT = 5.0


class LookupFailed(Exception):
    """A lookup without a usable answer: `outcome` is its metric label, `error` what the
    message gets (retryable or permanent)."""

    def __init__(self, outcome: str, error: RetryableError | PermanentError) -> None:
        super().__init__(str(error))
        self.outcome = outcome
        self.error = error


@dataclass(frozen=True, slots=True)
class _Asked:
    """What a lookup found: the details, or None (not found, no backend) and why."""

    details: SupporterDetails | None
    outcome: str


def timeout_of(milliseconds: int) -> httpx.Timeout:
    seconds = milliseconds / 1000
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))


async def load_detail_backend(session: AsyncSession, org_id: int) -> ServiceConfig | None:
    """The org's detail backend when it is a webhook service."""
    row = (
        await session.execute(
            select(Service)
            .join(Org, Org.detail_backend_id == Service.id)
            .where(Org.id == org_id, Service.name == "webhook")
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return ServiceConfig(
        row.id, row.name, row.host or "", row.user or "", row.password or "", row.path
    )


def _host(url: str) -> str:
    """The URL's host, for messages: its path and query may carry tokens."""
    try:
        return httpx.URL(url).host or "?"
    except httpx.InvalidURL:
        return "?"


async def ask_backend(
    client: httpx.AsyncClient, service: ServiceConfig, body: bytes
) -> SupporterDetails | None:
    """POST one lookup; the details, or None when the backend does not know the supporter.
    Raises LookupFailed."""
    url = service.host
    where = f"detail backend {_host(url)}"
    if not url.startswith(("http://", "https://")):
        raise LookupFailed("refused", PermanentError(f"{where}: service {service.id} has no URL"))
    try:
        response = await client.post(url, content=body, headers=request_headers(service, body))
    except httpx.TimeoutException:
        raise LookupFailed("timeout", RetryableError(f"{where}: timed out")) from None
    except httpx.HTTPError as exc:
        raise LookupFailed(
            "unavailable", RetryableError(f"{where}: {type(exc).__name__}")
        ) from None
    status = response.status_code
    if status == 404:
        return None
    if 200 <= status < 300:
        try:
            return parse_details(response.json())
        except ValueError as exc:  # not JSON, or InvalidDetails
            reason = str(exc) if isinstance(exc, InvalidDetails) else "the answer is not JSON"
            raise LookupFailed("invalid", PermanentError(f"{where}: {reason}")) from None
    if status >= 500 or status in RETRY_STATUSES:
        raise LookupFailed("unavailable", RetryableError(f"{where} answered {status}"))
    raise LookupFailed("refused", PermanentError(f"{where} answered {status}"))


async def _publish(
    deps: WorkerDeps, session: AsyncSession, publications: Sequence[Publication]
) -> None:
    """The stage messages, sent with the transaction that clears what delivery clears: in
    it for the embedded queue, confirmed before its commit for RabbitMQ (a commit that fails
    then sends them again on the retry; consumers take a message twice)."""
    outcomes = await deps.broker.publish_batch(
        [(p.exchange, p.routing_key, p.body) for p in publications], session=session
    )
    for p, outcome in zip(publications, outcomes, strict=True):
        if isinstance(outcome, BrokerError):
            raise RetryableError(f"publish to {p.exchange}: {type(outcome).__name__}")


async def _finish(
    deps: WorkerDeps, request: LookupRequest, details: SupporterDetails | None
) -> None:
    """Apply the details and emit the stage messages, in one transaction."""
    async with deps.sessionmaker() as session, session.begin():
        found = await load_actions_for_processing(session, [request.action_id], lock=True)
        if not found:
            if await session.get(Action, request.action_id) is not None:
                # another process holds the row (PostgreSQL's SKIP LOCKED)
                raise RetryableError(f"action {request.action_id} is being processed")
            return
        loaded = found[0]
        if not lookup_due(loaded, request.stage):
            return
        if details is not None:
            try:
                await apply_details(session, loaded, details)
            except InvalidDetails as exc:
                raise PermanentError(f"detail backend answer: {exc}") from None
        plan = emission_plan(loaded, request.stage)
        await _publish(deps, session, plan.publications)
        await apply_plans(session, [plan])


async def lookup_batch(
    deps: WorkerDeps,
    org_id: int,
    deliveries: Sequence[Delivery],
    *,
    client: httpx.AsyncClient | None = None,
) -> list[BaseException | None]:
    start = perf_counter()
    results: list[BaseException | None] = [None] * len(deliveries)
    requests: dict[int, LookupRequest] = {}
    for i, delivery in enumerate(deliveries):
        try:
            requests[i] = decode_lookup(delivery.body)
        except ValueError as exc:
            results[i] = PermanentError(str(exc))

    # what to ask, read in one short transaction (none is held while the backend answers)
    bodies: dict[int, bytes] = {}
    async with deps.sessionmaker() as session:
        service = await load_detail_backend(session, org_id)
        ids = sorted({r.action_id for r in requests.values()})
        loaded = {la.action.id: la for la in await load_actions_for_processing(session, ids)}
        for i, request in requests.items():
            action = loaded.get(request.action_id)
            if action is not None and lookup_due(action, request.stage):
                bodies[i] = lookup_body(action)
    if bodies and service is None and deps.notices.first(("detail_backend", org_id)):
        log.warning(
            "org %d: its detail backend is not a webhook service: actions go on without "
            "supporter lookups",
            org_id,
        )

    limit = asyncio.Semaphore(CONCURRENCY)

    async def ask(http: httpx.AsyncClient, i: int) -> _Asked | LookupFailed:
        if service is None:
            return _Asked(None, "no_backend")
        try:
            async with limit:
                details = await ask_backend(http, service, bodies[i])
        except LookupFailed as failed:
            return failed
        return _Asked(details, "ok" if details is not None else "not_found")

    if client is None:
        timeout = timeout_of(deps.settings.detail_lookup_timeout_ms)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            asked = await asyncio.gather(*(ask(http, i) for i in bodies))
    else:
        asked = await asyncio.gather(*(ask(client, i) for i in bodies))
    answers = dict(zip(bodies, asked, strict=True))

    for i, request in requests.items():
        answer = answers.get(i)
        try:
            if isinstance(answer, LookupFailed):
                raise answer.error
            await _finish(deps, request, answer.details if answer is not None else None)
        except (RetryableError, PermanentError) as exc:
            results[i] = exc
            log.warning(
                "detail lookup of action %d (org %d) failed: %s", request.action_id, org_id, exc
            )
        if answer is not None:
            outcome = answer.outcome
            if isinstance(results[i], PermanentError) and outcome == "ok":
                outcome = "invalid"  # the merged fields did not fit
            DETAIL_LOOKUPS.labels(outcome=outcome).inc()

    WORKER_DURATION.labels(worker=DETAIL_WORKER).observe(perf_counter() - start)
    count_outcomes(DETAIL_WORKER, deliveries, results, deps.settings.retry_limit)
    return results


def detail_batch_handler(deps: WorkerDeps, org_id: int) -> BatchHandler:
    async def handle(deliveries: list[Delivery]) -> list[BaseException | None]:
        return await lookup_batch(deps, org_id, deliveries)

    return handle
