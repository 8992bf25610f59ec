"""Durability when the API process dies (PostgreSQL + RabbitMQ): 20 widgets sign at once
against a served API, the API is killed (-9) in the middle of the load and started again on
the same database, and the load goes on. Afterwards every signature answered with a
contactRef is stored, every stored action is delivered and reaches `cus.N.deliver`.

Two shapes. The production one (PIPELINE=handoff API next to a `proca-server worker`): the
API only stores and notifies, so each action reaches the queue exactly once. The embedded
one (processing inside the API process): the killed process may have had a batch published
and confirmed but not yet committed, which the sweeper sends again after the restart (at
least once, ARCHITECTURE.md "Processing pipeline and broker"); duplicates are allowed there
only for that batch: at most `BATCH_SIZE` actions stored before the kill, twice each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import db
from proca_server.config import Settings
from proca_server.kit import base64url
from proca_server.models import Action, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.processing.runtime import BATCH_SIZE
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
from tests.served import free_port, log_tail, start_serve, stop
from tests.widget_helpers import ADD_ACTION_CONTACT, signature

CLIENTS = 20
BEFORE_KILL = 2.0  # seconds of load before the kill
AFTER_RESTART = 2.0  # seconds of load once the new API answers


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    skip_without_pg()  # PostgreSQL and RabbitMQ only: SQLite has no second process to kill
    require_rabbitmq()
    name, url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


async def setup_database(env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proca_server",
        "setup",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()


async def worker_running(log: Path, seconds: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while "worker running" not in log_tail(log, 10**7):
        if loop.time() > deadline:
            raise AssertionError(f"the worker did not start:\n{log_tail(log)}")
        await asyncio.sleep(0.1)


@dataclass
class Load:
    """What the widgets saw: by email, the contactRef of each answered signature; the
    emails whose request got no answer (refused while the API was down, or cut by the kill:
    `cut`); error answers."""

    answered: dict[str, str] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)
    cut: int = 0
    errors: list[str] = field(default_factory=list)
    answered_before_kill: int = 0


async def sign_until(
    client: httpx.AsyncClient, page_id: int, n: int, load: Load, done: asyncio.Event
) -> None:
    i = 0
    while not done.is_set():
        email = f"kill{n}.{i}@example.org"
        i += 1
        body = {
            "query": ADD_ACTION_CONTACT,
            "variables": signature(page_id, email=email),
            "operationName": "addActionContact",
        }
        try:
            response = await client.post(f"/api?id={page_id}", json=body)
        except httpx.TransportError as exc:
            load.unanswered.add(email)
            if not isinstance(exc, httpx.ConnectError):
                load.cut += 1
            await asyncio.sleep(0.05)  # the API is down: a widget would retry later too
            continue
        data = response.json() if response.status_code == 200 else {}
        ref = ((data.get("data") or {}).get("addActionContact") or {}).get("contactRef")
        if ref and "errors" not in data:
            load.answered[email] = ref
        else:
            load.unanswered.add(email)
            load.errors.append(f"{response.status_code} {response.text[:300]}")


async def load_with_a_kill(
    api: asyncio.subprocess.Process,
    restart: Callable[[], Awaitable[None]],
    port: int,
    page_id: int,
) -> Load:
    """Sign from CLIENTS widgets; kill -9 the API after BEFORE_KILL seconds, start it again,
    sign AFTER_RESTART seconds more."""
    load = Load()
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=15, limits=limits
    ) as client:
        signing = [
            asyncio.create_task(sign_until(client, page_id, n, load, done)) for n in range(CLIENTS)
        ]
        try:
            await asyncio.sleep(BEFORE_KILL)
            load.answered_before_kill = len(load.answered)
            api.kill()  # -9, with signatures in flight
            await api.wait()
            await restart()
            await asyncio.sleep(AFTER_RESTART)
        finally:
            done.set()
            await asyncio.gather(*signing)
    return load


@dataclass
class Stored:
    by_ref: dict[str, list[int]]  # contactRef -> action ids
    statuses: Counter[A]


async def stored_actions(sessionmaker: async_sessionmaker[AsyncSession]) -> Stored:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Action.id, Supporter.fingerprint, Action.processing_status).join(
                    Supporter, Supporter.id == Action.supporter_id
                )
            )
        ).all()
        unlinked = await session.scalar(
            select(func.count()).select_from(Action).where(Action.supporter_id.is_(None))
        )
    assert unlinked == 0, f"{unlinked} actions without a supporter"
    by_ref: dict[str, list[int]] = {}
    for action_id, fingerprint, _ in rows:
        by_ref.setdefault(base64url.encode(bytes(fingerprint)), []).append(action_id)
    return Stored(by_ref, Counter(status for _, _, status in rows))


async def read_deliveries(queue: str, found: Counter[int]) -> None:
    async with amqp_channel() as channel:
        q = await channel.declare_queue(queue, passive=True)
        while (message := await q.get(fail=False)) is not None:
            found[int(json.loads(message.body)["actionId"])] += 1
            await message.ack()


async def settle(
    sessionmaker: async_sessionmaker[AsyncSession], queue: str, found: Counter[int]
) -> Stored:
    """Read `cus.N.deliver` until every stored action is delivered and its message was read
    (bounded: the caller's assertions say what is missing), then once more after a pause,
    for late duplicates."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        await read_deliveries(queue, found)
        stored = await stored_actions(sessionmaker)
        ids = {i for ids in stored.by_ref.values() for i in ids}
        if set(stored.statuses) == {A.DELIVERED} and ids <= set(found):
            break
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.5)
    await read_deliveries(queue, found)
    return await stored_actions(sessionmaker)


