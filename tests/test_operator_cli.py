"""The operator's commands (`keys`, `user promote|demote|add|remove|reset-password|list`,
`orgs list`), run through `proca-server`'s own entry point in this process, against the test
database; each test checks what the database holds afterwards."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from nacl.public import PrivateKey
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.auth import passwords
from proca_server.auth.authenticate import SESSION_CONTEXT
from proca_server.auth.permissions import ADMIN, ROLES
from proca_server.kit import base64url
from proca_server.models import (
    Action,
    AuditLog,
    Contact,
    Org,
    PublicKey,
    Staffer,
    Supporter,
    User,
    UserToken,
)
from proca_server.org.repository import org_counts
from proca_server.user.service import reset_api_token
from tests.cli_helpers import env, fresh, one_line_error, operator
from tests.factories import (
    PASSWORD,
    make_campaign,
    make_key,
    make_org,
    make_page,
    make_user,
)

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py


async def audit_entries(session: AsyncSession, org_id: int) -> list[tuple[str, str, str]]:
    rows = await session.scalars(
        select(AuditLog).where(AuditLog.org_id == org_id).order_by(AuditLog.inserted_at)
    )
    return [(e.actor_id, e.resource, e.resource_id) for e in rows]


# --- keys ------------------------------------------------------------------------------------


def _printed(out: str, label: str) -> str:
    [value] = [line.removeprefix(label) for line in out.splitlines() if line.startswith(label)]
    return value


async def test_keys_generate_prints_the_private_key_once_and_keeps_only_the_public_part(
    env: dict[str, str], session: AsyncSession
) -> None:
    bees = await make_org(session, "bees")
    await session.commit()

    rc, out, err = await operator("keys", "generate", "bees", "--name", "first", env=env)
    assert rc == 0, err
    private = base64url.decode(_printed(out, "private key: "))
    public = base64url.decode(_printed(out, "public key: "))
    assert bytes(PrivateKey(private).public_key) == public
    assert "shown only this once" in err and "keep this private key safe" in err

    await fresh(session)
    key = (await session.scalars(select(PublicKey).where(PublicKey.org_id == bees.id))).one()
    assert key.name == "first" and key.public == public
    assert key.private is None and not key.active and not key.expired
    assert await audit_entries(session, bees.id) == [("cli", "generateKey", str(key.id))]

    rc, out, _ = await operator("keys", "list", "bees", env=env)
    assert rc == 0
    assert base64url.encode(private) not in out
    [row] = out.splitlines()[2:]
    assert row.split()[:4] == [str(key.id), "first", "no", "no"]
    assert base64url.encode(public) in row


async def test_keys_generate_activate_list_and_import(
    env: dict[str, str], session: AsyncSession
) -> None:
    bees = await make_org(session, "bees")
    old, _ = await make_key(session, bees, active=True)
    await session.commit()

    rc, out, err = await operator("keys", "generate", "bees", "--activate", env=env)
    assert rc == 0, err
    assert "active: yes" in out
    await fresh(session)
    keys = {k.id: k for k in await session.scalars(select(PublicKey))}
    [new_id] = set(keys) - {old.id}
    assert keys[new_id].active and not keys[old.id].active
    assert keys[new_id].name.startswith("bees ")  # the org's name and the date

    rc, out, _ = await operator("keys", "list", "bees", env=env)
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()[2:]]
    # newest first, the active one said so
    assert [(r[0], r[2]) for r in rows] == [(str(new_id), "yes"), (str(old.id), "no")]

    rc, out, err = await operator("keys", "activate", "bees", str(old.id), env=env)
    assert rc == 0, err
    assert out == f"key {old.id} is now the active key of org bees\n"
    await fresh(session)
    active = await session.scalars(
        select(PublicKey.id).where(PublicKey.org_id == bees.id, PublicKey.active.is_(True))
    )
    assert active.all() == [old.id]

    made_elsewhere = PrivateKey.generate().public_key
    rc, out, err = await operator(
        "keys",
        "import",
        "--name",
        "offline",
        "--activate",
        "bees",
        base64url.encode(bytes(made_elsewhere)),
        env=env,
    )
    assert rc == 0, err
    await fresh(session)
    imported = (await session.scalars(select(PublicKey).where(PublicKey.name == "offline"))).one()
    assert imported.public == bytes(made_elsewhere) and imported.private is None
    assert imported.active
    assert await audit_entries(session, bees.id) == [
        ("cli", "generateKey", str(new_id)),
        ("cli", "activateKey", str(new_id)),
        ("cli", "activateKey", str(old.id)),
        ("cli", "addKey", str(imported.id)),
        ("cli", "activateKey", str(imported.id)),
    ]


def _key_starting_with(prefix: str) -> bytes:
    """A public key whose base64url form starts with `prefix` (its first 6 bits chosen)."""
    while True:
        public = bytes(PrivateKey.generate().public_key)
        if base64url.encode(public).startswith(prefix):
            return public


async def test_keys_import_takes_a_key_starting_with_a_dash_and_reads_stdin(
    env: dict[str, str], session: AsyncSession
) -> None:
    bees = await make_org(session, "bees")
    await session.commit()
    dash, double_dash, piped = _key_starting_with("-"), _key_starting_with("--"), b"\x01" * 32
    expected = {"piped": piped}
    for label, key in (("dash", dash), ("double", double_dash)):
        encoded = base64url.encode(key)
        # the key before or after the options, never needing "--"
        for order, args in enumerate((("bees", encoded, "--name"), ("--name", "bees", encoded))):
            name = f"{label} {order}"
            full = (*args, name) if args[-1] == "--name" else ("--name", name, *args[1:])
            rc, out, err = await operator("keys", "import", *full, env=env)
            assert rc == 0, err
            assert "imported for org bees" in out
            expected[name] = key
    rc, out, err = await operator(
        "keys",
        "import",
        "bees",
        "-",
        "--name",
        "piped",
        env=env,
        stdin=base64url.encode(piped) + "\n",
    )
    assert rc == 0, err
    await fresh(session)
    stored = {
        k.name: k.public
        for k in await session.scalars(select(PublicKey).where(PublicKey.org_id == bees.id))
    }
    assert stored == expected


async def test_the_instance_org_keeps_its_generated_private_key(
    env: dict[str, str], session: AsyncSession
) -> None:
    instance = await make_org(session, env["ORG_NAME"])
    await session.commit()
    rc, out, err = await operator("keys", "generate", instance.name, env=env)
    assert rc == 0, err
    assert "the server keeps this private key" in err
    await fresh(session)
    key = (await session.scalars(select(PublicKey))).one()
    assert key.private == base64url.decode(_printed(out, "private key: "))


async def test_key_mistakes_are_one_line_errors(env: dict[str, str], session: AsyncSession) -> None:
    bees = await make_org(session, "bees")
    wasps = await make_org(session, "wasps")
    theirs, _ = await make_key(session, wasps, active=False)
    expired, _ = await make_key(session, bees, active=False)
    expired.expired = True
    await session.commit()
    cases = [
        (("keys", "list", "nobody"), ["no org named nobody"]),
        (("keys", "generate", "nobody"), ["no org named nobody"]),
        (("keys", "activate", "bees", "999999"), ["org bees has no key 999999"]),
        (("keys", "activate", "bees", str(theirs.id)), [f"org bees has no key {theirs.id}"]),
        (("keys", "activate", "bees", str(expired.id)), ["expired"]),
        (("keys", "import", "bees", "not base64!"), ["public", "Base64"]),
        (("keys", "import", "bees", base64url.encode(b"short")), ["public", "256 bits"]),
        (("keys", "generate", "bees", "--name", " "), ["name", "blank"]),
    ]
    for args, words in cases:
        rc, _, err = await operator(*args, env=env)
        one_line_error(rc, err, *words)
    await fresh(session)
    # nothing changed
    assert await session.scalar(select(func.count()).select_from(PublicKey)) == 2
    assert await session.scalar(select(func.count()).where(PublicKey.active.is_(True))) == 0
    assert await session.scalar(select(func.count()).select_from(AuditLog)) == 0


# --- users -----------------------------------------------------------------------------------


LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


async def perms_of(session: AsyncSession, email: str) -> int:
    await fresh(session)
    return (await session.scalars(select(User.perms).where(User.email == email))).one()


async def test_promote_and_demote_keep_one_instance_admin(
    env: dict[str, str], session: AsyncSession
) -> None:
    await make_user(session, "boss@example.org", admin=True)
    await make_user(session, "ann@example.org")
    await session.commit()

    rc, out, err = await operator("user", "demote", "boss@example.org", env=env)
    one_line_error(rc, err, "last instance admin")
    assert "boss@example.org" not in err  # no address in an error the service writes
    assert await perms_of(session, "boss@example.org") == ADMIN

    rc, out, err = await operator("user", "promote", "ann@example.org", env=env)
    assert rc == 0, err
    assert out == "ann@example.org is now an instance admin\n"
    assert await perms_of(session, "ann@example.org") == ADMIN
    rc, out, _ = await operator("user", "promote", "ANN@example.org", env=env)
    assert out == "ANN@example.org was already an instance admin\n"

    async def changed_at(email: str) -> datetime:
        await fresh(session)
        return (await session.scalars(select(User.updated_at).where(User.email == email))).one()

    await session.execute(
        update(User).where(User.email == "ann@example.org").values(updated_at=LONG_AGO)
    )
    await session.commit()
    before = await changed_at("ann@example.org")
    assert before == LONG_AGO
    rc, out, err = await operator("user", "demote", "boss@example.org", env=env)
    assert rc == 0, err
    assert out == "boss@example.org is no longer an instance admin\n"
    assert await perms_of(session, "boss@example.org") == 0
    # the other admins were locked while counting, not changed
    assert await changed_at("ann@example.org") == before
    rc, _, err = await operator("user", "demote", "ann@example.org", env=env)
    one_line_error(rc, err, "last instance admin")
    assert await perms_of(session, "ann@example.org") == ADMIN

    rc, _, err = await operator("user", "promote", "nobody@example.org", env=env)
    one_line_error(rc, err, "no user with email nobody@example.org")


async def role_in(session: AsyncSession, org: Org, email: str) -> int | None:
    await fresh(session)
    found = await session.scalars(
        select(Staffer.perms)
        .join(User, User.id == Staffer.user_id)
        .where(Staffer.org_id == org.id, User.email == email)
    )
    return found.one_or_none()


async def test_add_change_and_remove_members_keep_an_owner(
    env: dict[str, str], session: AsyncSession
) -> None:
    bees = await make_org(session, "bees")
    await make_user(session, "ann@example.org")
    await make_user(session, "bob@example.org")
    await session.commit()

    rc, out, err = await operator(
        "user", "add", "ann@example.org", "bees", "--role", "owner", env=env
    )
    assert rc == 0, err
    assert out == "ann@example.org added to org bees as owner\n"
    assert await role_in(session, bees, "ann@example.org") == ROLES["owner"]

    # the only owner cannot be made something else, nor removed
    rc, _, err = await operator(
        "user", "add", "ann@example.org", "bees", "--role", "campaigner", env=env
    )
    one_line_error(rc, err, "last owner")
    rc, _, err = await operator("user", "remove", "ann@example.org", "bees", env=env)
    one_line_error(rc, err, "last owner")
    assert await role_in(session, bees, "ann@example.org") == ROLES["owner"]

    for role in ("translator", "coordinator", "owner"):
        rc, out, err = await operator(
            "user", "add", "bob@example.org", "bees", "--role", role, env=env
        )
        assert rc == 0, err
        assert await role_in(session, bees, "bob@example.org") == ROLES[role]
    assert out == "bob@example.org is now owner of org bees (was coordinator)\n"
    rc, out, _ = await operator(
        "user", "add", "bob@example.org", "bees", "--role", "owner", env=env
    )
    assert out == "bob@example.org is owner of org bees (unchanged)\n"

    rc, out, err = await operator(
        "user", "add", "ann@example.org", "bees", "--role", "campaigner", env=env
    )
    assert rc == 0, err
    assert await role_in(session, bees, "ann@example.org") == ROLES["campaigner"]
    rc, out, err = await operator("user", "remove", "ann@example.org", "bees", env=env)
    assert rc == 0, err
    assert out == "ann@example.org removed from org bees\n"
    assert await role_in(session, bees, "ann@example.org") is None
    assert await role_in(session, bees, "bob@example.org") == ROLES["owner"]


async def test_member_mistakes_are_one_line_errors(
    env: dict[str, str], session: AsyncSession
) -> None:
    await make_org(session, "bees")
    await make_user(session, "ann@example.org")
    await session.commit()
    cases = [
        (
            ("user", "add", "ann@example.org", "bees", "--role", "boss"),
            ["unknown role boss", "owner, campaigner, translator, coordinator"],
        ),
        (("user", "add", "ann@example.org", "nobody", "--role", "owner"), ["no org named"]),
        (("user", "add", "zed@example.org", "bees", "--role", "owner"), ["no user with email"]),
        (("user", "remove", "ann@example.org", "bees"), ["not a member"]),
        (("user", "remove", "ann@example.org", "nobody"), ["no org named nobody"]),
    ]
    for args, words in cases:
        rc, _, err = await operator(*args, env=env)
        one_line_error(rc, err, *words)
    await fresh(session)
    assert await session.scalar(select(func.count()).select_from(Staffer)) == 0


async def test_reset_password_sets_a_working_password_and_ends_sessions(
    env: dict[str, str], session: AsyncSession
) -> None:
    ann = await make_user(session, "ann@example.org")
    await reset_api_token(session, ann)
    session.add(UserToken(user_id=ann.id, token=b"s" * 32, context=SESSION_CONTEXT))
    other = await make_user(session, "bob@example.org")
    session.add(UserToken(user_id=other.id, token=b"t" * 32, context=SESSION_CONTEXT))
    await session.commit()

    rc, out, err = await operator("user", "reset-password", "ann@example.org", env=env)
    assert rc == 0, err
    generated = _printed(out, "password: ")
    assert passwords.password_problems(generated) == []

    async def hashed(email: str) -> str:
        await fresh(session)
        return (
            await session.scalars(select(User.hashed_password).where(User.email == email))
        ).one()

    assert (await hashed("ann@example.org")).startswith("$2")  # bcrypt
    assert passwords.verify_password(generated, await hashed("ann@example.org"))
    assert not passwords.verify_password(PASSWORD, await hashed("ann@example.org"))
    # ann's session and API token are gone; bob's session stays
    tokens = await session.execute(select(UserToken.user_id, UserToken.context))
    assert [tuple(row) for row in tokens.all()] == [(other.id, SESSION_CONTEXT)]

    chosen = "Another-Passw0rd"
    rc, out, err = await operator(
        "user", "reset-password", "ann@example.org", "--password", chosen, env=env
    )
    assert rc == 0, err
    assert "password:" not in out  # a chosen password is not printed back
    assert passwords.verify_password(chosen, await hashed("ann@example.org"))

    rc, _, err = await operator(
        "user", "reset-password", "ann@example.org", "--password", "short", env=env
    )
    one_line_error(rc, err, "password", "12 to 80")
    assert passwords.verify_password(chosen, await hashed("ann@example.org"))
    rc, _, err = await operator("user", "reset-password", "zed@example.org", env=env)
    one_line_error(rc, err, "no user with email zed@example.org")


async def test_user_list_shows_admins_and_roles_never_hashes(
    env: dict[str, str], session: AsyncSession
) -> None:
    bees = await make_org(session, "bees")
    wasps = await make_org(session, "wasps")
    ann = await make_user(session, "ann@example.org", org=bees, role="owner")
    session.add(Staffer(org_id=wasps.id, user_id=ann.id, perms=int(ROLES["translator"])))
    await make_user(session, "boss@example.org", admin=True)
    await make_user(session, "cid@example.org", org=wasps, role="coordinator")
    await session.commit()

    rc, out, err = await operator("user", "list", "--json", env=env)
    assert rc == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "email": "ann@example.org",
            "admin": False,
            "orgs": [{"org": "bees", "role": "owner"}, {"org": "wasps", "role": "translator"}],
        },
        {"email": "boss@example.org", "admin": True, "orgs": []},
        {
            "email": "cid@example.org",
            "admin": False,
            "orgs": [{"org": "wasps", "role": "coordinator"}],
        },
    ]
    assert "$2" not in out

    rc, out, err = await operator("user", "list", "--org", "wasps", env=env)
    assert rc == 0, err
    assert out.splitlines()[0].split() == ["email", "admin", "orgs"]
    assert [line.split()[0] for line in out.splitlines()[2:]] == [
        "ann@example.org",
        "cid@example.org",
    ]
    assert "bees (owner), wasps (translator)" in out
    assert "$2" not in out

    rc, _, err = await operator("user", "list", "--org", "nobody", env=env)
    one_line_error(rc, err, "no org named nobody")


# --- orgs ------------------------------------------------------------------------------------


async def _seed_counts(session: AsyncSession) -> None:
    """bees: 2 campaigns, 3 pages, 2 staff, 3 actions by 2 supporters, 2 contacts (one of a
    supporter on wasps' page); wasps: a page in bees' campaign, 1 action, 1 contact; ants:
    nothing."""
    bees = await make_org(session, "bees")
    wasps = await make_org(session, "wasps")
    await make_org(session, "ants")
    first = await make_campaign(session, bees)
    second = await make_campaign(session, bees)
    pages = [
        await make_page(session, first, bees),
        await make_page(session, first, bees),
        await make_page(session, second, bees),
    ]
    partner = await make_page(session, first, wasps)
    await make_user(session, org=bees, role="owner")
    await make_user(session, org=bees, role="campaigner")
    await make_user(session, org=wasps, role="owner")
    for n, page in enumerate([pages[0], pages[2], partner]):
        supporter = Supporter(
            fingerprint=bytes([n]) * 8, campaign_id=page.campaign_id, action_page_id=page.id
        )
        session.add(supporter)
        await session.flush()
        actions = 2 if n == 0 else 1
        for _ in range(actions):
            session.add(
                Action(
                    action_type="petition",
                    supporter_id=supporter.id,
                    campaign_id=page.campaign_id,
                    action_page_id=page.id,
                )
            )
        receivers = [bees.id] if page is not partner else [wasps.id, bees.id]
        if n == 1:
            receivers = []
        for org_id in receivers:
            session.add(Contact(supporter_id=supporter.id, org_id=org_id))
    await session.commit()


EXPECTED_COUNTS = [
    {"name": "ants", "campaigns": 0, "action_pages": 0, "staff": 0, "actions": 0,
     "supporters": 0, "contacts": 0},
    {"name": "bees", "campaigns": 2, "action_pages": 3, "staff": 2, "actions": 3,
     "supporters": 2, "contacts": 2},
    {"name": "wasps", "campaigns": 0, "action_pages": 1, "staff": 1, "actions": 1,
     "supporters": 1, "contacts": 1},
]  # fmt: skip


async def test_orgs_list_counts(env: dict[str, str], session: AsyncSession) -> None:
    await _seed_counts(session)

    rc, out, err = await operator("orgs", "list", "--json", env=env)
    assert rc == 0, err
    listed = [json.loads(line) for line in out.splitlines()]
    assert [{k: v for k, v in row.items() if k != "title"} for row in listed] == EXPECTED_COUNTS

    rc, out, err = await operator("orgs", "list", env=env)
    assert rc == 0, err
    header, _, *rows = out.splitlines()
    assert header.split() == [
        "org", "title", "campaigns", "pages", "staff", "actions", "supporters", "contacts"
    ]  # fmt: skip
    assert [row.split() for row in rows] == [
        [e["name"], e["name"].title(), *(str(v) for k, v in e.items() if k != "name")]
        for e in EXPECTED_COUNTS
    ]


async def test_org_counts_take_one_statement_whatever_the_number_of_orgs(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    await _seed_counts(session)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        first = await org_counts(session)
        for _ in range(5):
            await make_org(session)
        await session.flush()
        statements.clear()
        more = await org_counts(session)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(first) == 3 and len(more) == 8
    assert len(statements) == 1
    await session.rollback()


async def test_every_operator_command_has_help(env: dict[str, str]) -> None:
    commands = [
        ("keys",),
        ("keys", "list"),
        ("keys", "generate"),
        ("keys", "activate"),
        ("keys", "import"),
        ("user", "promote"),
        ("user", "demote"),
        ("user", "add"),
        ("user", "remove"),
        ("user", "reset-password"),
        ("user", "list"),
        ("orgs",),
        ("orgs", "list"),
        ("email",),
        ("email", "test"),
    ]
    for args in commands:
        rc, out, err = await operator(*args, "--help", env=env)
        assert rc == 0, (args, err)
        assert "Usage" in out, args
