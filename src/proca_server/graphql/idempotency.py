"""Idempotent submissions: a client may send `Idempotency-Key` (header) or
`extensions.idempotencyKey` with a mutation; a retry with the same key gets the first answer
and writes nothing new.

A key belongs to its caller and its request. What is stored is a digest of the caller (the
user, or "anonymous") and the client's string, so one caller's key is a new key for anyone
else; and a digest of the request (document, operation name, variables): the same key with
another request is refused (`KeyReused`), never answered with the stored answer. Keys live
`TTL` (24 hours); expired ones are ignored, taken again, and purged by the app's schedule.

The key is reserved in the same transaction as the first root mutation's writes, so either
both are committed or neither; the answer is stored right after. A retry that arrives while
the first request is still running waits briefly for its answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.errors import ProcaError
from proca_server.kit import jsontext
from proca_server.kit.time import utcnow
from proca_server.models import IdempotencyKey

MAX_KEY = 255
WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05
TTL = timedelta(hours=24)
# kept instead of an answer that carried a secret (Context.answer_has_secret)
NOT_KEPT_ANSWER = jsontext.dumps(
    {
        "data": None,
        "errors": [
            {
                "message": "The answer to this request carried a secret, which is not kept for "
                "replays; send a new request without this idempotency key",
                "extensions": {"code": "idempotency_secret_not_kept"},
            }
        ],
    }
)


class DuplicateRequest(ProcaError):
    code = "duplicate_request"


class KeyReused(ProcaError):
    code = "idempotency_key_reused"
    http_status = 422


class BadKey(ValueError):
    pass


@dataclass(frozen=True)
class Binding:
    """A client's key bound to its caller (`key`) and to its request (`request_hash`)."""

    key: str
    request_hash: str


def bind(
    client_key: str,
    user_id: int | None,
    query: str,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> Binding:
    caller = "anonymous" if user_id is None else f"user:{user_id}"
    key = hashlib.sha256(f"{caller}\n{client_key}".encode()).hexdigest()
    request = json.dumps([query, operation_name, variables or {}], sort_keys=True, default=str)
    return Binding(key, hashlib.sha256(request.encode()).hexdigest())


def key_from(headers: Any, extensions: dict[str, Any] | None) -> str | None:
    key = headers.get("idempotency-key")
    if key is None and extensions:
        key = extensions.get("idempotencyKey") or extensions.get("idempotency_key")
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        raise BadKey(f"Idempotency key must be a non-empty string of at most {MAX_KEY} characters")
    return key.strip()


async def reserve(session: AsyncSession, binding: Binding) -> None:
    """Take the key in the current transaction; a concurrent or earlier owner wins. An
    expired key is taken again."""
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.key == binding.key, IdempotencyKey.inserted_at < utcnow() - TTL
        )
    )
    session.add(IdempotencyKey(key=binding.key, request_hash=binding.request_hash))
    try:
        await session.flush()
    except IntegrityError as exc:
        raise DuplicateRequest("This idempotency key was already used") from exc


async def stored(
    sessionmaker: async_sessionmaker[AsyncSession], binding: Binding, *, wait: bool
) -> tuple[bool, str | None]:
    """(whether the key is taken, the stored answer); waits for the answer when asked.
    Raises KeyReused when the key was taken by another request."""
    deadline = asyncio.get_running_loop().time() + (WAIT_SECONDS if wait else 0)
    while True:
        async with sessionmaker() as session:
            row = (
                await session.execute(
                    select(IdempotencyKey.request_hash, IdempotencyKey.response).where(
                        IdempotencyKey.key == binding.key,
                        IdempotencyKey.inserted_at >= utcnow() - TTL,
                    )
                )
            ).first()
        if row is None:
            return False, None
        if row[0] != binding.request_hash:
            raise KeyReused(
                "This idempotency key was already used with another request; "
                "use a new key for a new request"
            )
        if row[1] is not None or asyncio.get_running_loop().time() >= deadline:
            return True, row[1]
        await asyncio.sleep(POLL_SECONDS)


async def save(
    sessionmaker: async_sessionmaker[AsyncSession], binding: Binding, response: str
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == binding.key)
            .values(response=response)
        )


async def purge_expired(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.inserted_at < utcnow() - TTL)
        )
    return int(getattr(result, "rowcount", 0) or 0)
