"""`proca-server keys list | generate | activate | import`: an org's encryption keys.

A generated private key is printed once and kept only for the instance org (whose key signs
contacts): whoever decrypts the org's contacts must store it. Every change is in the audit
trail (actor `cli`), as the API's key mutations are. Running servers see a newly active key
within their key cache's lifetime."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.audit import service as audit
from proca_server.command import in_transaction, run, settings
from proca_server.errors import UserInputError
from proca_server.key import service as keys
from proca_server.kit import base64url
from proca_server.kit.table import format_table
from proca_server.kit.time import utcnow
from proca_server.models import Org, PublicKey
from proca_server.org.cli import require_org
from proca_server.org.repository import list_keys

keys_app = typer.Typer(help="An org's encryption keys.", no_args_is_help=True)

OrgName = Annotated[str, typer.Argument(metavar="ORG", help="The org's name.")]
Activate = Annotated[
    bool,
    typer.Option(
        "--activate", help="Make it the org's active key: new contacts are sealed for it."
    ),
]
COLUMNS = ("id", "name", "active", "expired", "public key", "inserted (UTC)")
PRIVATE_KEY_WARNING = (
    "warning: keep this private key safe now; it is shown only this once and the server does "
    "not keep it. Without it the contacts sealed for this key can never be read."
)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _row(key: PublicKey) -> list[object]:
    return [
        key.id,
        key.name,
        _yes(key.active),
        _yes(key.expired),
        base64url.encode(key.public),
        key.inserted_at.strftime("%Y-%m-%d %H:%M"),
    ]


async def _activate(session: AsyncSession, org: Org, key_id: int) -> None:
    await keys.activate_key(session, org, key_id)
    audit.record(session, actor=audit.CLI, action="activateKey", org_id=org.id, resource_id=key_id)


@keys_app.command("list")
def list_command(org: OrgName) -> None:
    """List the org's keys, newest first (public parts only)."""

    async def work(session: AsyncSession) -> list[list[object]]:
        found = await require_org(session, org)
        return [_row(key) for key in await list_keys(session, found.id)]

    rows = run(in_transaction(settings(), work))
    if not rows:
        typer.echo(f"org {org} has no keys")
        return
    for line in format_table(COLUMNS, rows):
        typer.echo(line)


@dataclass(frozen=True)
class _Generated:
    id: int
    name: str
    public: str
    private: str
    kept: bool
    active: bool


@keys_app.command("generate")
def generate_command(
    org: OrgName,
    name: Annotated[
        str | None, typer.Option(help="The key's name (default: the org's name and the date).")
    ] = None,
    activate: Activate = False,
) -> None:
    """Generate a key pair for the org and print its private key, once."""
    s = settings()

    async def work(session: AsyncSession) -> _Generated:
        found = await require_org(session, org)
        key_name = name if name is not None else f"{found.name} {utcnow().date().isoformat()}"
        kept = keys.keeps_private_part(found, s.org_name)
        key, private = await keys.generate_key(session, found, key_name, keep_private=kept)
        audit.record(
            session, actor=audit.CLI, action="generateKey", org_id=found.id, resource_id=key.id
        )
        if activate:
            await _activate(session, found, key.id)
        return _Generated(
            key.id,
            key.name,
            base64url.encode(key.public),
            base64url.encode(private),
            kept,
            key.active,
        )

    made = run(in_transaction(s, work))
    typer.echo(f"key {made.id} ({made.name}) generated for org {org}")
    typer.echo(f"active: {_yes(made.active)}")
    typer.echo(f"public key: {made.public}")
    typer.echo(f"private key: {made.private}")
    if made.kept:
        typer.echo(
            "the server keeps this private key: it is the instance org's, which signs contacts",
            err=True,
        )
    else:
        typer.echo(PRIVATE_KEY_WARNING, err=True)


@keys_app.command("activate")
def activate_command(
    org: OrgName,
    key_id: Annotated[int, typer.Argument(metavar="KEY_ID", help="The key's id (keys list).")],
) -> None:
    """Make the key the org's active key (the others become inactive): new contacts are
    sealed for it."""

    async def work(session: AsyncSession) -> None:
        found = await require_org(session, org)
        if not await list_keys(session, found.id, id=key_id):
            raise UserInputError(f"org {org} has no key {key_id}")
        await _activate(session, found, key_id)

    run(in_transaction(settings(), work))
    typer.echo(f"key {key_id} is now the active key of org {org}")


# A base64url key may start with "-" or "--": taken as the argument, not as an unknown option.
@keys_app.command("import", context_settings={"ignore_unknown_options": True})
def import_command(
    org: OrgName,
    public_key: Annotated[
        str,
        typer.Argument(
            metavar="PUBLIC_KEY",
            help='The public part (base64url, 32 bytes) of a key pair; "-" reads it from stdin.',
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="The key's name (default: the org's name and the date).")
    ] = None,
    activate: Activate = False,
) -> None:
    """Add a public key made elsewhere (its private part stays with the org)."""
    if public_key == "-":
        public_key = sys.stdin.readline()

    async def work(session: AsyncSession) -> tuple[int, bool]:
        found = await require_org(session, org)
        key_name = name if name is not None else f"{found.name} {utcnow().date().isoformat()}"
        key = await keys.add_key(session, found, key_name, public_key.strip())
        audit.record(session, actor=audit.CLI, action="addKey", org_id=found.id, resource_id=key.id)
        if activate:
            await _activate(session, found, key.id)
        return key.id, key.active

    key_id, active = run(in_transaction(settings(), work))
    typer.echo(f"key {key_id} imported for org {org}, active: {_yes(active)}")
