"""Reading RabbitMQ queues and running `proca-server worker` processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika

from tests.pipeline.conftest import (
    amqp_channel,
)


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
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proca_server",
            "worker",
            "--sweep-age-ms",
            "1000",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
