"""`proca-server retention` and `proca-server campaigns ...`, run as an operator would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import months_before
from proca_server.models import Org
from proca_server.models.enums import CampaignStatus
from tests.cli_helpers import cli, env
from tests.retention.world import NOW, campaign_with_page, make_retention_world, sign

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py

pytestmark = pytest.mark.slow  # the proca-server command in a subprocess


async def test_retention_dry_run_then_runs_and_reruns(
    env: dict[str, str], session: AsyncSession
) -> None:
    world = await make_retention_world(session)
    org = world.org.name

    rc, out, err = await cli("retention", org, "--dry-run", env=env)
    assert rc == 0, err
    cutoff = months_before(NOW, 24).date().isoformat()
    assert out.splitlines() == [
        f"{org}: delete_contacts, 24 months (campaigns ended and actions made before {cutoff}), "
        "every campaign",
        "would delete 2 contacts of 2 supporters",
    ]
    rc, out, err = await cli("retention", org, "--mode", "remove_pii", "--dry-run", env=env)
    assert out.splitlines()[-1] == (
        "would delete 2 contacts of 2 supporters, and clear the personal data of 1 of them"
    )

    rc, out, err = await cli("retention", org, "--mode", "remove_pii", "--batch-size", "1", env=env)
    assert rc == 0, err
    assert out.splitlines()[-1] == (
        "deleted 2 contacts of 2 supporters, and cleared the personal data of 1 of them"
    )
    # off a terminal, the progress is one plain line on stderr
    assert err == "supporters: 2 of 2\n"
    rc, out, _ = await cli("retention", org, "--campaign", world.old.campaign, env=env)
    assert rc == 0
    # cat's live signature does not protect her contact from the old campaign
    assert out.splitlines()[-1] == "deleted 1 contacts of 1 supporters"
    rc, out, _ = await cli("retention", org, "--campaign", world.old.campaign, env=env)
    assert out.splitlines()[-1] == "deleted 0 contacts of 0 supporters"


async def test_retention_errors_are_one_line(env: dict[str, str], session: AsyncSession) -> None:
    world = await make_retention_world(session)
    org = world.org.name
    for args, message in (
        (("nobody",), "no org named nobody"),
        ((org, "--campaign", "nothing"), "no campaign named nothing"),
        ((org, "--months", "0"), "--months must be a whole number of months from 1 to 1200"),
        ((org, "--mode", "forget"), "--mode must be one of delete_contacts, remove_pii"),
        ((), "give an ORG (or --status)"),
        ((org, "--status"), "--status takes no ORG or other option"),
    ):
        rc, _, err = await cli("retention", *args, "--dry-run", env=env)
        assert (rc, err) == (1, f"error: {message}\n"), args


async def test_retention_status_lists_the_policies_and_their_runs(
    env: dict[str, str], session: AsyncSession
) -> None:
    world = await make_retention_world(session)
    org = await session.get(Org, world.org.id)
    assert org is not None
    org.config = {"retention": {"months": 30, "mode": "remove_pii"}}
    await session.commit()
    rc, out, err = await cli("retention", "--status", env=env)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "org",
        "mode",
        "months",
        "last",
        "run",
        "(UTC)",
        "next",
        "run",
        "(UTC)",
        "last",
        "outcome",
    ]
    assert lines[2].split() == [world.org.name, "remove_pii", "30", "never", "next", "look", "-"]
    assert lines[-1] == "closing of ended campaigns: last run never, next run next look, 0 closed"


async def test_campaign_housekeeping_commands(env: dict[str, str], session: AsyncSession) -> None:
    world = await make_retention_world(session)
    ended = await campaign_with_page(
        session, world.org, status=CampaignStatus.LIVE, ended=(NOW - timedelta(days=2)).date()
    )
    quiet = await campaign_with_page(session, world.org, status=CampaignStatus.LIVE)
    await sign(session, quiet, "zed", at=NOW - timedelta(days=70), contacts=[])
    await session.commit()

    rc, out, err = await cli("campaigns", "close-ended", "--dry-run", env=env)
    assert (rc, out) == (0, f"{ended.campaign}\nwould close 1 campaigns\n"), err
    rc, out, _ = await cli("campaigns", "close-ended", env=env)
    assert out == f"{ended.campaign}\nclosed 1 campaigns\n"
    rc, out, _ = await cli("campaigns", "auto-close", "--months", "12", "--dry-run", env=env)
    assert out == "would close 0 campaigns (0 with actions, 0 without)\n"
    # the quiet campaign's last action is 70 days old, the other live one's 30
    rc, out, _ = await cli("campaigns", "auto-close", "--months", "2", env=env)
    day = (NOW - timedelta(days=70)).date().isoformat()
    # one day of actions: the end is the day after, so that the start stays before it
    next_day = (NOW - timedelta(days=69)).date().isoformat()
    assert out.splitlines() == [
        f"{quiet.campaign}: last action {day}; start {day}, end {next_day}",
        "closed 1 campaigns (1 with actions, 0 without)",
    ]
    rc, out, err = await cli("campaigns", "auto-close", "--months", "x", env=env)
    assert (rc, err) == (1, "error: --months must be a whole number of months from 1 to 1200\n")
    rc, out, _ = await cli("campaigns", "backfill-dates", "--dry-run", env=env)
    assert out.splitlines()[-1].startswith("would fill ")
