"""Durability under faults (PostgreSQL + RabbitMQ): while actions are submitted to a served
API (PIPELINE=handoff), RabbitMQ is stopped and started again and the worker process is
killed (-9) and replaced. Every action must end up delivered and in `cus.N.deliver`;
duplicates are allowed (at least once) and printed, losses fail the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import db
from proca_server.config import Settings
from proca_server.models import Action
from proca_server.models.enums import ActionProcessingStatus as A
from tests.clients.harness import serve_proca
from tests.conftest import create_pg_database, drop_pg_database, skip_without_pg
from tests.factories import make_campaign, make_key, make_org, make_page
from tests.pipeline.conftest import (
    AMQP_URL,
    amqp_channel,
    delete_org_entities,
    fresh_org_id,
    require_rabbitmq,
)
from tests.pipeline.helpers import wait_for_queue, worker_process
from tests.widget_helpers import ADD_ACTION_CONTACT, signature

N = 200


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


async def drain(name: str, found: Counter[int]) -> None:
    async with amqp_channel() as channel:
        queue = await channel.declare_queue(name, passive=True)
        while (message := await queue.get(fail=False)) is not None:
            found[int(json.loads(message.body)["actionId"])] += 1
            await message.ack()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    skip_without_pg()
    require_rabbitmq()
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to stop RabbitMQ")
    name, url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


async def test_no_action_is_lost_when_rabbitmq_and_a_worker_fail(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMQP_URL", AMQP_URL)
    monkeypatch.setenv("PIPELINE", "handoff")
    monkeypatch.setenv("SWEEP_INTERVAL_MS", "500")
    monkeypatch.setenv("RETRY_DELAY_MS", "1000")
    org_id = fresh_org_id()
    async with serve_proca(tmp_path, pg_url) as served:
        engine = db.create_engine(Settings(DATABASE_URL=pg_url))
        sessionmaker = db.create_sessionmaker(engine)
        try:
            async with sessionmaker() as session:
                org = await make_org(session, id=org_id, custom_action_deliver=True)
                await make_key(session, org)
                campaign = await make_campaign(session, org)
                page_id = (await make_page(session, campaign, org)).id
                await session.commit()
            env = {**os.environ, "DATABASE_URL": pg_url, "PROCA_DATA_DIR": str(tmp_path / "data")}
            worker_log = tmp_path / "worker.log"
            try:
                await run_faults(served.direct_url, env, worker_log, page_id, org_id, sessionmaker)
            finally:
                with contextlib.suppress(Exception):
                    rabbitmqctl("start_app")
                await asyncio.sleep(0)
        finally:
            await engine.dispose()
            with contextlib.suppress(Exception):
                await delete_org_entities(org_id)


async def run_faults(
    api: str,
    env: dict[str, str],
    worker_log: Path,
    page_id: int,
    org_id: int,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    queue = f"cus.{org_id}.deliver"
    found: Counter[int] = Counter()
    async with worker_process(env, worker_log) as first:
        await wait_for_queue(queue)
        submitted = 0
        limit = asyncio.Semaphore(16)
        quarter = asyncio.Event()

        async def sign(client: httpx.AsyncClient, n: int) -> None:
            nonlocal submitted
            variables = signature(page_id, email=f"f{n}@example.org")
            body = {
                "query": ADD_ACTION_CONTACT,
                "variables": variables,
                "operationName": "addActionContact",
            }
            async with limit:
                response = await client.post(f"/api?id={page_id}", json=body)
            assert response.status_code == 200, response.text
            assert "errors" not in response.json(), response.text
            submitted += 1
            if submitted >= N // 4:
                quarter.set()

        async with httpx.AsyncClient(base_url=api, timeout=60) as client:
            signing = asyncio.gather(*(sign(client, n) for n in range(N)))
            await asyncio.wait_for(quarter.wait(), 60)
            await asyncio.to_thread(rabbitmqctl, "stop_app")
            try:
                first.kill()  # -9, in the middle of its work
                await first.wait()
                async with worker_process(env, worker_log):
                    await asyncio.sleep(3)
                    await asyncio.to_thread(rabbitmqctl, "start_app")
                    await signing
                    assert submitted == N
                    await settle(sessionmaker, queue, found)
            finally:
                await asyncio.to_thread(rabbitmqctl, "start_app")
    async with sessionmaker() as session:
        ids = set((await session.execute(select(Action.id))).scalars())
        statuses = Counter((await session.execute(select(Action.processing_status))).scalars())
    assert len(ids) == N
    assert statuses == {A.DELIVERED: N}, statuses
    duplicates = {i: c for i, c in found.items() if c > 1}
    if duplicates:
        print(f"{len(duplicates)} actions delivered more than once: {sorted(duplicates)}")
    missing = ids - set(found)
    assert not missing, f"{len(missing)} actions lost: {sorted(missing)[:20]}"


async def settle(
    sessionmaker: async_sessionmaker[AsyncSession], queue: str, found: Counter[int]
) -> None:
    """Wait (bounded) until every action is delivered and its message was read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while True:
        await drain(queue, found)
        async with sessionmaker() as session:
            delivered = await session.scalar(
                select(func.count()).where(Action.processing_status == A.DELIVERED)
            )
            ids = set((await session.execute(select(Action.id))).scalars())
        if delivered == N and ids <= set(found):
            return
        if loop.time() > deadline:
            return  # the caller's assertions say what is missing
        await asyncio.sleep(0.5)
