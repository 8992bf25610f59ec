"""The pipeline with the embedded broker: from the widget's mutation to the org's queue."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server import db
from proca_server.app_state import state_of
from proca_server.broker.embedded import EmbeddedBroker
from proca_server.broker.store import peek_messages
from proca_server.models import Action, Org
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.processing.runtime import ACTIONS_TOPIC, PipelineRuntime, Role, RuntimeOptions
from proca_server.pubsub import pubsub
from tests.factories import make_world
from tests.pipeline.conftest import FAST, eventually, running
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post


async def statuses(session: AsyncSession) -> list[A]:
    await session.rollback()
    return list((await session.execute(select(Action.processing_status))).scalars())


async def queued(session: AsyncSession, queue: str) -> list[dict[str, Any]]:
    await session.rollback()
    return [json.loads(m.body) for m in await peek_messages(session, queue, 1000)]


async def world_with(session: AsyncSession, **flags: bool) -> tuple[int, int]:
    world = await make_world(session, roles=())
    org = await session.get(Org, world.org.id)
    assert org is not None
    for name, value in flags.items():
        setattr(org, name, value)
    ids = (world.org.id, world.page.id)
    await session.commit()
    return ids


async def test_signature_is_delivered_to_the_custom_queue(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
) -> None:
    org_id, page_id = await world_with(session, custom_action_deliver=True)
    async with running(app, embedded_broker):
        body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id))
        assert "errors" not in body, body

        async def delivered() -> bool:
            return await statuses(session) == [A.DELIVERED]

        await eventually(delivered)
    [message] = await queued(session, f"cus.{org_id}.deliver")
    assert message["schema"] == "proca:action:2"
    assert message["stage"] == "deliver"
    assert message["actionPageId"] == page_id
    assert message["action"]["actionType"] == "petition"
    assert message["contact"]["email"] == "ann@example.org"
    assert message["orgId"] == org_id


async def test_queued_messages_survive_a_restart(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
) -> None:
    org_id, page_id = await world_with(session, custom_action_deliver=True)
    async with running(app, embedded_broker):
        for n in range(3):
            variables = signature(page_id, email=f"p{n}@example.org")
            await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)

        async def delivered() -> bool:
            return await statuses(session) == [A.DELIVERED] * 3

        await eventually(delivered)
    await embedded_broker.close()

    # another process: its own engine and broker over the same database
    engine = db.create_engine(state_of(app).settings)
    try:
        sessionmaker = db.create_sessionmaker(engine)
        broker = EmbeddedBroker(sessionmaker)
        async with sessionmaker() as other:
            messages = [
                json.loads(m.body) for m in await peek_messages(other, f"cus.{org_id}.deliver")
            ]
        await broker.close()
    finally:
        await engine.dispose()
    assert sorted(m["contact"]["email"] for m in messages) == [
        "p0@example.org",
        "p1@example.org",
        "p2@example.org",
    ]


async def test_supporter_confirm_stage_goes_to_its_custom_queue(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
) -> None:
    org_id, page_id = await world_with(
        session, supporter_confirm=True, custom_supporter_confirm=True, custom_action_deliver=True
    )
    async with running(app, embedded_broker):
        await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id))

        async def confirming() -> bool:
            return len(await queued(session, f"cus.{org_id}.confirm.supporter")) == 1

        await eventually(confirming)
    [message] = await queued(session, f"cus.{org_id}.confirm.supporter")
    assert message["stage"] == "supporter_confirm"
    assert await queued(session, f"cus.{org_id}.deliver") == []
    assert await statuses(session) == [A.NEW]


async def test_hand_off_processes_without_the_sweeper(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
) -> None:
    """An action handed over after commit is processed at once (the sweeper would wait)."""
    org_id, page_id = await world_with(session, custom_action_deliver=True)
    slow_sweeper = RuntimeOptions(sweep_interval=3600, sweep_age=3600, run_workers=False)
    async with running(app, embedded_broker, slow_sweeper) as runtime:
        await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id))
        action_id = (await session.execute(select(Action.id))).scalar_one()
        await runtime.after_commit([], [action_id])

        async def delivered() -> bool:
            return await statuses(session) == [A.DELIVERED]

        await eventually(delivered)
    assert len(await queued(session, f"cus.{org_id}.deliver")) == 1


async def test_many_actions_in_batches(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
) -> None:
    """Throughput sanity (no timing): 120 actions, handed over together, all delivered once."""
    org_id, page_id = await world_with(session, custom_action_deliver=True)
    slow_sweeper = RuntimeOptions(sweep_interval=3600, sweep_age=3600, run_workers=False)
    async with running(app, embedded_broker, slow_sweeper) as runtime:
        for n in range(120):
            variables = signature(page_id, email=f"m{n}@example.org")
            await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
        await session.rollback()
        ids = list((await session.execute(select(Action.id))).scalars())
        await runtime.after_commit([], ids)
        await runtime.after_commit([], ids)  # twice: the second time is a no-op

        async def delivered() -> bool:
            return await statuses(session) == [A.DELIVERED] * 120

        await eventually(delivered, 60)
    messages = await queued(session, f"cus.{org_id}.deliver")
    assert sorted(m["actionId"] for m in messages) == sorted(ids)


async def test_topology_follows_a_processing_change(
    app: FastAPI,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
) -> None:
    org_id, _ = await world_with(session)
    async with running(app, embedded_broker, FAST) as runtime:
        org = await session.get(Org, org_id)
        assert org is not None
        org.custom_action_deliver = True
        await session.commit()
        await runtime.org_changed(org_id)
        assert await embedded_broker.publish(f"org.{org_id}.deliver", "petition.x", b"{}")


async def test_an_org_created_after_the_start_gets_its_topology_when_needed(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
) -> None:
    async with running(app, embedded_broker, FAST):
        org_id, page_id = await world_with(session, custom_action_deliver=True)
        await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id))

        async def delivered() -> bool:
            return await statuses(session) == [A.DELIVERED]

        await eventually(delivered)
    assert len(await queued(session, f"cus.{org_id}.deliver")) == 1


async def test_handoff_passes_action_ids_to_a_worker_runtime(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
) -> None:
    """PIPELINE=handoff: the API's runtime processes nothing and passes the ids on through
    the pubsub (NOTIFY across processes) to a worker's runtime."""
    org_id, page_id = await world_with(session, custom_action_deliver=True)
    slow = {"sweep_interval": 3600.0, "sweep_age": 3600.0, "run_workers": False}
    worker = PipelineRuntime(
        state_of(app).settings,
        state_of(app).sessionmaker,
        embedded_broker,
        RuntimeOptions(role=Role.WORKER, **slow),  # type: ignore[arg-type]
    )
    await worker.start()
    try:

        async def listening() -> bool:
            return pubsub.subscriber_count(ACTIONS_TOPIC) == 1

        await eventually(listening)
        async with running(app, embedded_broker, RuntimeOptions(role=Role.HANDOFF, **slow)):  # type: ignore[arg-type]
            await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id))

            async def delivered() -> bool:
                return await statuses(session) == [A.DELIVERED]

            await eventually(delivered)
    finally:
        await worker.stop()
    assert len(await queued(session, f"cus.{org_id}.deliver")) == 1
