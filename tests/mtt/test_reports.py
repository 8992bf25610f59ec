"""The MTT export rows and the sending status (`proca-server mtt export`, `mtt status`)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import SendStatus
from proca_server.models.enums import EmailStatus
from proca_server.mtt.cli import _write_csv
from proca_server.mtt.reports import (
    EXPORT_HEADER,
    ExportFilter,
    MttState,
    campaign_status,
    count_export,
    export_pages,
    target_status,
    window_state,
)
from tests.factories import make_campaign, make_org
from tests.mtt.report_rows import (
    NOW,
    count_outcomes,
    make_mtt_campaign,
    make_target,
    write_letter,
)

ACTIVE = {"pol@example.eu": EmailStatus.ACTIVE}


async def rows(session: AsyncSession, where: ExportFilter, page: int = 2) -> list[tuple[str, ...]]:
    out = []
    async for chunk in export_pages(session, where, page=page):
        assert len(chunk) <= page
        out.extend(chunk)
    return out


async def test_export_row_values_in_column_order(session: AsyncSession) -> None:
    c = await make_mtt_campaign(session, "save-the-bees")
    target = await make_target(session, c, "Jane Pol", ACTIVE)
    await write_letter(
        session,
        c,
        [target],
        first_name="Ann",
        last_name="Lee",
        email="ann@example.com",
        area="BE",
        subject="Bees",
        body="Save them.",
        at=NOW.replace(hour=10),
    )
    assert await rows(session, ExportFilter(emails=["pol@example.eu"])) == [
        (
            "Ann",
            "Lee",
            "ann@example.com",
            "BE",
            "save-the-bees",
            "Jane Pol",
            "Bees",
            "Save them.",
            "2026-12-06T10:00:00Z",
        )
    ]


async def test_export_orders_by_action_time_then_message_id(session: AsyncSession) -> None:
    c = await make_mtt_campaign(session)
    target = await make_target(session, c, emails=ACTIVE)
    other = await make_target(session, c, emails={"pol@example.eu": EmailStatus.NONE})
    await write_letter(session, c, [target], first_name="late", at=NOW)
    await write_letter(session, c, [other, target], first_name="early", at=NOW - timedelta(hours=2))
    await write_letter(session, c, [target], first_name="middle", at=NOW - timedelta(hours=1))
    got = await rows(session, ExportFilter(emails=["pol@example.eu"]))
    # the early action wrote to both targets: its two messages in id order
    assert [(r[0], r[5]) for r in got] == [
        ("early", other.name),
        ("early", target.name),
        ("middle", target.name),
        ("late", target.name),
    ]
    assert await count_export(session, ExportFilter(emails=["pol@example.eu"])) == 4


async def test_export_leaves_out_duplicates_and_unranked_unless_asked(
    session: AsyncSession,
) -> None:
    c = await make_mtt_campaign(session)
    target = await make_target(session, c, emails=ACTIVE)
    await write_letter(session, c, [target], first_name="first", dupe_rank=0, at=NOW)
    await write_letter(session, c, [target], first_name="again", dupe_rank=1, at=NOW + timedelta(1))
    await write_letter(
        session, c, [target], first_name="new", dupe_rank=None, at=NOW + timedelta(2)
    )
    plain = ExportFilter(emails=["pol@example.eu"])
    assert [r[0] for r in await rows(session, plain)] == ["first"]
    assert await count_export(session, plain) == 1
    everything = ExportFilter(emails=["pol@example.eu"], include_duplicates=True)
    assert [r[0] for r in await rows(session, everything)] == ["first", "again", "new"]
    assert await count_export(session, everything) == 3


async def test_export_filters_by_campaign(session: AsyncSession) -> None:
    bees = await make_mtt_campaign(session, "bees")
    trees = await make_mtt_campaign(session, "trees")
    # the same person is a target of both campaigns
    await write_letter(session, bees, [await make_target(session, bees, emails=ACTIVE)], body="b")
    await write_letter(session, trees, [await make_target(session, trees, emails=ACTIVE)], body="t")
    both = ExportFilter(emails=["pol@example.eu"])
    assert sorted(r[4] for r in await rows(session, both)) == ["bees", "trees"]
    only = ExportFilter(emails=["pol@example.eu"], campaign_id=trees.campaign.id)
    assert [(r[4], r[7]) for r in await rows(session, only)] == [("trees", "t")]


async def test_export_matches_email_without_case_or_spaces(session: AsyncSession) -> None:
    c = await make_mtt_campaign(session)
    target = await make_target(session, c, emails={" Jane.Pol@Example.EU ": EmailStatus.NONE})
    await write_letter(session, c, [target])
    for given in ("jane.pol@example.eu", "JANE.POL@EXAMPLE.EU  ", "Jane.Pol@example.eu"):
        assert len(await rows(session, ExportFilter(emails=[given]))) == 1, given
    assert await rows(session, ExportFilter(emails=["pol@example.eu"])) == []


async def test_export_one_row_per_message_when_target_has_two_matching_emails(
    session: AsyncSession,
) -> None:
    c = await make_mtt_campaign(session)
    target = await make_target(
        session,
        c,
        emails={"pol@example.eu": EmailStatus.ACTIVE, "POL@example.eu": EmailStatus.NONE},
    )
    await write_letter(session, c, [target])
    both = ExportFilter(emails=["pol@example.eu", "POL@EXAMPLE.EU"])
    assert len(await rows(session, both)) == 1
    assert await count_export(session, both) == 1


async def test_export_by_target_uuid_and_email_together(session: AsyncSession) -> None:
    c = await make_mtt_campaign(session)
    by_email = await make_target(session, c, "By Email", ACTIVE)
    by_id = await make_target(session, c, "By Id", {"other@example.eu": EmailStatus.ACTIVE})
    ignored = await make_target(session, c, "Ignored", {"third@example.eu": EmailStatus.ACTIVE})
    await write_letter(session, c, [by_email, by_id, ignored])
    assert [r[5] for r in await rows(session, ExportFilter(target_ids=[by_id.id]))] == ["By Id"]
    both = ExportFilter(emails=["pol@example.eu"], target_ids=[by_id.id])
    assert sorted(r[5] for r in await rows(session, both)) == ["By Email", "By Id"]


async def test_export_needs_a_target() -> None:
    with pytest.raises(ValueError, match="target"):
        await count_export(None, ExportFilter())  # type: ignore[arg-type]


async def test_csv_quotes_comma_quote_and_newline(
    session: AsyncSession, capsys: pytest.CaptureFixture[str]
) -> None:
    c = await make_mtt_campaign(session, "quotes")
    target = await make_target(session, c, "Pol, Jane", ACTIVE)
    body = 'Dear "Jane",\nplease, act.\r\nThanks'
    await write_letter(session, c, [target], first_name="Ann", last_name=None, body=body)
    assert await _write_csv(session, ExportFilter(emails=["pol@example.eu"])) == 1
    out = capsys.readouterr().out
    assert out.startswith(",".join(EXPORT_HEADER) + "\r\n")
    assert '"Dear ""Jane"",\nplease, act.\r\nThanks"' in out
    assert '"Pol, Jane"' in out
    parsed = list(csv.reader(io.StringIO(out, newline="")))
    assert parsed[0] == list(EXPORT_HEADER)
    assert parsed[1][:2] == ["Ann", ""]
    assert parsed[1][5] == "Pol, Jane" and parsed[1][7] == body


async def test_csv_nothing_found_writes_nothing(
    session: AsyncSession, capsys: pytest.CaptureFixture[str]
) -> None:
    c = await make_mtt_campaign(session)
    await make_target(session, c, emails=ACTIVE)
    assert await _write_csv(session, ExportFilter(emails=["pol@example.eu"])) == 0
    assert capsys.readouterr().out == ""


# --- status


def test_window_states() -> None:
    start, end = NOW.replace(hour=9), NOW.replace(hour=17) + timedelta(days=2)
    drip, hourly = True, False
    assert window_state(start, end, drip, start - timedelta(seconds=1)) is MttState.NOT_STARTED
    assert window_state(start, end, drip, start) is MttState.RUNNING
    # a drip campaign at night between two sending days still runs
    assert window_state(start, end, drip, NOW.replace(hour=23)) is MttState.RUNNING
    assert window_state(start, end, drip, end) is MttState.ENDED
    # the hourly mode sends on every hour of its days, the first and the last whole
    assert window_state(start, end, hourly, NOW.replace(hour=1)) is MttState.RUNNING
    assert window_state(start, end, hourly, end + timedelta(hours=3)) is MttState.RUNNING
    assert window_state(start, end, hourly, start - timedelta(days=1)) is MttState.NOT_STARTED
    assert window_state(start, end, hourly, end + timedelta(days=1)) is MttState.ENDED


async def test_status_sums_outcomes_and_counts_waiting_messages(session: AsyncSession) -> None:
    c = await make_mtt_campaign(session, "bees")
    a = await make_target(session, c, "A", ACTIVE)
    b = await make_target(session, c, "B", {"b@example.eu": EmailStatus.NONE})
    bounced = await make_target(
        session,
        c,
        "Bounced",
        {"x@example.eu": EmailStatus.BOUNCE, "y@example.eu": EmailStatus.SPAM},
    )
    await make_target(session, c, "No address")
    await count_outcomes(session, a, planned=9, sent=5, failed=1, cancelled=2, in_doubt=1)
    await count_outcomes(session, b, planned=3, sent=2, undeliverable=1)
    await write_letter(session, c, [a, b])  # 2 pending
    await write_letter(session, c, [a], testing=True, dupe_rank=1)  # pending: a test
    await write_letter(session, c, [a], dupe_rank=2)  # duplicate
    await write_letter(session, c, [b, bounced], dupe_rank=None)  # unranked
    await write_letter(session, c, [a], send_status=SendStatus.SENT)  # done
    await write_letter(session, c, [b], send_status=SendStatus.FAILED)
    # another campaign's messages and counts stay out
    other = await make_mtt_campaign(session, "trees")
    t = await make_target(session, other, emails=ACTIVE)
    await write_letter(session, other, [t])
    await count_outcomes(session, t, sent=7)

    [status] = await campaign_status(session, "bees", NOW)
    assert status.as_dict() == {
        "campaign": "bees",
        "mode": "drip",
        "start_at": "2026-12-05T12:00:00Z",
        "end_at": "2026-12-07T12:00:00Z",
        "timezone": "Europe/Brussels",
        "state": "running",
        "sent": 7,
        "failed": 1,
        "cancelled": 2,
        "undeliverable": 1,
        "in_doubt": 1,
        "pending": 3,
        # the test letter has rank 1 too
        "duplicates": 2,
        "unranked": 2,
        "targets": 4,
        "targets_without_email": 2,
    }


async def test_status_of_a_campaign_without_targets_is_zeros(session: AsyncSession) -> None:
    await make_mtt_campaign(session, "empty", drip=False)
    [status] = await campaign_status(session, None, NOW)
    assert status.mode == "hourly"
    assert (status.sent, status.pending, status.targets, status.targets_without_email) == (
        0,
        0,
        0,
        0,
    )


async def test_status_states_by_window_and_backend(session: AsyncSession) -> None:
    day = timedelta(days=1)
    await make_mtt_campaign(session, "a-running")
    await make_mtt_campaign(session, "b-soon", start_at=NOW + day, end_at=NOW + 2 * day)
    await make_mtt_campaign(session, "c-over", start_at=NOW - 2 * day, end_at=NOW - day)
    org = await make_org(session, "quiet-org")
    await make_mtt_campaign(session, "d-blocked", backend=False, org=org)
    await make_mtt_campaign(
        session, "e-blocked-later", backend=False, org=org, start_at=NOW + day, end_at=NOW + 2 * day
    )
    # nothing more to send: no backend is no news
    await make_mtt_campaign(
        session, "f-over-anyway", backend=False, org=org, start_at=NOW - 2 * day, end_at=NOW - day
    )
    orphan = await make_mtt_campaign(session, "g-orphan")
    orphan.campaign.org_id = None
    await session.flush()

    states = {s.campaign: s.state_text for s in await campaign_status(session, None, NOW)}
    blocked = "blocked: the lead org quiet-org has no email backend"
    assert states == {
        "a-running": "running",
        "b-soon": "not started",
        "c-over": "ended",
        "d-blocked": blocked,
        "e-blocked-later": blocked,
        "f-over-anyway": "ended",
        "g-orphan": "blocked: the campaign has no lead org",
    }
    assert list(states) == sorted(states)


async def test_status_lists_only_mtt_campaigns_and_the_named_one(session: AsyncSession) -> None:
    c = await make_mtt_campaign(session, "bees")
    await make_mtt_campaign(session, "trees")
    await make_campaign(session, c.org, "petition-only")
    assert [s.campaign for s in await campaign_status(session, None, NOW)] == ["bees", "trees"]
    assert [s.campaign for s in await campaign_status(session, "TREES", NOW)] == ["trees"]
    assert await campaign_status(session, "petition-only", NOW) == []


async def test_target_status_rows(session: AsyncSession) -> None:
    c = await make_mtt_campaign(session)
    a = await make_target(session, c, "A", ACTIVE)
    b = await make_target(session, c, "B", {"b@example.eu": EmailStatus.INACTIVE})
    await count_outcomes(session, a, planned=4, sent=3, failed=1)
    await write_letter(session, c, [a, b])
    await write_letter(session, c, [a], dupe_rank=1)
    await write_letter(session, c, [b], send_status=SendStatus.UNDELIVERABLE)
    got = [t.as_dict() for t in await target_status(session, c.campaign.id)]
    assert got == [
        {
            "target_id": str(a.id),
            "name": "A",
            "external_id": a.external_id,
            "sent": 3,
            "pending": 1,
            "failed": 1,
            "undeliverable": 0,
            "has_usable_email": True,
        },
        {
            "target_id": str(b.id),
            "name": "B",
            "external_id": b.external_id,
            "sent": 0,
            "pending": 1,
            "failed": 0,
            "undeliverable": 0,
            "has_usable_email": False,
        },
    ]
