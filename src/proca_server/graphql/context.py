from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action.service import PageCache
from proca_server.action.velocity import UNLIMITED, SignatureVelocity
from proca_server.config import Settings
from proca_server.graphql.idempotency import Binding
from proca_server.graphql.loaders import Loaders
from proca_server.models import Staffer, User
from proca_server.processing.events import run_after_commit
from proca_server.processing.handoff import NULL_PIPELINE, Pipeline


@dataclass
class Context:
    """What every resolver gets: one session (one unit of work) and the caller."""

    session: AsyncSession
    settings: Settings
    user: User | None = None
    referer: str | None = None
    # the client's address (behind a trusted proxy, the one it forwarded)
    client_address: str | None = None
    # the signature velocity limits of this process (none by default)
    velocity: SignatureVelocity = UNLIMITED
    # the process's page snapshots and sources ids (`state.page_cache`; without it, a cache
    # of this request's own)
    page_cache: PageCache = field(default_factory=PageCache)
    extensions: dict[str, Any] = field(default_factory=dict)
    # (user id, org id) -> membership, looked up once per request
    staffers: dict[tuple[int, int], Staffer | None] = field(default_factory=dict)
    # the client's idempotency key, reserved with the first root mutation's writes
    idempotency_key: Binding | None = None
    idempotency_reserved: bool = False
    # set by a resolver whose answer carries a secret (a private key): not kept for replays
    answer_has_secret: bool = False
    # the audit entries of personal data this document read (audit/api.py), written again
    # when a failing field rolls the document's writes back
    audited_reads: list[dict[str, Any]] = field(default_factory=list)
    # callbacks to run after the transaction commits (publishes, emails)
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # where committed actions and events go next (processing/handoff.py); the app's
    # `state.pipeline`, the null one when nothing is plugged in
    pipeline: Pipeline = NULL_PIPELINE
    # the DataLoaders (graphql/loaders.py), built on first use for the current session
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None or self._loaders.session is not self.session:
            self._loaders = Loaders(self.session)
        return self._loaders

    def forget_loaded(self) -> None:
        """Drop the rows the loaders keep: a root mutation's answer reads afresh (and an
        object a rollback expired is never served again)."""
        self._loaders = None

    async def run_after_commit(self) -> None:
        callbacks, self.after_commit = self.after_commit, []
        await run_after_commit(callbacks)
