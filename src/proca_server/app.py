"""The ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import db, error_reporting
from proca_server.action.lane import SignatureLane, SignatureLaneMiddleware
from proca_server.action.service import PageCache
from proca_server.action.velocity import SignatureVelocity
from proca_server.app_state import AppState
from proca_server.auth.jwt import KeySetCache
from proca_server.auth.throttle import LoginThrottle
from proca_server.config import Settings, get_settings
from proca_server.confirm.links import router as confirm_links_router
from proca_server.donation.webhooks import router as stripe_webhook_router
from proca_server.eci.http import build_endpoints as eci_endpoints
from proca_server.eci.http import router as eci_router
from proca_server.email.reminders import reminder_loop
from proca_server.email.webhooks import router as email_webhooks_router
from proca_server.graphql import idempotency
from proca_server.graphql.http import Endpoint
from proca_server.graphql.http import router as graphql_router
from proca_server.graphql.response_cache import CachedAnswers, ResponseCache
from proca_server.graphql.schema import build_schemas
from proca_server.graphql.socket import router as socket_router
from proca_server.kit.logs import configure_logging
from proca_server.metrics import router as metrics_router
from proca_server.metrics import start_metrics_server
from proca_server.migrations.migrate import is_up_to_date
from proca_server.mtt.loop import mtt_loop
from proca_server.processing.links import router as supporter_links_router
from proca_server.processing.runtime import pipeline_running
from proca_server.retention.loop import housekeeping_loop
from proca_server.stats.maintenance import background as stats_background
from proca_server.web.accounts import router as accounts_router
from proca_server.web.body_limit import BodyLimitMiddleware
from proca_server.web.explorer import ExplorerFiles
from proca_server.web.explorer import router as explorer_router
from proca_server.web.mailbox import router as mailbox_router
from proca_server.web.rights import router as rights_router

log = logging.getLogger("proca_server")


PURGE_INTERVAL = 3600.0


class NotMigrated(RuntimeError):
    pass


@asynccontextmanager
async def side_services(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[None]:
    """The confirm reminders' schedule (safe in several processes: each reminder is claimed),
    the mail-to-target schedule (safe too: plans are leased, letters claimed), the daily
    housekeeping (safe too: each job is claimed), the purge of expired idempotency keys, and
    the metrics exporter on METRICS_PORT when it is set (the first process to bind it)."""
    tasks = [
        asyncio.create_task(reminder_loop(settings, sessionmaker)),
        asyncio.create_task(purge_loop(sessionmaker)),
        asyncio.create_task(housekeeping_loop(settings, sessionmaker)),
    ]
    if settings.mtt_enabled:
        tasks.append(asyncio.create_task(mtt_loop(settings, sessionmaker)))
    exporter = start_metrics_server(settings.listen_ip)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if exporter is not None:
            exporter.stop()


async def purge_loop(
    sessionmaker: async_sessionmaker[AsyncSession], interval: float = PURGE_INTERVAL
) -> None:
    """Delete expired idempotency keys (they are ignored once expired; this keeps the table
    small). Several processes may run it: the deletes are idempotent."""
    while True:
        await asyncio.sleep(interval)
        try:
            await idempotency.purge_expired(sessionmaker)
        except Exception:
            log.warning("purging expired idempotency keys failed", exc_info=True)


def settle_heap() -> None:
    """Exclude what start-up built (schema, mappers, modules: hundreds of thousands of objects
    that live as long as the process) from the garbage collector's full collections. Each
    full collection otherwise walks all of them: a pause of ~200 ms every few seconds under
    load on this project's benchmark machine, which was the whole of the signature's p99."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check()
    if settings.env != "test":
        configure_logging(
            settings.log_level, json_lines=settings.production, access_log=settings.access_log
        )
    if settings.production and not settings.email_webhook_secret:
        log.warning(
            "EMAIL_WEBHOOK_SECRET is not set: /webhook/mailjet and /webhook/brevo accept "
            "reports from anyone"
        )
    engine = db.create_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not await is_up_to_date(engine):
            raise NotMigrated("the database is not migrated: run `proca-server db upgrade`")
        lane.start()
        async with (
            stats_background(engine, settings),
            pipeline_running(state),
            side_services(settings, state.sessionmaker),
        ):
            settle_heap()
            yield
        await lane.close()
        await engine.dispose()

    app = FastAPI(
        title="proca-server", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    sessionmaker = db.create_sessionmaker(engine)
    schemas = build_schemas()
    velocity = SignatureVelocity.from_settings(settings)
    page_cache = PageCache()
    lane = SignatureLane(
        settings, engine, schemas.core, sessionmaker, velocity, page_cache=page_cache
    )
    state = app.state.proca = AppState(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        schemas=schemas,
        api=Endpoint(schemas.full),
        response_cache=ResponseCache(),
        explorer_files=ExplorerFiles(),
        velocity=velocity,
        login_throttle=LoginThrottle.from_settings(settings),
        signature_lane=lane,
        page_cache=page_cache,
        key_sets=KeySetCache(),
        # the ECI build's routes: its signature page's schema and the staff's full one
        eci=eci_endpoints(schemas.full) if settings.enable_eci else None,
    )

    # inside CORS (added later, so outer): the lane's answers get the same CORS headers
    app.add_middleware(SignatureLaneMiddleware, lane=lane)
    # the anonymous GETs whose answers are cached, before routing (CORS headers likewise)
    app.add_middleware(CachedAnswers, cache=state.response_cache)
    # outside the lane, which reads bodies itself
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"],
        max_age=86400,
    )
    # outermost: sees every request, and what escapes them (SENTRY_DSN)
    error_reporting.instrument(app, settings)
    if settings.enable_eci:
        # the ECI build: its two GraphQL routes, /metrics and /health, nothing else (docs/eci.md)
        app.include_router(eci_router)
    else:
        app.include_router(graphql_router)
        app.include_router(explorer_router)
        app.include_router(socket_router)
        app.include_router(accounts_router)
        app.include_router(mailbox_router)
        # before the confirm links: their `/link/{verb}/{code}` would take `/link/rights/...`
        app.include_router(rights_router)
        app.include_router(confirm_links_router)
        app.include_router(supporter_links_router)
        app.include_router(email_webhooks_router)
        app.include_router(stripe_webhook_router)
    app.include_router(metrics_router)

    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            await db.ping(engine)
        except Exception:
            log.warning("health check: database unreachable", exc_info=True)
            return JSONResponse(
                {"status": "error", "message": "database unreachable"}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    return app
