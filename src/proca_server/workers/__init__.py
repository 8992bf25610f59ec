"""Built-in workers: one module per worker queue (`wrk.N.<name>`), each given the same
`WorkerDeps`.

`registry.batch_handler_for` picks the batch handler that consumes a worker queue; the
runtime opens one consumer per worker queue of each org with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker.base import Broker
from proca_server.config import Settings
from proca_server.kit.once import Once


@dataclass(frozen=True)
class WorkerDeps:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    broker: Broker
    # warnings about an org's settings, said once in a while rather than per message
    notices: Once = field(default_factory=Once)
