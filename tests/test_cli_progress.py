"""Progress of the long commands: plain lines on stderr off a terminal (a line per step here,
with `PLAIN_EVERY` set to 0 in the command's process), a rich bar on one, stdout unchanged."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit import progress as progress_module
from proca_server.kit.progress import Progress
from proca_server.models import Org, PreviewEmail
from proca_server.models.enums import CampaignStatus
from tests.cli_helpers import cli, cli_each_step, env
from tests.email.worker_world import REMINDER, confirming_action
from tests.retention.world import NOW, campaign_with_page, new_org, sign

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py

pytestmark = pytest.mark.slow  # the proca-server command in a subprocess


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_at_each_step_without_repeating_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress_module, "PLAIN_EVERY", 0)
    out = io.StringIO()
    with Progress("rows", 3, stream=out) as progress:
        progress.advance(2)
        progress.advance(1)
    assert out.getvalue() == "rows: 2 of 3\nrows: 3 of 3\n"
    out = io.StringIO()
    with Progress("rows", stream=out) as progress:
        progress.advance(1200)
    assert out.getvalue() == "rows: 1,200\n"


def test_nothing_to_do_prints_and_draws_nothing() -> None:
    for stream in (io.StringIO(), Terminal()):
        with Progress("rows", 0, stream=stream) as progress:
            pass
        assert progress.done == 0
        assert stream.getvalue() == "", type(stream)


def test_the_bar_leaves_stdout_to_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    stream = Terminal()
    with Progress("rows", 2, stream=stream) as progress:
        print("data,1")
        progress.advance(2)
    assert capsys.readouterr().out == "data,1\n"
    drawn = stream.getvalue()
    assert "rows" in drawn and "data" not in drawn


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run `proca-server ARGS` with stderr on a pseudo-terminal, stdout on a pipe."""
    primary, secondary = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TTY_", "NO_COLOR"))}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proca_server", *args],
            env={**clean, **env, "TERM": "xterm-256color", "COLUMNS": "100"},
            stdout=subprocess.PIPE,
            stderr=secondary,
        )
        os.close(secondary)
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the command ended and closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(primary)
    return proc.returncode, out.decode(), drawn.decode(errors="replace")


async def test_on_a_terminal_the_command_draws_a_rich_bar(
    env: dict[str, str], session: AsyncSession
) -> None:
    org = await new_org(session)
    ended = await campaign_with_page(
        session, org, status=CampaignStatus.LIVE, ended=(NOW - timedelta(days=2)).date()
    )
    await session.commit()

    args = ["campaigns", "close-ended", "--dry-run"]
    rc, out, drawn = await asyncio.to_thread(_run_on_a_terminal, args, env)
    assert rc == 0, drawn
    assert out == f"{ended.campaign}\nwould close 1 campaigns\n"
    # the bar (cursor and colour codes, the bar's line) rather than the plain line
    assert "\x1b[" in drawn and "ended campaigns" in drawn and "━" in drawn
    assert "ended campaigns: 1 of 1" not in drawn


async def test_campaign_commands_report_their_progress(
    env: dict[str, str], session: AsyncSession
) -> None:
    org = await new_org(session)
    ended = [
        await campaign_with_page(
            session, org, status=CampaignStatus.LIVE, ended=(NOW - timedelta(days=2)).date()
        )
        for _ in range(2)
    ]
    quiet = await campaign_with_page(session, org, status=CampaignStatus.LIVE)
    await sign(session, quiet, "zed", at=NOW - timedelta(days=70), contacts=[])
    busy = await campaign_with_page(session, org, status=CampaignStatus.LIVE)
    await sign(session, busy, "amy", at=NOW - timedelta(days=5), contacts=[])
    done = await campaign_with_page(session, org)
    await sign(session, done, "bea", at=NOW - timedelta(days=60), contacts=[])
    await session.commit()
    names = "".join(f"{p.campaign}\n" for p in ended)
    one_at_a_time = "import proca_server.campaign.housekeeping as h; h.BATCH = 1"

    # at the usual pace, one line at the end
    rc, out, err = await cli("campaigns", "close-ended", "--dry-run", env=env)
    assert (rc, out, err) == (0, f"{names}would close 2 campaigns\n", "ended campaigns: 2 of 2\n")

    rc, out, err = await cli_each_step("campaigns", "close-ended", env=env, setup=one_at_a_time)
    assert rc == 0, err
    assert out == f"{names}closed 2 campaigns\n"
    assert err == "ended campaigns: 1 of 2\nended campaigns: 2 of 2\n"
    # nothing left to close: no progress at all
    rc, out, err = await cli_each_step("campaigns", "close-ended", env=env)
    assert (rc, out, err) == (0, "closed 0 campaigns\n", "")

    rc, out, err = await cli_each_step(
        "campaigns", "auto-close", "--months", "2", env=env, setup=one_at_a_time
    )
    assert rc == 0, err
    day = (NOW - timedelta(days=70)).date().isoformat()
    next_day = (NOW - timedelta(days=69)).date().isoformat()
    assert out.splitlines() == [
        f"{quiet.campaign}: last action {day}; start {day}, end {next_day}",
        "closed 1 campaigns (1 with actions, 0 without)",
    ]
    assert err == "live campaigns: 1 of 2\nlive campaigns: 2 of 2\n"

    # undated: the two ended (no start), busy and done; quiet got both dates above
    rc, out, err = await cli_each_step(
        "campaigns",
        "backfill-dates",
        env=env,
        setup="import proca_server.campaign.housekeeping as h; h.BATCH = 3",
    )
    assert rc == 0, err
    busy_day = (NOW - timedelta(days=5)).date().isoformat()
    done_day = (NOW - timedelta(days=60)).date()
    assert out.splitlines() == [
        f"{busy.campaign}: start {busy_day}",
        f"{done.campaign}: start {done_day.isoformat()}, "
        f"end {(done_day + timedelta(days=1)).isoformat()}",
        "filled 2 start dates and 1 end dates",
    ]
    assert err == "undated campaigns: 3 of 4\nundated campaigns: 4 of 4\n"


async def test_reminders_report_their_progress(
    env: dict[str, str], client: httpx.AsyncClient, session: AsyncSession
) -> None:
    for _ in range(2):
        await confirming_action(client, session, config=REMINDER, age_days=3)
    senders = select(Org.name).where(Org.email_backend_id.is_not(None)).order_by(Org.id)
    orgs = list(await session.scalars(senders))
    await session.rollback()

    # no total is known before each org is looked at: the count alone, org by org
    rc, out, err = await cli_each_step("reminders", "--dry-run", env=env)
    assert rc == 0, err
    assert out.splitlines() == [*(f"{o}: 1 due" for o in orgs), "2 supporters would be reminded"]
    assert err == "reminders: 1\nreminders: 2\n"

    # the keys, so that stderr holds the progress alone
    keys = {"SECRET_KEY_BASE": "k" * 64, "EMAIL_SRS_KEY": "s" * 32}
    rc, out, err = await cli_each_step("reminders", env={**env, **keys})
    assert rc == 0, err
    assert out.splitlines() == [
        *(f"{o}: 1 due, 1 sent, 0 failed" for o in orgs),
        "2 supporters reminded",
    ]
    assert err == "reminders: 1\nreminders: 2\n"
    assert len(list(await session.scalars(select(PreviewEmail)))) == 2
    await session.rollback()

    rc, out, err = await cli("reminders", env={**env, **keys})
    assert (rc, err) == (0, "")
    assert out.splitlines()[-1] == "0 supporters reminded"