@pytest.mark.parametrize("shape", ["handoff", "embedded"])
async def test_no_signature_is_lost_or_duplicated_when_the_api_is_killed(
    shape: str, pg_url: str, tmp_path: Path
) -> None:
    org_id = fresh_org_id()
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "PROCA_DATA_DIR": str(tmp_path / "data"),
        "ORG_NAME": "instance",
        "ADMIN_EMAIL": "",
        "AMQP_URL": AMQP_URL,
        "PIPELINE": shape,
        "SWEEP_INTERVAL_MS": "300",
        "SWEEP_AGE_MS": "1000",  # the embedded API's own sweeper (the worker's: --sweep-age-ms)
        "RETRY_DELAY_MS": "1000",
        "LOG_LEVEL": "WARNING",
        "SIGNATURE_LIMIT_PER_ADDRESS": "0",  # every widget here is 127.0.0.1
    }
    await setup_database(env)
    engine = db.create_engine(Settings(DATABASE_URL=pg_url))
    sessionmaker = db.create_sessionmaker(engine)
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    port = free_port()
    try:
        async with sessionmaker() as session:
            org = await make_org(session, id=org_id, custom_action_deliver=True)
            await make_key(session, org)
            page_id = (await make_page(session, await make_campaign(session, org), org)).id
            await session.commit()
        queue = f"cus.{org_id}.deliver"
        found: Counter[int] = Counter()
        async with contextlib.AsyncExitStack() as stack:
            if shape == "handoff":
                await stack.enter_async_context(worker_process(env, worker_log))
                await worker_running(worker_log)
            api = await start_serve(env, port, api_log)
            apis = [api]

            last_id_at_kill = 0

            async def restart() -> None:
                nonlocal last_id_at_kill
                async with sessionmaker() as session:
                    last_id_at_kill = await session.scalar(select(func.max(Action.id))) or 0
                apis.append(await start_serve(env, port, api_log))

            try:
                await wait_for_queue(queue)
                load = await load_with_a_kill(api, restart, port, page_id)
                stored = await settle(sessionmaker, queue, found)
            finally:
                for proc in apis:
                    await stop(proc)
    finally:
        await engine.dispose()
        with contextlib.suppress(Exception):
            await delete_org_entities(org_id)

    before_kill, answered_count = load.answered_before_kill, len(load.answered)
    unanswered, cut, errors = len(load.unanswered), load.cut, load.errors
    answered = set(load.answered.values())
    stored_ids = {i for ids in stored.by_ref.values() for i in ids}
    summary = (
        f"{shape}: {answered_count} answered ({before_kill} before the kill), "
        f"{unanswered} unanswered ({cut} cut by the kill), {len(stored_ids)} stored, "
        f"{sum(found.values())} messages for {len(found)} actions in {queue}"
    )
    print(summary)
    # the load really straddled the kill: answers on both sides, requests cut by it
    assert 0 < before_kill < answered_count, summary
    assert cut > 0, summary
    assert not errors, f"{summary}; {len(errors)} error answers, the first: {errors[:3]}"
    lost = answered - set(stored.by_ref)
    assert not lost, f"{summary}; {len(lost)} answered signatures not stored"
    twice = {ref: ids for ref, ids in stored.by_ref.items() if len(ids) > 1}
    assert not twice, f"{summary}; {len(twice)} signatures stored more than once"
    # stored beyond the answered: requests committed but cut before their answer
    assert len(stored_ids) <= answered_count + unanswered, summary
    assert stored.statuses == {A.DELIVERED: len(stored_ids)}, f"{summary}; {stored.statuses}"
    undelivered = stored_ids - set(found)
    assert not undelivered, f"{summary}; {len(undelivered)} stored actions never reached {queue}"
    strangers = set(found) - stored_ids
    assert not strangers, f"{summary}; messages for unknown actions {sorted(strangers)[:10]}"
    duplicates = {i: n for i, n in found.items() if n > 1}
    if duplicates:
        print(f"{shape}: sent again after the kill: {sorted(duplicates.items())}")
    if shape == "handoff":
        assert not duplicates, (
            f"{summary}; {len(duplicates)} actions reached {queue} more than once: "
            f"{sorted(duplicates.items())[:20]}"
        )
    else:
        # the one batch the killed process had in flight (its batches are serialized)
        assert len(duplicates) <= BATCH_SIZE, summary
        assert set(duplicates.values()) <= {2}, f"{summary}; {duplicates}"
        assert max(duplicates, default=0) <= last_id_at_kill, (
            f"{summary}; actions stored after the kill ({last_id_at_kill}) sent twice: "
            f"{sorted(duplicates.items())[:20]}"
        )
