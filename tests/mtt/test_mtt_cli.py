"""`proca-server mtt export` and `proca-server mtt status`, run as an operator would."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import utcnow
from proca_server.models import AuditLog
from proca_server.models.enums import EmailStatus
from proca_server.mtt.reports import EXPORT_HEADER
from tests.cli_helpers import cli, env
from tests.factories import make_campaign, make_org
from tests.mtt.report_rows import NOW, count_outcomes, make_mtt_campaign, make_target, write_letter

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py

pytestmark = pytest.mark.slow  # the proca-server command in a subprocess


def parse(out: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(out, newline="")))


async def test_export_prints_csv_that_reads_back(
    env: dict[str, str], session: AsyncSession
) -> None:
    c = await make_mtt_campaign(session, "bees")
    pol = await make_target(session, c, "Jane Pol", {"Pol@Example.eu": EmailStatus.ACTIVE})
    other = await make_target(session, c, "Max Other", {"max@example.eu": EmailStatus.ACTIVE})
    body = 'Dear "Jane",\nplease, act.'
    await write_letter(session, c, [pol, other], first_name="Ann", body=body, at=NOW)
    await write_letter(session, c, [pol], first_name="Bob", dupe_rank=1, at=NOW + timedelta(1))
    trees = await make_mtt_campaign(session, "trees")
    pol_trees = await make_target(session, trees, "Jane Pol", {"pol@example.eu": EmailStatus.NONE})
    await write_letter(session, trees, [pol_trees], first_name="Cy", at=NOW - timedelta(1))
    await session.commit()

    rc, out, err = await cli("mtt", "export", "--target", " POL@example.eu", env=env)
    assert rc == 0, err
    # off a terminal, the progress is one plain line on stderr (stdout is only the CSV)
    assert err == "exporting: 2\n"
    assert out.startswith(",".join(EXPORT_HEADER) + "\r\n")
    assert parse(out) == [
        list(EXPORT_HEADER),
        [
            "Cy",
            "Lee",
            "ann@example.com",
            "BE",
            "trees",
            "Jane Pol",
            "Hello",
            "Please act.",
            "2026-12-05T12:00:00Z",
        ],
        [
            "Ann",
            "Lee",
            "ann@example.com",
            "BE",
            "bees",
            "Jane Pol",
            "Hello",
            body,
            "2026-12-06T12:00:00Z",
        ],
    ]
    # the names and emails read are in the audit trail, one entry per org, nothing personal
    await session.rollback()
    entries = (
        await session.scalars(select(AuditLog).where(AuditLog.resource == "mtt_export"))
    ).all()
    assert sorted((e.org_id, e.changeset["count"], e.actor_id) for e in entries) == sorted(
        [(c.org.id, 1, "cli"), (trees.org.id, 1, "cli")]
    )
    assert "example" not in json.dumps([e.changeset for e in entries])

    rc, out, _ = await cli(
        "mtt",
        "export",
        "--target",
        "pol@example.eu",
        "--target-uuid",
        str(other.id),
        "--campaign",
        "BEES",
        "--include-duplicates",
        env=env,
    )
    assert rc == 0
    assert [(r[0], r[5]) for r in parse(out)[1:]] == [
        ("Ann", "Jane Pol"),
        ("Ann", "Max Other"),
        ("Bob", "Jane Pol"),
    ]


async def test_export_of_nothing_says_so_on_stderr(
    env: dict[str, str], session: AsyncSession
) -> None:
    c = await make_mtt_campaign(session)
    await make_target(session, c, emails={"pol@example.eu": EmailStatus.ACTIVE})
    await session.commit()
    unknown = uuid.uuid4()
    rc, out, err = await cli(
        "mtt", "export", "--target", "pol@example.eu", "--target-uuid", str(unknown), env=env
    )
    assert (rc, out) == (0, "")
    assert err == f"No messages found for pol@example.eu, {unknown}\n"


async def test_export_mistakes_are_one_line_errors(
    env: dict[str, str], session: AsyncSession
) -> None:
    cases = [
        (("--target", "a@example.eu", "--campaign", "nope"), "error: no campaign named nope"),
        ((), "error: give at least one --target EMAIL or --target-uuid UUID"),
        (("--target-uuid", "not-a-uuid"), "error: not a target UUID: not-a-uuid"),
    ]
    for args, line in cases:
        rc, out, err = await cli("mtt", "export", *args, env=env)
        assert (rc, out, err) == (1, "", line + "\n"), args


async def test_status_as_json_and_as_a_table(env: dict[str, str], session: AsyncSession) -> None:
    now = utcnow()
    c = await make_mtt_campaign(
        session, "bees", start_at=now - timedelta(days=1), end_at=now + timedelta(days=1)
    )
    a = await make_target(session, c, "Jane Pol", {"pol@example.eu": EmailStatus.ACTIVE})
    b = await make_target(session, c, "Max Other")
    await count_outcomes(session, a, planned=3, sent=3)
    await write_letter(session, c, [a, b])
    await write_letter(session, c, [a], dupe_rank=None)
    await make_mtt_campaign(
        session,
        "trees",
        drip=False,
        backend=False,
        org=await make_org(session, "quiet-org"),
        start_at=now - timedelta(days=1),
        end_at=now + timedelta(days=1),
    )
    await make_campaign(session, c.org, "petition-only")
    await session.commit()

    rc, out, err = await cli("mtt", "status", "--json", env=env)
    assert rc == 0, err
    bees, trees = json.loads(out)
    assert bees["campaign"] == "bees" and bees["state"] == "running"
    assert (bees["sent"], bees["pending"], bees["unranked"]) == (3, 2, 1)
    assert (bees["targets"], bees["targets_without_email"]) == (2, 1)
    assert trees["mode"] == "hourly"
    assert trees["state"] == "blocked: the lead org quiet-org has no email backend"

    rc, out, _ = await cli("mtt", "status", "bees", "--targets", "--json", env=env)
    assert rc == 0
    [only] = json.loads(out)
    assert [(t["name"], t["sent"], t["pending"]) for t in only["targets"]] == [
        ("Jane Pol", 3, 1),
        ("Max Other", 0, 1),
    ]

    rc, out, _ = await cli("mtt", "status", "bees", "--targets", env=env)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["campaign", "mode"]
    assert lines[2].split()[:2] == ["bees", "drip"] and lines[2].endswith("running")
    assert lines[4].startswith("target") and lines[6].startswith("Jane Pol")
    assert lines[7].startswith("Max Other") and lines[7].endswith("no")


async def test_status_mistakes_are_one_line_errors(
    env: dict[str, str], session: AsyncSession
) -> None:
    c = await make_mtt_campaign(session, "bees")
    await make_campaign(session, c.org, "petition-only")
    await session.commit()
    cases = [
        (("nope",), "error: no campaign named nope"),
        (("petition-only",), "error: campaign petition-only has no mail-to-target settings"),
        (("--targets",), "error: --targets needs a CAMPAIGN"),
    ]
    for args, line in cases:
        rc, out, err = await cli("mtt", "status", *args, env=env)
        assert (rc, out, err) == (1, "", line + "\n"), args


async def test_mtt_help(tmp_path: Path) -> None:
    env = {"PROCA_DATA_DIR": str(tmp_path)}
    for args in (("mtt",), ("mtt", "export"), ("mtt", "status")):
        rc, out, err = await cli(*args, "--help", env=env)
        assert rc == 0, (args, err)
        assert "Usage" in out
