"""Where committed work leaves a request: publications to send and actions to process.

A boundary (a route, a GraphQL mutation, a worker) commits, then calls
`after_commit(app_state, publications, action_ids)`. The pipeline set on the app state's
`pipeline` (app_state.py: the broker's publisher and the processing worker, plugged in by
the integrator) takes them from there. Without one nothing is sent: actions are still
processed later by the sweeper from their stored status, but events (email_status) are
dropped, so a real pipeline should put them in a durable queue (RabbitMQ, or the embedded
queue in the database) before returning."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from proca_server.processing.messages import Publication

log = logging.getLogger(__name__)


@runtime_checkable
class Pipeline(Protocol):
    async def after_commit(
        self, publications: Sequence[Publication], action_ids: Sequence[int]
    ) -> None:
        """Publish `publications` and process `action_ids` without blocking the request
        for long."""


class NullPipeline:
    """Sends nothing: the embedded default until a broker is plugged in."""

    async def after_commit(
        self, publications: Sequence[Publication], action_ids: Sequence[int]
    ) -> None:
        return None


NULL_PIPELINE = NullPipeline()


def pipeline_of(state: Any) -> Pipeline:
    """The pipeline set on the app state (`AppState.pipeline`), else the null one."""
    pipeline = getattr(state, "pipeline", None)
    if pipeline is None:
        return NULL_PIPELINE
    if not isinstance(pipeline, Pipeline):
        raise TypeError("the app state's pipeline must have an async after_commit method")
    return pipeline


async def after_commit(
    state: Any, publications: Sequence[Publication], action_ids: Sequence[int]
) -> None:
    """Hand committed work to the pipeline; a failure is logged, never raised, since the
    transaction is already committed and the sweeper will redo what was lost."""
    if not publications and not action_ids:
        return
    try:
        await pipeline_of(state).after_commit(list(publications), list(action_ids))
    except Exception:
        log.exception(
            "pipeline hand-off failed (%d publications, %d actions)",
            len(publications),
            len(action_ids),
        )


@runtime_checkable
class TopologyAware(Protocol):
    async def org_changed(self, org_id: int) -> None:
        """Apply the org's topology again and restart its worker consumers."""


def org_changed_after_commit(
    pipeline: Pipeline, callbacks: list[Callable[[], Awaitable[None]]], org_id: int | None
) -> None:
    """Have the org's queues follow its processing settings or services once the change is
    committed (`callbacks` is the request's after-commit list); never raises."""
    if org_id is None or not isinstance(pipeline, TopologyAware):
        return

    async def changed() -> None:
        try:
            await pipeline.org_changed(org_id)
        except Exception:
            log.exception("topology of org %d not updated", org_id)

    callbacks.append(changed)
