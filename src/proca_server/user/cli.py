"""`proca-server user promote | demote | add | remove | reset-password | list`: the operator's
commands on users (registered on the `user` group next to `create` and `token`).

Memberships change by the API's rules, with an instance admin's rights: the org keeps an
owner. A password set here ends the user's sessions, API tokens and pending email links, as a
reset through the account pages does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth import passwords
from proca_server.auth.permissions import ADMIN, ROLES, is_admin, role_of
from proca_server.command import in_transaction, run, settings
from proca_server.errors import UserInputError
from proca_server.kit.table import format_table
from proca_server.models import User
from proca_server.org import service as orgs
from proca_server.org.cli import require_org
from proca_server.user import repository
from proca_server.user.service import set_instance_admin

Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The user's email address.")]
OrgName = Annotated[str, typer.Argument(metavar="ORG", help="The org's name.")]
ROLE_NAMES = ", ".join(ROLES)


async def require_user(session: AsyncSession, email: str) -> User:
    user = await repository.get_user_by_email(session, email)
    if user is None:
        raise UserInputError(f"no user with email {email}")
    return user


def _set_admin(email: str, admin: bool) -> bool:
    async def work(session: AsyncSession) -> bool:
        return await set_instance_admin(session, await require_user(session, email), admin)

    return run(in_transaction(settings(), work))


def promote(email: Email) -> None:
    """Make the user an instance admin (every instance permission)."""
    changed = _set_admin(email, True)
    typer.echo(f"{email} {'is now' if changed else 'was already'} an instance admin")


def demote(email: Email) -> None:
    """Take the user's instance admin permissions away; the last instance admin stays one."""
    changed = _set_admin(email, False)
    typer.echo(f"{email} {'is no longer' if changed else 'was not'} an instance admin")


def add(
    email: Email,
    org: OrgName,
    role: Annotated[
        str, typer.Option(metavar="ROLE", help=f"The member's role: one of {ROLE_NAMES}.")
    ],
) -> None:
    """Add the user to the org with the role, or give a member that role."""
    bits = ROLES.get(role)
    if bits is None:
        raise UserInputError(f"unknown role {role}: use one of {ROLE_NAMES}")

    async def work(session: AsyncSession) -> str | None:
        found = await require_org(session, org)
        user = await require_user(session, email)
        return await orgs.assign_role(
            session, found, user, bits, caller_perms=int(ADMIN), staffer=None
        )

    before = run(in_transaction(settings(), work))
    if before is None:
        typer.echo(f"{email} added to org {org} as {role}")
    elif before == role:
        typer.echo(f"{email} is {role} of org {org} (unchanged)")
    else:
        typer.echo(f"{email} is now {role} of org {org} (was {before})")


def remove(email: Email, org: OrgName) -> None:
    """Remove the user from the org; the org's last owner stays."""

    async def work(session: AsyncSession) -> None:
        found = await require_org(session, org)
        user = await require_user(session, email)
        await orgs.remove_member(session, found, user, caller_perms=int(ADMIN), staffer=None)

    run(in_transaction(settings(), work))
    typer.echo(f"{email} removed from org {org}")


def reset_password(
    email: Email,
    password: Annotated[
        str | None,
        typer.Option(
            help="The new password; a strong one is generated (and printed) when omitted."
        ),
    ] = None,
) -> None:
    """Set the user's password; their sessions, API tokens and email links end."""
    from proca_server.web.account_service import reset_password as set_password

    chosen = password if password is not None else passwords.generate_password()

    async def work(session: AsyncSession) -> None:
        await set_password(session, await require_user(session, email), chosen, chosen)

    run(in_transaction(settings(), work))
    typer.echo(f"password of {email} reset; their sessions and API tokens have ended")
    if password is None:
        typer.echo(f"password: {chosen}")


@dataclass(frozen=True)
class _Listed:
    email: str
    admin: bool
    orgs: list[tuple[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "admin": self.admin,
            "orgs": [{"org": org, "role": role} for org, role in self.orgs],
        }


def list_users(
    org: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only the members of this org.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object a line instead.")
    ] = False,
) -> None:
    """List the users: email, instance admin or not, and their orgs with their roles."""

    async def work(session: AsyncSession) -> list[_Listed]:
        org_id = (await require_org(session, org)).id if org is not None else None
        return [
            _Listed(
                entry.user.email,
                is_admin(entry.user.perms),
                [(name, role_of(perms)) for name, perms in entry.orgs],
            )
            for entry in await repository.list_users_with_orgs(session, org_id=org_id)
        ]

    users = run(in_transaction(settings(), work))
    if as_json:
        for user in users:
            typer.echo(json.dumps(user.as_dict(), separators=(",", ":")))
        return
    if not users:
        typer.echo("no users")
        return
    rows = [
        [u.email, "yes" if u.admin else "", ", ".join(f"{o} ({r})" for o, r in u.orgs)]
        for u in users
    ]
    for line in format_table(("email", "admin", "orgs"), rows):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add these commands to the `user` group."""
    app.command("promote")(promote)
    app.command("demote")(demote)
    app.command("add")(add)
    app.command("remove")(remove)
    app.command("reset-password")(reset_password)
    app.command("list")(list_users)
