"""Webhook worker (queue `wrk.N.webhook`): one POST of each message to the org's webhook
service, the push backend for actions and the event backend for events.

Service fields: `host` is the URL; `user` and `password` both set give Basic auth, a
`password` alone is sent as the raw `Authorization` header value.

Signing: a webhook service's `password` may end with a signing secret, written
`hmac:<secret>` after a space (`"Bearer t0ken hmac:s3cret"`, `"pass hmac:s3cret"`), or be
that alone (`"hmac:s3cret"`: signed, no Authorization). The secret is never sent; each
request then carries `X-Proca-Signature: sha256=<hex HMAC-SHA256 of the exact body>`. The
password is the service field the API never shows, which is why the secret lives there.

Outcomes: any 2xx delivers the message; 408, 429, 5xx, timeouts and network errors are
retried; other answers (4xx, 3xx: redirects are not followed) park it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections.abc import Sequence
from time import perf_counter
from urllib.parse import urlsplit

import httpx

from proca_server.broker.base import BatchHandler, Delivery, PermanentError, RetryableError
from proca_server.metrics import WORKER_DURATION
from proca_server.workers import WorkerDeps
from proca_server.workers.common import (
    ServiceConfig,
    backend_kind,
    count_outcomes,
    decode_message,
    load_backends,
    service_for,
)

log = logging.getLogger("proca_server.workers.webhook")

SIGNATURE_HEADER = "X-Proca-Signature"
HMAC_PREFIX = "hmac:"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
CONCURRENCY = 5
RETRY_STATUSES = frozenset({408, 429})


def split_password(password: str) -> tuple[str, str | None]:
    """(the credential sent in Authorization, the signing secret or None)."""
    if password.startswith(HMAC_PREFIX):
        return "", password[len(HMAC_PREFIX) :] or None
    credential, sep, last = password.rpartition(" ")
    if sep and last.startswith(HMAC_PREFIX) and len(last) > len(HMAC_PREFIX):
        return credential, last[len(HMAC_PREFIX) :]
    return password, None


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def request_headers(service: ServiceConfig, body: bytes) -> dict[str, str]:
    credential, secret = split_password(service.password)
    headers = {"Content-Type": "application/json", "User-Agent": "proca-server"}
    if service.user and credential:
        token = base64.b64encode(f"{service.user}:{credential}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif credential:
        headers["Authorization"] = credential
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


def _where(url: str) -> str:
    """The URL's host, for messages: the path and query may carry tokens."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


async def post_message(client: httpx.AsyncClient, service: ServiceConfig, body: bytes) -> None:
    """POST one message body; raises RetryableError or PermanentError when not delivered."""
    url = service.host
    if not url.startswith(("http://", "https://")):
        raise PermanentError(f"webhook service {service.id} has no http(s) URL")
    try:
        response = await client.post(url, content=body, headers=request_headers(service, body))
    except httpx.TimeoutException:
        raise RetryableError(f"webhook {_where(url)}: timed out") from None
    except httpx.HTTPError as exc:
        raise RetryableError(f"webhook {_where(url)}: {type(exc).__name__}") from None
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"webhook {_where(url)} answered {status}"
    if status >= 500 or status in RETRY_STATUSES:
        raise RetryableError(reason)
    raise PermanentError(reason)


async def deliver_batch(
    deps: WorkerDeps,
    org_id: int,
    deliveries: Sequence[Delivery],
    *,
    client: httpx.AsyncClient | None = None,
) -> list[BaseException | None]:
    backends = await load_backends(deps.sessionmaker, org_id)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(http: httpx.AsyncClient, delivery: Delivery) -> BaseException | None:
        try:
            kind = backend_kind(decode_message(delivery))
            service = service_for(backends, kind, "webhook")
            async with limit:
                await post_message(http, service, delivery.body)
        except (PermanentError, RetryableError) as exc:
            log.warning("queue %s message %s: %s", delivery.queue, delivery.id, exc)
            return exc
        return None

    start = perf_counter()
    if client is None:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
            results = await asyncio.gather(*(one(http, d) for d in deliveries))
    else:
        results = await asyncio.gather(*(one(client, d) for d in deliveries))
    WORKER_DURATION.labels(worker="webhook").observe(perf_counter() - start)
    count_outcomes("webhook", deliveries, results, deps.settings.retry_limit)
    return list(results)


def webhook_batch_handler(deps: WorkerDeps, org_id: int) -> BatchHandler:
    async def handle(deliveries: list[Delivery]) -> list[BaseException | None]:
        return await deliver_batch(deps, org_id, deliveries)

    return handle
