"""A confirm message the worker cannot answer (no confirm template named on the page, its
campaign or its org) is warned about once per org, not per message and not silently."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.workers import WorkerDeps
from tests.email.worker_world import deps, run_worker, signed, smtp_site

__all__ = ["deps"]

WARNING = "supporter confirmation is on but a page has no confirm template"


async def test_confirm_messages_without_a_template_are_warned_once_per_org(
    client: httpx.AsyncClient,
    session: AsyncSession,
    deps: WorkerDeps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = await smtp_site(session, None, org_fields={"supporter_confirm": True})
    _, _, first = await signed(client, session, site, email="ann@example.org")
    _, _, second = await signed(client, session, site, email="bob@example.org")
    assert [d.exchange for d in first + second] == [f"org.{site.org_id}.confirm.supporter"] * 2
    caplog.set_level(logging.WARNING)
    assert await run_worker(deps, site, first) == [None]
    assert await run_worker(deps, site, second) == [None]
    warnings = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert warnings == [
        f"org {site.org_name}: {WARNING} (page, campaign or org supporterConfirmTemplate): its "
        "supporters stay unconfirmed"
    ]
    assert all("example.org" not in r.getMessage() for r in caplog.records)
