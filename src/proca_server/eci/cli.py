"""`proca-server eci create ORG CAMPAIGN`: set up an ECI collection (eci/service.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.command import in_transaction, run, settings
from proca_server.eci.service import GENERATED, PAGE_LOCALES, EciSetup, create_eci
from proca_server.key.cli import PRIVATE_KEY_WARNING
from proca_server.kit import base64url
from proca_server.kit.progress import Progress

eci_app = typer.Typer(
    help="European citizens' initiatives (the ECI build, ENABLE_ECI).", no_args_is_help=True
)

_KEY_STATES = {
    "present": "present, active",
    "activated": "present, made active",
    "imported": "imported, active",
    "generated": "generated, active",
}


@eci_app.command("create")
def create(
    org: Annotated[
        str, typer.Argument(metavar="ORG", help="The ECI org's name (created if missing).")
    ],
    campaign: Annotated[
        str,
        typer.Argument(
            metavar="CAMPAIGN",
            help="The campaign's name (created if missing); its pages are CAMPAIGN/<cc>.",
        ),
    ],
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            metavar="KEY",
            help="The public part (base64url, 32 bytes) of the key pair the statements are "
            "sealed for, made where they will be read. Without it the org keeps its active "
            "key, or a pair is generated and its private key printed once.",
        ),
    ] = None,
    title: Annotated[
        str | None, typer.Option(help="The campaign's title (default: its name).")
    ] = None,
) -> None:
    """Create, or complete, an ECI org, campaign and pages.

    The org gets contact schema eci and an active key (public part only), the campaign one
    action page per EU member state, named CAMPAIGN/<cc> with the country code as locale.
    Running it again changes nothing."""
    s = settings()
    with Progress("action pages", len(PAGE_LOCALES)) as bar:

        async def work(session: AsyncSession) -> EciSetup:
            return await create_eci(
                session,
                org,
                campaign,
                instance_org_name=s.org_name,
                title=title,
                public_key=public_key,
                on_page=bar.advance,
            )

        setup = run(in_transaction(s, work))
    typer.echo(f"org {setup.org}: {setup.org_state} (contact schema eci)")
    typer.echo(f"key {setup.key_id}: {_KEY_STATES[setup.key]}")
    typer.echo(f"public key: {base64url.encode(setup.key_public)}")
    typer.echo(f"campaign {setup.campaign}: {setup.campaign_state}")
    for name, locale, state in setup.pages:
        typer.echo(f"page {name} (locale {locale}): {state}")
    if setup.key == GENERATED and setup.private_key is not None:
        typer.echo(f"private key: {base64url.encode(setup.private_key)}")
        typer.echo(PRIVATE_KEY_WARNING, err=True)
