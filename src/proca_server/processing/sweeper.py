"""The sweeper: what a lost hand-off left behind (ARCHITECTURE.md, "Processing pipeline and
broker").

Every `interval` seconds it walks `find_unprocessed` by keyset (`after_id`, SWEEP_LIMIT ids a
page, over the `(processing_status, id)` index) for actions older than `age` still to
process, hands them to the processor, and starts again from id 0 after a pass that found
nothing. It recovers every action whose hand-off was lost: broker down, process killed,
notification missed. An action the processor holds (queued, or in its current batch) is left
to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import metrics
from proca_server.processing.processor import Processor
from proca_server.processing.service import find_unprocessed

log = logging.getLogger(__name__)

SWEEP_LIMIT = 500


class Sweeper:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        processor: Processor,
        *,
        interval: float,
        age: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.processor = processor
        self.interval = interval
        self.age = age
        self.stopping = False
        self._now = asyncio.Event()

    def sweep_soon(self) -> None:
        self._now.set()

    def stop(self) -> None:
        self.stopping = True
        self._now.set()

    async def run(self) -> None:
        after_id = 0
        while not self.stopping:
            try:
                async with self.sessionmaker() as session:
                    older_than = datetime.now(UTC) - timedelta(seconds=self.age)
                    ids = await find_unprocessed(
                        session, after_id=after_id, older_than=older_than, limit=SWEEP_LIMIT
                    )
            except Exception:
                log.warning("sweeper: database error", exc_info=True)
                ids = []
            if ids:
                after_id = ids[-1]
                try:
                    held = self.processor.holds
                    moved = await self.processor.process([i for i in ids if not held(i)])
                except Exception:
                    log.exception("sweeper: processing failed")
                    moved = 0
                if moved:
                    metrics.SWEPT_ACTIONS.inc(moved)
                continue
            after_id = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self.interval)
            self._now.clear()
