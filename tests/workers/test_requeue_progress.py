"""`proca-server requeue` reports its progress chunk by chunk on stderr."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.embedded import EmbeddedBroker
from tests.cli_helpers import cli, cli_each_step, env
from tests.processing.helpers import delivered_site, queued

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py

pytestmark = pytest.mark.slow  # the proca-server command in a subprocess


async def test_requeue_reports_each_chunk(
    env: dict[str, str],
    client: httpx.AsyncClient,
    session: AsyncSession,
    broker: EmbeddedBroker,
) -> None:
    site, ids = await delivered_site(client, session, broker)
    args = ("requeue", site.org_name, "custom_action_deliver", "--campaign", site.campaign_name)

    rc, out, err = await cli_each_step(
        *args, env=env, setup="import proca_server.processing.requeue_cli as r; r.CHUNK = 1"
    )
    assert rc == 0, err
    assert out == "requeued 2 of 2 selected (0 failed)\n"
    assert err == "actions: 1 of 2\nactions: 2 of 2\n"
    messages = await queued(session, f"cus.{site.org_id}.deliver")
    assert [m["actionId"] for m in messages] == ids

    # at the usual pace, one line at the end; nothing selected, no progress
    rc, out, err = await cli(*args, env=env)
    assert (rc, out, err) == (0, "requeued 2 of 2 selected (0 failed)\n", "actions: 2 of 2\n")
    rc, out, err = await cli(*args, "--since", "2100-01-01", env=env)
    assert (rc, out, err) == (0, "requeued 0 of 0 selected (0 failed)\n", "")
