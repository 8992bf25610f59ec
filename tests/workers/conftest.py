from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proca_server.broker.embedded import EmbeddedBroker
from proca_server.config import Settings
from proca_server.models import Org, Service
from proca_server.workers import WorkerDeps
from tests.factories import make_org
from tests.local_http import serve


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """A webhook receiver: `/status/<code>` answers with that code, `/slow` after 2 s,
    anything else 200."""

    url: str
    received: list[Received] = field(default_factory=list)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    received: list[Received] = []

    async def endpoint(request: Request) -> Response:
        received.append(Received(request.url.path, dict(request.headers), await request.body()))
        path = request.url.path
        if path == "/slow":
            await asyncio.sleep(2)
        if path.startswith("/status/"):
            return Response("", status_code=int(path.rsplit("/", 1)[1]))
        return Response("ok")

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    async with serve(app) as url:
        yield Peer(url, received)


@pytest.fixture
async def broker(
    sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> AsyncIterator[EmbeddedBroker]:
    # `session` empties the tables after the test
    b = EmbeddedBroker(sessionmaker, retry_limit=2, retry_delay=0.2, poll_interval=0.05)
    yield b
    await b.close()


@pytest.fixture
def deps(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker: EmbeddedBroker,
) -> WorkerDeps:
    return WorkerDeps(settings, sessionmaker, broker)


async def org_with_backends(
    session: AsyncSession,
    *,
    push: dict[str, str] | None = None,
    event: dict[str, str] | None = None,
) -> int:
    """An org whose push / event backends are services with these fields (name included)."""
    org: Org = await make_org(session)
    for role, fields in (("push", push), ("event", event)):
        if fields is None:
            continue
        service = Service(org_id=org.id, **fields)
        session.add(service)
        await session.flush()
        setattr(org, f"{role}_backend_id", service.id)
    await session.commit()
    return org.id
