"""Pages whose org sends through a real local SMTP server, signatures processed up to the
message the email supporter worker reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker import open_broker
from proca_server.broker.base import Delivery
from proca_server.config import Settings
from proca_server.email.worker import handle_batch
from proca_server.kit.time import utcnow
from proca_server.models import Action, EmailTemplate, Org, Service
from proca_server.workers import WorkerDeps
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, TlsFiles
from tests.processing.helpers import Site, action_ids, make_site, process, sign


@pytest.fixture
async def deps(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[WorkerDeps]:
    broker = await open_broker(settings, sessionmaker)
    yield WorkerDeps(settings, sessionmaker, broker)
    await broker.close()


@pytest.fixture
def trusted_ca(tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backends made from a service verify certificates with the default trust store."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))


async def add_template(
    session: AsyncSession, org_id: int, name: str, locale: str = "en", **fields: Any
) -> None:
    session.add(
        EmailTemplate(
            org_id=org_id,
            name=name,
            locale=locale,
            subject=fields.get("subject", ""),
            html=fields.get("html", ""),
            text=fields.get("text"),
            external_id=fields.get("external_id"),
        )
    )
    await session.commit()


async def smtp_site(
    session: AsyncSession,
    server: SmtpServer | None,
    *,
    org_fields: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Site:
    """A cleartext org sending through `server` (or the preview mailbox when None)."""
    fields = {"email_from": "hello@trees.example", "title": "Save Trees"}
    fields.update(org_fields or {})
    site = await make_site(session, encrypted=False, org_fields=fields, **kwargs)
    org = await session.get(Org, site.org_id)
    assert org is not None
    if server is None:
        service = Service(name="preview", org_id=org.id)
    else:
        service = Service(
            name="smtp", org_id=org.id, host=server.url, user=SMTP_USER, password=SMTP_PASSWORD
        )
    session.add(service)
    await session.flush()
    org.email_backend_id = service.id
    await session.commit()
    return site


async def signed(
    client: httpx.AsyncClient, session: AsyncSession, site: Site, **over: Any
) -> tuple[int, str, list[Delivery]]:
    """Sign on the site's page and process: (action id, contactRef, the worker's deliveries)."""
    ref = await sign(client, site.page_id, **over)
    action_id = (await action_ids(session))[-1]
    return action_id, ref, await processed(session, site, action_id)


async def processed(session: AsyncSession, site: Site, action_id: int) -> list[Delivery]:
    plans = await process(session, [action_id])
    queue = f"wrk.{site.org_id}.email.supporter"
    return [
        Delivery(queue=queue, body=p.body, exchange=p.exchange, routing_key=p.routing_key)
        for plan in plans
        for p in plan.publications
        if p.exchange in (f"org.{site.org_id}.deliver", f"org.{site.org_id}.confirm.supporter")
    ]


async def run_worker(
    deps: WorkerDeps, site: Site, deliveries: list[Delivery]
) -> list[Exception | None]:
    return await handle_batch(deps, site.org_id, deliveries)


REMINDER = {"reminder": {"enabled": True, "delay_days": "2", "max_count": 3}}


async def confirming_action(
    client: httpx.AsyncClient, session: AsyncSession, *, config: Mapping[str, object], age_days: int
) -> tuple[int, str]:
    site = await smtp_site(
        session,
        None,
        org_fields={"supporter_confirm": True, "config": dict(config)},
        page_fields={"supporter_confirm_template": "confirm"},
    )
    await add_template(
        session, site.org_id, "confirm", subject="Reminder: confirm", html="{{confirmLink}}"
    )
    action_id, ref, _ = await signed(client, session, site)
    then = utcnow() - timedelta(days=age_days)
    await session.execute(
        update(Action).where(Action.id == action_id).values(updated_at=then, inserted_at=then)
    )
    await session.commit()
    return action_id, ref
