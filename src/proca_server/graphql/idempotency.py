"""Idempotent submissions: a client may send `Idempotency-Key` (header) or
`extensions.idempotencyKey` with a mutation; a retry with the same key gets the first answer
and writes nothing new.

The key is reserved in the same transaction as the first root mutation's writes, so either
both are committed or neither; the answer is stored right after. A retry that arrives while
the first request is still running waits briefly for its answer."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.errors import ProcaError
from proca_server.models import IdempotencyKey

MAX_KEY = 255
WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05


class DuplicateRequest(ProcaError):
    code = "duplicate_request"


class BadKey(ValueError):
    pass


def key_from(headers: Any, extensions: dict[str, Any] | None) -> str | None:
    key = headers.get("idempotency-key")
    if key is None and extensions:
        key = extensions.get("idempotencyKey") or extensions.get("idempotency_key")
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        raise BadKey(f"Idempotency key must be a non-empty string of at most {MAX_KEY} characters")
    return key.strip()


async def reserve(session: AsyncSession, key: str) -> None:
    """Take the key in the current transaction; a concurrent or earlier owner wins."""
    session.add(IdempotencyKey(key=key))
    try:
        await session.flush()
    except IntegrityError as exc:
        raise DuplicateRequest("This idempotency key was already used") from exc


async def stored(
    sessionmaker: async_sessionmaker[AsyncSession], key: str, *, wait: bool
) -> tuple[bool, str | None]:
    """(whether the key is taken, the stored answer); waits for the answer when asked."""
    deadline = asyncio.get_running_loop().time() + (WAIT_SECONDS if wait else 0)
    while True:
        async with sessionmaker() as session:
            row = (
                await session.execute(
                    select(IdempotencyKey.response).where(IdempotencyKey.key == key)
                )
            ).first()
        if row is None:
            return False, None
        if row[0] is not None or asyncio.get_running_loop().time() >= deadline:
            return True, row[0]
        await asyncio.sleep(POLL_SECONDS)


async def save(sessionmaker: async_sessionmaker[AsyncSession], key: str, response: str) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(IdempotencyKey).where(IdempotencyKey.key == key).values(response=response)
        )
