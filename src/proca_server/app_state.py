"""What `create_app` builds once and every route, the socket and the lane share: one typed
object on `app.state.proca`, read through `state_of`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from proca_server.action.lane import SignatureLane
    from proca_server.action.service import PageCache
    from proca_server.action.velocity import SignatureVelocity
    from proca_server.auth.jwt import KeySetCache
    from proca_server.auth.throttle import LoginThrottle
    from proca_server.config import Settings
    from proca_server.eci.http import EciEndpoints
    from proca_server.graphql.http import Endpoint
    from proca_server.graphql.response_cache import ResponseCache
    from proca_server.graphql.schema import Schemas
    from proca_server.processing.handoff import Pipeline
    from proca_server.web.explorer import ExplorerFiles


@dataclass(slots=True, eq=False)
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    schemas: Schemas
    # /api (and the socket): the full schema, every way of authenticating
    api: Endpoint
    response_cache: ResponseCache
    explorer_files: ExplorerFiles
    velocity: SignatureVelocity
    login_throttle: LoginThrottle
    signature_lane: SignatureLane
    # page snapshots and sources ids, shared by the general path and the lane
    page_cache: PageCache
    # the identity provider's JWT signing keys (JWKS_URL)
    key_sets: KeySetCache
    # the ECI build's two GraphQL routes (docs/eci.md); None in the full build
    eci: EciEndpoints | None = None
    # where committed actions and events go (processing/handoff.py): set while the pipeline
    # runs, None otherwise
    pipeline: Pipeline | None = None


def state_of(holder: Starlette | HTTPConnection) -> AppState:
    """The state of the app serving a request or a websocket (or of the app itself)."""
    app = holder if isinstance(holder, Starlette) else holder.app
    state = app.state.proca
    assert isinstance(state, AppState)
    return state
