"""`proca-server audit`, run as an operator would."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.audit.cli import Line, _print_table
from proca_server.models import AuditLog
from tests.cli_helpers import cli, env
from tests.factories import make_org

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py

pytestmark = pytest.mark.slow  # the proca-server command in a subprocess


def at(day: int) -> datetime:
    return datetime(2026, 11, day, 12, 0, tzinfo=UTC)


async def _trail(session: AsyncSession) -> tuple[str, str]:
    bees = await make_org(session, "bees")
    trees = await make_org(session, "trees")
    session.add_all(
        [
            AuditLog(
                actor_id="user:1",
                resource="actions",
                resource_id="",
                org_id=bees.id,
                changeset={"count": 12, "campaignName": "pollinate"},
                inserted_at=at(1),
            ),
            AuditLog(
                actor_id="user:2",
                resource="generateKey",
                resource_id="5",
                org_id=trees.id,
                changeset={},
                inserted_at=at(2),
            ),
            AuditLog(
                actor_id="user:1",
                resource="deleteContact",
                resource_id="",
                org_id=bees.id,
                changeset={"count": 1},
                inserted_at=at(3),
            ),
            # an org since deleted: its trail stays, named by id
            AuditLog(
                actor_id="system",
                resource="retention",
                resource_id="",
                org_id=999999,
                changeset={"count": 40},
                inserted_at=at(4),
            ),
        ]
    )
    await session.commit()
    return bees.name, trees.name


async def test_lists_newest_first_and_filters_by_org_since_and_limit(
    env: dict[str, str], session: AsyncSession
) -> None:
    bees, _ = await _trail(session)

    rc, out, err = await cli("audit", "--json", env=env)
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in lines] == ["retention", "deleteContact", "generateKey", "actions"]
    assert lines[0]["org"] is None and lines[0]["org_id"] == 999999
    assert lines[3] == {
        "at": "2026-11-01T12:00:00Z",
        "actor": "user:1",
        "action": "actions",
        "org": "bees",
        "org_id": lines[3]["org_id"],
        "resource_id": "",
        "count": 12,
        "details": {"campaignName": "pollinate"},
    }

    rc, out, err = await cli("audit", "--org", bees, "--json", env=env)
    assert rc == 0, err
    assert [json.loads(x)["action"] for x in out.splitlines()] == ["deleteContact", "actions"]

    rc, out, err = await cli("audit", "--since", "2026-11-02", "--limit", "2", "--json", env=env)
    assert rc == 0, err
    assert [json.loads(x)["action"] for x in out.splitlines()] == ["retention", "deleteContact"]
    rc, out, err = await cli("audit", "--since", "2026-11-03T12:00:01Z", "--json", env=env)
    assert rc == 0, err
    assert [json.loads(x)["action"] for x in out.splitlines()] == ["retention"]


async def test_off_a_terminal_each_entry_is_one_tab_separated_line(
    env: dict[str, str], session: AsyncSession
) -> None:
    await _trail(session)
    rc, out, err = await cli("audit", "--org", "trees", env=env)
    assert rc == 0, err
    assert out.splitlines() == ["2026-11-02T12:00:00Z\tuser:2\tgenerateKey\ttrees\t5\t\t"]
    rc, out, _ = await cli("audit", env=env)
    first = out.splitlines()[0].split("\t")
    assert first == ["2026-11-04T12:00:00Z", "system", "retention", "#999999", "", "40", ""]
    last = out.splitlines()[-1].split("\t")
    assert last[3:] == ["bees", "", "12", '{"campaignName":"pollinate"}']


async def test_mistakes_are_one_line_errors(env: dict[str, str], session: AsyncSession) -> None:
    await _trail(session)
    for args, message in [
        (("--org", "nobody"), "error: no org named nobody\n"),
        (
            ("--since", "last tuesday"),
            "error: --since must be a date (YYYY-MM-DD) or an ISO 8601 date and time\n",
        ),
        (("--limit", "0"), "error: --limit must be at least 1\n"),
    ]:
        rc, out, err = await cli("audit", *args, env=env)
        assert (rc, out, err) == (1, "", message), args


def test_on_a_terminal_the_entries_are_an_aligned_table(capsys: pytest.CaptureFixture[str]) -> None:
    entries = [
        Line(
            AuditLog(
                actor_id="cli",
                resource="generateKey",
                resource_id="4",
                changeset={},
                inserted_at=at(2),
            ),
            None,
        ),
        Line(
            AuditLog(
                actor_id="user:12",
                resource="actions",
                resource_id="",
                org_id=3,
                changeset={"count": 7, "limit": 10},
                inserted_at=at(1),
            ),
            "bees",
        ),
    ]
    _print_table(entries)
    assert capsys.readouterr().out.splitlines() == [
        "when (UTC)            actor    action       org   resource  count  details",
        "--------------------  -------  -----------  ----  --------  -----  ------------",
        "2026-11-02T12:00:00Z  cli      generateKey        4",
        '2026-11-01T12:00:00Z  user:12  actions      bees                7  {"limit":10}',
    ]
    _print_table([])
    assert capsys.readouterr().out == "no audit entries\n"
