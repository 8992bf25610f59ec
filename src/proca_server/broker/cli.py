"""`proca-server queue ...`: an org's queues in the embedded (database) queue.

With RabbitMQ (AMQP_URL set) the queues live there; use a RabbitMQ client instead."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker import store
from proca_server.broker.topology import queue_org_id
from proca_server.command import in_transaction, run, settings
from proca_server.errors import UserInputError
from proca_server.models import Org

queue_app = typer.Typer(help="Messages of the embedded queue.", no_args_is_help=True)


async def _org_id(session: AsyncSession, org: str) -> int:
    found = await session.scalar(select(Org.id).where(Org.name == org))
    if found is None and org.isdigit():
        found = await session.scalar(select(Org.id).where(Org.id == int(org)))
    if found is None:
        raise UserInputError(f"no org {org}")
    return found


def _queue_name(org_id: int, queue: str) -> str:
    """`deliver` means `cus.N.deliver`; a full name must be one of the org's queues."""
    name = queue if queue_org_id(queue) is not None else f"cus.{org_id}.{queue}"
    if queue_org_id(name) != org_id:
        raise UserInputError(f"queue {queue} is not one of this org's queues")
    return name


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


def _line(message: store.StoredMessage) -> str:
    return json.dumps(
        {
            "id": message.id,
            "exchange": message.exchange,
            "routingKey": message.routing_key,
            "retries": message.retries,
            "insertedAt": message.inserted_at.isoformat(),
            "body": _body(message.body),
        },
        ensure_ascii=False,
    )


def _embedded_only() -> None:
    if settings().amqp_url:
        raise UserInputError("AMQP_URL is set: the queues are in RabbitMQ")


@queue_app.command("list")
def queue_list(
    org: Annotated[str, typer.Argument(help="The org's name (or id).")],
    all_queues: Annotated[
        bool, typer.Option("--all", help="Also the worker queues and the fail queue.")
    ] = False,
) -> None:
    """The org's custom queues (cus.N.*) with their message counts."""
    _embedded_only()

    async def work(session: AsyncSession) -> list[store.QueueCounts]:
        org_id = await _org_id(session, org)
        prefixes = ("cus", "wrk", "org") if all_queues else ("cus",)
        return [q for p in prefixes for q in await store.list_queues(session, org_id, p)]

    queues = run(in_transaction(settings(), work))
    if not queues:
        typer.echo("no queues")
    for q in queues:
        typer.echo(
            f"{q.name}\tready {q.ready}\tunacked {q.unacked}\tdelayed {q.delayed}\ttotal {q.total}"
        )


@queue_app.command("read")
def queue_read(
    org: Annotated[str, typer.Argument(help="The org's name (or id).")],
    queue: Annotated[
        str,
        typer.Argument(
            help="The queue: short (deliver) or full (cus.N.deliver), see `queue list`."
        ),
    ],
    limit: Annotated[int, typer.Option(min=1, help="How many messages.")] = 10,
    ack: Annotated[bool, typer.Option("--ack", help="Remove the messages read.")] = False,
) -> None:
    """Print the next messages of the queue, one JSON object per line (the body parsed)."""
    _embedded_only()

    async def work(session: AsyncSession) -> list[store.StoredMessage]:
        name = _queue_name(await _org_id(session, org), queue)
        if ack:
            messages = await store.claim_messages(session, name, limit)
            await store.ack_messages(session, name, [m.id for m in messages])
            return messages
        return await store.peek_messages(session, name, limit)

    for message in run(in_transaction(settings(), work)):
        typer.echo(_line(message))


@queue_app.command("ack")
def queue_ack(
    org: Annotated[str, typer.Argument(help="The org's name (or id).")],
    queue: Annotated[str, typer.Argument(help="The queue, as for `queue read`.")],
    ids: Annotated[list[int], typer.Argument(help="Ids of the messages, as `queue read` shows.")],
) -> None:
    """Remove messages of the queue by id."""
    _embedded_only()

    async def work(session: AsyncSession) -> int:
        name = _queue_name(await _org_id(session, org), queue)
        return await store.ack_messages(session, name, ids)

    done = run(in_transaction(settings(), work))
    typer.echo(f"acknowledged {done} of {len(ids)}")
