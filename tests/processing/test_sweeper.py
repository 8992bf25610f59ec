"""The processor's queue and the sweeper: an action the processor holds (queued, or in the
batch being processed) is not taken again by the sweeper."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.kit.once import Once
from proca_server.processing.processor import ActionQueue, Processor
from proca_server.processing.sweeper import Sweeper
from tests.processing.helpers import action_ids, make_site, sign


async def test_an_id_waiting_in_the_queue_is_not_queued_twice() -> None:
    queue = ActionQueue()
    for action_id in (3, 1, 3, 2, 1):
        queue.put(action_id)
    assert 3 in queue and 4 not in queue
    assert await queue.next_batch(10, 0.0) == [3, 1, 2]
    assert 3 not in queue
    # taken: handed over again later, it is queued again
    queue.put(3)
    queue.put(0)  # a wake-up, never deduplicated
    queue.put(0)
    assert await queue.next_batch(10, 0.0) == [3, 0, 0]


class Stalled(Processor):
    """A processor whose batch waits until released."""

    def __init__(self) -> None:
        super().__init__(None, None, None, Once())  # type: ignore[arg-type]
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def _process_locked(self, ids: list[int]) -> int:
        self.started.set()
        await self.release.wait()
        return len(ids)


async def test_the_processor_holds_what_is_queued_and_its_current_batch() -> None:
    processor = Stalled()
    batch = asyncio.create_task(processor.process_batch([5, 6]))
    await processor.started.wait()
    processor.queue.put(7)
    assert [processor.holds(i) for i in (5, 6, 7, 8)] == [True, True, True, False]
    processor.release.set()
    assert await batch == 2
    assert [processor.holds(i) for i in (5, 6, 7)] == [False, False, True]


class Recording:
    """The processor as the sweeper sees it: what it holds, what it was asked to process."""

    def __init__(self, held: set[int]) -> None:
        self.held = held
        self.asked: list[list[int]] = []
        self.swept = asyncio.Event()

    def holds(self, action_id: int) -> bool:
        return action_id in self.held

    async def process(self, ids: Sequence[int]) -> int:
        self.asked.append(list(ids))
        self.swept.set()
        return len(ids)


async def test_the_sweeper_leaves_what_the_processor_holds(
    client: httpx.AsyncClient, session: AsyncSession, sessionmaker: async_sessionmaker[Any]
) -> None:
    site = await make_site(session)
    for n in range(4):
        await sign(client, site.page_id, f"s{n}@example.org")
    ids = await action_ids(session)
    processor = Recording(held={ids[0], ids[2]})
    # age below zero: every stored action is old enough to sweep
    sweeper = Sweeper(sessionmaker, processor, interval=3600, age=-60)  # type: ignore[arg-type]
    task = asyncio.create_task(sweeper.run())
    try:
        await asyncio.wait_for(processor.swept.wait(), 10)
    finally:
        sweeper.stop()
        await asyncio.wait_for(task, 10)
    assert processor.asked[0] == [ids[1], ids[3]]
