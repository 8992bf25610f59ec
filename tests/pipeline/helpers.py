"""Reading RabbitMQ queues and running `proca-server worker` processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika

from tests.pipeline.conftest import (
    amqp_channel,
)
from tests.served import logged, stop


async def drain(queue: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    async with amqp_channel() as channel:
        q = await channel.declare_queue(queue, passive=True)
        while (message := await q.get(fail=False)) is not None:
            found.append(json.loads(message.body))
            await message.ack()
    return found


async def wait_for_queue(name: str, seconds: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            async with amqp_channel() as channel:
                await channel.declare_queue(name, passive=True)
                return
        except (aio_pika.exceptions.ChannelClosed, OSError):
            if loop.time() > deadline:
                raise AssertionError(f"queue {name} was never declared") from None
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def worker_process(
    env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await logged("worker", "--sweep-age-ms", "1000", env=env, log=log)
    try:
        yield proc
    finally:
        await stop(proc)
