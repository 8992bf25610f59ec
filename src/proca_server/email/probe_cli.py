"""`proca-server email test ORG --to ADDRESS [--template NAME]`: send a test email through
the org's email backend (email/probe.py says which one and from whom)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.command import run, settings, with_database
from proca_server.email.backends.base import EmailConfigError, EmailDeliveryError
from proca_server.email.probe import Probe, compose_probe
from proca_server.errors import UserInputError
from proca_server.org.cli import require_org

email_app = typer.Typer(help="Email of the orgs.", no_args_is_help=True)


def describe(probe: Probe, org: str) -> str:
    backend = probe.backend
    if backend.service is None:
        where = "the preview mailbox (/mailbox)"
    else:
        owner = backend.owner.name if backend.owner is not None else org
        lent = f", lent by org {owner}" if owner != org else ""
        kind = "transactional backend" if backend.transactional else "email backend"
        where = f"the {backend.name} {kind} (service {backend.service.id}{lent})"
    return f"sent through {where}, message id {probe.message_id}"


@email_app.command("test")
def test_command(
    org: Annotated[str, typer.Argument(metavar="ORG", help="The org's name.")],
    to: Annotated[str, typer.Option(metavar="ADDRESS", help="Where to send the test email.")],
    template: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Send this template of the org (local or the provider's), with sample merge "
            "tags; default: a short text.",
        ),
    ] = None,
    locale: Annotated[
        str | None,
        typer.Option(help="The template's locale (default: any, English first)."),
    ] = None,
) -> None:
    """Send a test email through the backend the org's supporter emails take, from the
    org's sender address."""
    s = settings()

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> Probe:
        async with sessionmaker() as session, session.begin():
            found = await require_org(session, org)
            probe = await compose_probe(
                session,
                s,
                found,
                to.strip(),
                template=template,
                locale=locale,
                sessionmaker=sessionmaker,
            )
        # after the commit, which counted it in a transactional budget
        try:
            await probe.backend.deliver([probe.message])
        except (EmailDeliveryError, EmailConfigError) as exc:
            raise UserInputError(f"not sent: {exc}") from None
        return probe

    typer.echo(describe(run(with_database(s, work)), org))
