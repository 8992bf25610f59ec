"""SQS worker (queue `wrk.N.sqs`): messages go to the org's SQS service with
`SendMessageBatch`, ten at a time, actions to the push backend and events to the event
backend.

Service fields: `host` is the AWS region, `user` the access key id, `password` the secret
key, `path` the queue URL. Requests go to the queue URL's origin, so an SQS-compatible
endpoint (ElasticMQ, LocalStack) works by giving its queue URL.

Each entry's body is the JSON message, its id the action id (or `m<index>` for messages
without one, and for a repeated id), with the string attributes Schema, Stage, CampaignName
and ActionType when the message has them. Entries SQS refuses fail alone: for good when SQS
blames the sender, else to be retried; a failed call fails its whole batch."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from proca_server.broker.base import BatchHandler, Delivery, PermanentError, RetryableError
from proca_server.metrics import WORKER_DURATION
from proca_server.workers import WorkerDeps
from proca_server.workers.common import (
    BackendKind,
    ServiceConfig,
    backend_kind,
    count_outcomes,
    decode_message,
    load_backends,
    service_for,
)

log = logging.getLogger("proca_server.workers.sqs")

BATCH_SIZE = 10
PERMANENT_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "InvalidAddress",
        "InvalidParameterValue",
        "InvalidMessageContents",
        "AWS.SimpleQueueService.BatchRequestTooLong",
        "BatchRequestTooLong",
    }
)
_ATTRIBUTES = (
    ("Schema", ("schema",)),
    ("Stage", ("stage",)),
    ("CampaignName", ("campaign", "name")),
    ("ActionType", ("action", "actionType")),
)


def _lookup(message: dict[str, Any], path: tuple[str, ...]) -> object:
    value: object = message
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def message_attributes(message: dict[str, Any]) -> dict[str, dict[str, str]]:
    attributes = {}
    for name, path in _ATTRIBUTES:
        value = _lookup(message, path)
        if isinstance(value, str) and value:
            attributes[name] = {"DataType": "String", "StringValue": value}
    return attributes


def batch_entries(messages: Sequence[tuple[Delivery, dict[str, Any]]]) -> list[dict[str, Any]]:
    entries = []
    seen: set[str] = set()
    for index, (delivery, message) in enumerate(messages):
        action_id = message.get("actionId")
        entry_id = str(action_id) if isinstance(action_id, int) else ""
        if not entry_id or entry_id in seen:
            entry_id = f"m{index}"
        seen.add(entry_id)
        entries.append(
            {
                "Id": entry_id,
                "MessageBody": delivery.body.decode(),
                "MessageAttributes": message_attributes(message),
            }
        )
    return entries


def _endpoint(queue_url: str) -> str:
    parts = urlsplit(queue_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PermanentError("the SQS service's path is not a queue URL")
    return f"{parts.scheme}://{parts.netloc}"


def _call_error(exc: Exception, secret: str) -> Exception:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Error"))
        reason = f"SQS refused the batch: {code}"
        return PermanentError(reason) if code in PERMANENT_CODES else RetryableError(reason)
    text = f"SQS call failed: {type(exc).__name__}"
    return RetryableError(text.replace(secret, "***") if secret else text)


async def send_batch(
    service: ServiceConfig, messages: Sequence[tuple[Delivery, dict[str, Any]]]
) -> list[BaseException | None]:
    """Send up to ten messages in one call; one outcome per message."""
    queue_url = service.path or ""
    entries = batch_entries(messages)
    try:
        endpoint = _endpoint(queue_url)
    except PermanentError as exc:
        return [exc] * len(messages)
    config = AioConfig(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2})
    try:
        async with get_session().create_client(
            "sqs",
            region_name=service.host or None,
            endpoint_url=endpoint,
            aws_access_key_id=service.user or None,
            aws_secret_access_key=service.password or None,
            config=config,
        ) as client:
            answer = await client.send_message_batch(QueueUrl=queue_url, Entries=entries)
    except (ClientError, BotoCoreError) as exc:
        return [_call_error(exc, service.password)] * len(messages)
    failed: dict[str, BaseException] = {}
    for failure in answer.get("Failed", []):
        reason = f"SQS refused the message: {failure.get('Code', 'Error')}"
        sender_fault = bool(failure.get("SenderFault"))
        failed[str(failure.get("Id"))] = (
            PermanentError(reason) if sender_fault else RetryableError(reason)
        )
    return [failed.get(entry["Id"]) for entry in entries]


async def deliver_batch(
    deps: WorkerDeps, org_id: int, deliveries: Sequence[Delivery]
) -> list[BaseException | None]:
    start = perf_counter()
    results: list[BaseException | None] = [None] * len(deliveries)
    backends = await load_backends(deps.sessionmaker, org_id)
    groups: dict[BackendKind, list[tuple[int, Delivery, dict[str, Any]]]] = {}
    for index, delivery in enumerate(deliveries):
        try:
            message = decode_message(delivery)
            kind = backend_kind(message)
            service_for(backends, kind, "sqs")
        except PermanentError as exc:
            results[index] = exc
            continue
        groups.setdefault(kind, []).append((index, delivery, message))
    for kind, members in groups.items():
        service = service_for(backends, kind, "sqs")
        for at in range(0, len(members), BATCH_SIZE):
            chunk = members[at : at + BATCH_SIZE]
            outcomes = await send_batch(service, [(d, m) for _, d, m in chunk])
            for (index, _, _), outcome in zip(chunk, outcomes, strict=True):
                results[index] = outcome
    for delivery, result in zip(deliveries, results, strict=True):
        if result is not None:
            log.warning("queue %s message %s: %s", delivery.queue, delivery.id, result)
    WORKER_DURATION.labels(worker="sqs").observe(perf_counter() - start)
    count_outcomes("sqs", deliveries, results, deps.settings.retry_limit)
    return results


def sqs_batch_handler(deps: WorkerDeps, org_id: int) -> BatchHandler:
    async def handle(deliveries: list[Delivery]) -> list[BaseException | None]:
        return await deliver_batch(deps, org_id, deliveries)

    return handle
