"""`proca-server export` (docs/export.md, "From the command line"): signatures made through the
widget API, sealed to a key made by the key service, processed as a worker does, then
exported and opened with the org's private key."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.public import Box, PrivateKey
from nacl.public import PublicKey as NaclPublicKey
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from proca_server.action.export_cli import ExportResult, write_export
from proca_server.action.export_file import ExportRequest
from proca_server.action.export_writer import Format
from proca_server.cli import app
from proca_server.contact.keyrings import keyring_for
from proca_server.errors import UserInputError
from proca_server.key.service import activate_key, generate_key
from proca_server.kit import base64url
from proca_server.models import Action, AuditLog, Org, PublicKey
from tests.cli_helpers import cli, env
from tests.processing.helpers import Site, action_ids, make_site, process, sign

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py
# the command runs in a subprocess
pytestmark = pytest.mark.slow


async def new_key(session: AsyncSession, site: Site) -> tuple[int, bytes]:
    """A key pair made by the key service and activated, as generateKey/activateKey do."""
    org = await session.get(Org, site.org_id)
    assert org is not None
    key, private = await generate_key(session, org, "export", keep_private=False)
    await activate_key(session, org, key.id)
    key_id, org_id = key.id, org.id
    await session.commit()
    # as activateKey does after its commit: the app's key cache would seal to the old key
    # for a few seconds more
    keyring_for("instance").invalidate(org_id)
    return key_id, private


async def export(
    sessionmaker: async_sessionmaker[AsyncSession],
    org: str,
    fmt: Format = "csv",
    *,
    keys: dict[str, bytes] | None = None,
    batch: int = 5000,
    **options: Any,
) -> tuple[str, ExportResult]:
    out = io.StringIO()
    request = ExportRequest(org=org, private_keys=keys or {}, **options)
    result = await write_export(sessionmaker, request, fmt, out, batch=batch, progress=False)
    return out.getvalue(), result


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


CONTACT = {
    "firstName": "Zoë",
    "lastName": "O'Neil",
    "email": "Zoe@Example.org",
    "phone": "+33 1 23 45 67",
    "address": {
        "country": "fr",
        "postcode": "75001",
        "locality": "Paris",
        "street": "Rue de Rivoli",
        "streetNumber": "1",
    },
}


async def signed_site(client: httpx.AsyncClient, session: AsyncSession) -> tuple[Site, bytes]:
    """An org with a key from the key service; Zoë and Ann signed, both processed."""
    site = await make_site(session, encrypted=False)
    _, private = await new_key(session, site)
    await sign(client, site.page_id, "zoe@example.org", contact=CONTACT)
    await sign(client, site.page_id, "ann@example.org")
    await process(session, await action_ids(session))
    return site, private


async def test_an_encrypted_export_decrypts_to_the_values_signed(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site, private = await signed_site(client, session)
    sealed = (await session.execute(select(Action.id).order_by(Action.id))).scalars().all()

    text, result = await export(sessionmaker, site.org_name, keys={"org.key": private})
    assert (result.count, result.by_status) == (2, {"decrypted": 2})
    zoe, ann = rows(text)
    assert int(zoe["actionId"]) == sealed[0]
    assert {k: zoe[k] for k in ("firstName", "lastName", "email", "country", "postcode")} == {
        "firstName": "Zoë",
        "lastName": "O'Neil",
        "email": "zoe@example.org",
        "country": "FR",
        "postcode": "75001",
    }
    # the phone starts with "+": a spreadsheet would take it for a formula
    assert zoe["phone"] == "'+33 1 23 45 67"
    assert (zoe["address.locality"], zoe["address.street"], zoe["address.streetNumber"]) == (
        "Paris",
        "Rue de Rivoli",
        "1",
    )
    assert zoe["area"] == "FR" and zoe["contactOther"] == ""
    assert (zoe["actionType"], zoe["campaign"], zoe["actionPage"]) == (
        "petition",
        site.campaign_name,
        site.page_name,
    )
    assert (zoe["optIn"], zoe["withConsent"], zoe["emailStatus"]) == ("true", "true", "NONE")
    assert (zoe["tracking.source"], zoe["tracking.medium"], zoe["tracking.campaign"]) == (
        "newsletter",
        "email",
        "spring",
    )
    assert zoe["tracking.location"] == "https://campaign.example.org/sign"
    assert zoe["field:comment"] == "hi"
    assert (zoe["contactStatus"], zoe["payload"], zoe["nonce"]) == ("decrypted", "", "")
    assert (ann["firstName"], ann["email"], ann["phone"]) == ("Ann", "ann@example.org", "")
    created = datetime.strptime(zoe["createdAt"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=5)

    text, _ = await export(sessionmaker, site.org_name, "jsonl", keys={"org.key": private})
    first, second = lines(text)
    assert first["contact"] == {
        "firstName": "Zoë",
        "lastName": "O'Neil",
        "email": "zoe@example.org",
        "phone": "+33 1 23 45 67",
        "country": "FR",
        "postcode": "75001",
        "address": {"locality": "Paris", "street": "Rue de Rivoli", "streetNumber": "1"},
        "area": "FR",
    }
    assert first["contactStatus"] == "decrypted" and first["sealed"] is None
    assert first["customFields"] == {"comment": "hi"}
    assert first["campaign"] == {"id": site.campaign_id, "name": site.campaign_name}
    assert first["privacy"]["optIn"] is True and first["tracking"]["medium"] == "email"
    assert first["createdAt"] == created.strftime("%Y-%m-%dT%H:%M:%S")
    assert second["contact"]["email"] == "ann@example.org"


async def test_without_the_key_the_sealed_contact_is_in_its_columns(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site, private = await signed_site(client, session)
    key = (
        await session.execute(select(PublicKey).where(PublicKey.org_id == site.org_id))
    ).scalar_one()
    text, result = await export(sessionmaker, site.org_name)
    assert result.by_status == {f"sealed to key {key.id}": 2}
    zoe = rows(text)[0]
    assert zoe["firstName"] == zoe["email"] == ""
    assert (zoe["contactStatus"], int(zoe["publicKeyId"])) == (f"sealed to key {key.id}", key.id)
    # the columns carry what opens it (a leading "'" is the formula guard, "-" may start one)
    box = Box(PrivateKey(private), NaclPublicKey(site.sign_public))
    clear = box.decrypt(
        base64url.decode(zoe["payload"].removeprefix("'")),
        base64url.decode(zoe["nonce"].removeprefix("'")),
    )
    assert json.loads(clear)["email"] == "zoe@example.org"


async def test_contacts_sealed_to_another_key_are_named_not_blank(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site, old_private = await signed_site(client, session)
    old = (
        await session.execute(select(PublicKey.id).where(PublicKey.org_id == site.org_id))
    ).scalar_one()
    new, new_private = await new_key(session, site)
    await sign(client, site.page_id, "cat@example.org")
    await process(session, (await action_ids(session))[-1:])

    text, result = await export(sessionmaker, site.org_name, keys={"new.key": new_private})
    assert result.by_status == {"decrypted": 1, f"sealed to key {old}": 2}
    statuses = [(r["contactStatus"], r["email"], bool(r["payload"])) for r in rows(text)]
    assert statuses == [
        (f"sealed to key {old}", "", True),
        (f"sealed to key {old}", "", True),
        ("decrypted", "cat@example.org", False),
    ]
    # both keys: every contact opens
    both = {"old.key": old_private, "new.key": new_private}
    _, result = await export(sessionmaker, site.org_name, keys=both)
    assert result.by_status == {"decrypted": 3}
    assert new != old


async def test_contacts_stored_in_clear_are_exported_without_a_key(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site = await make_site(session, encrypted=False)
    await sign(client, site.page_id, "bob@example.org")
    await process(session, await action_ids(session))
    text, result = await export(sessionmaker, site.org_name)
    assert result.by_status == {"clear": 1}
    [bob] = rows(text)
    assert (bob["email"], bob["contactStatus"], bob["publicKeyId"]) == (
        "bob@example.org",
        "clear",
        "",
    )


async def test_filters_are_those_of_the_actions_query(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site = await make_site(session, encrypted=False)
    other = await make_site(session, encrypted=False, lead=site)  # a partner page, same campaign
    elsewhere = await make_site(session, encrypted=False)
    await sign(client, site.page_id, "a@example.org")
    await sign(client, site.page_id, "out@example.org", privacy={"optIn": False})
    await sign(client, other.page_id, "b@example.org", privacy={"optIn": True, "leadOptIn": True})
    await sign(client, site.page_id, "t@example.org")
    await sign(client, site.page_id, "old@example.org")
    ids = await action_ids(session)
    a, out, b, t, old = ids
    await process(session, ids)
    await sign(client, site.page_id, "late@example.org")  # not processed: never exported
    await session.execute(update(Action).where(Action.id == t).values(testing=True))
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    await session.execute(update(Action).where(Action.id == old).values(inserted_at=long_ago))
    await session.commit()

    async def exported(**options: Any) -> list[int]:
        text, _ = await export(sessionmaker, site.org_name, **options)
        return [int(r["actionId"]) for r in rows(text)]

    assert await exported() == [a, b, old]
    assert await exported(all_consents=True) == [a, out, b, old]
    assert await exported(include_testing=True) == [a, b, t, old]
    assert await exported(start=b) == [b, old]
    assert await exported(since=datetime(2024, 1, 1, tzinfo=UTC)) == [a, b]
    assert await exported(campaign=site.campaign_name) == [a, b, old]
    assert await exported(campaign=elsewhere.campaign_name) == []
    # small batches page through the same actions
    text, result = await export(sessionmaker, site.org_name, batch=1, all_consents=True)
    assert [int(r["actionId"]) for r in rows(text)] == [a, out, b, old] and result.count == 4


async def test_custom_fields_are_columns_and_formulas_are_defused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site = await make_site(session, encrypted=False)
    fields = {"comment": '=HYPERLINK("http://x")', "size": 42, "tags": ["a", "b"], "tab": "\tx"}
    await sign(
        client,
        site.page_id,
        "a@example.org",
        action={"actionType": "petition", "customFields": json.dumps(fields)},
        tracking={"source": "@home", "medium": "-1+1", "campaign": "x", "content": "+c"},
    )
    await sign(
        client,
        site.page_id,
        "b@example.org",
        action={"actionType": "survey", "customFields": json.dumps({"answer": "yes"})},
    )
    await process(session, await action_ids(session))
    text, _ = await export(sessionmaker, site.org_name)
    header = text.splitlines()[0].split(",")
    assert [h for h in header if h.startswith("field:")] == [
        "field:answer",
        "field:comment",
        "field:size",
        "field:tab",
        "field:tags",
    ]
    first, second = rows(text)
    assert first["field:comment"] == '\'=HYPERLINK("http://x")'
    assert (first["field:size"], first["field:tags"], first["field:answer"]) == (
        "42",
        '["a","b"]',
        "",
    )
    assert (first["tracking.source"], first["tracking.medium"]) == ("'@home", "'-1+1")
    assert (first["tracking.content"], first["field:tab"]) == ("'+c", "'\tx")
    assert (second["actionType"], second["field:answer"], second["field:comment"]) == (
        "survey",
        "yes",
        "",
    )
    # no cell of the file starts a formula
    for row in csv.reader(io.StringIO(text)):
        assert not [cell for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    # JSON lines keep the values as they are
    text, _ = await export(sessionmaker, site.org_name, "jsonl")
    assert lines(text)[0]["customFields"] == fields


async def test_wrong_key_unknown_org_and_campaign_are_one_line_errors(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site, _ = await signed_site(client, session)
    key = (
        await session.execute(select(PublicKey.id).where(PublicKey.org_id == site.org_id))
    ).scalar_one()
    stranger = bytes(PrivateKey.generate())
    with pytest.raises(UserInputError) as wrong:
        await export(sessionmaker, site.org_name, keys={"stranger.key": stranger})
    assert str(wrong.value) == (
        f"the private key in stranger.key is not one of org {site.org_name}'s keys "
        f"(its active key is {key})"
    )
    with pytest.raises(UserInputError, match=r"^no org named nobody$"):
        await export(sessionmaker, "nobody")
    with pytest.raises(UserInputError, match=r"^no campaign named nothing$"):
        await export(sessionmaker, site.org_name, campaign="nothing")
    # nothing read, nothing audited
    await session.rollback()
    assert (await session.execute(select(AuditLog))).scalars().all() == []


async def test_each_export_is_audited_without_personal_data(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site, private = await signed_site(client, session)
    await export(sessionmaker, site.org_name, keys={"k": private}, campaign=site.campaign_name)
    await session.rollback()
    [entry] = (await session.execute(select(AuditLog))).scalars().all()
    assert (entry.actor_id, entry.resource, entry.org_id) == ("cli", "export", site.org_id)
    assert entry.changeset == {
        "campaignName": site.campaign_name,
        "onlyOptIn": True,
        "includeTesting": False,
        "decrypted": True,
        "format": "csv",
        "complete": True,
        "count": 2,
    }


class FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        if len(self.getvalue()) > 0:  # the header went through
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(text)


async def test_a_failed_write_is_one_line_and_audited_as_incomplete(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    site, private = await signed_site(client, session)
    request = ExportRequest(org=site.org_name, private_keys={"k": private})
    with pytest.raises(UserInputError) as failed:
        await write_export(sessionmaker, request, "csv", FullDisk(), progress=False)
    assert str(failed.value) == "cannot write the export: No space left on device"
    await session.rollback()
    [entry] = (await session.execute(select(AuditLog))).scalars().all()
    assert (entry.resource, entry.changeset["complete"]) == ("export", False)


async def test_the_command_writes_a_private_file_and_plain_progress(
    client: httpx.AsyncClient,
    session: AsyncSession,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    site, private = await signed_site(client, session)
    key_file = tmp_path / "org.key"
    key_file.write_text(base64url.encode(private) + "\n")
    target = tmp_path / "out.csv"

    rc, out, err = await cli(
        "export", site.org_name, "--key", str(key_file), "-o", str(target), env=env
    )
    assert rc == 0, err
    assert out == ""
    # off a terminal, the progress is a plain line on stderr, then the summary
    assert err.splitlines() == [
        "actions: 2 of 2",
        f"exported 2 actions of {site.org_name} to {target} (contacts: 2 decrypted)",
    ]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [r["email"] for r in rows(target.read_text(encoding="utf-8"))] == [
        "zoe@example.org",
        "ann@example.org",
    ]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]

    rc, out, err = await cli(
        "export", site.org_name, "--format", "jsonl", "--key", str(key_file), env=env
    )
    assert rc == 0, err
    assert [x["contact"]["firstName"] for x in lines(out)] == ["Zoë", "Ann"]


async def test_command_errors_are_one_line(
    client: httpx.AsyncClient, session: AsyncSession, env: dict[str, str], tmp_path: Path
) -> None:
    site = await make_site(session, encrypted=False)
    key_id, _ = await new_key(session, site)
    stranger = tmp_path / "stranger.key"
    stranger.write_text(base64url.encode(bytes(PrivateKey.generate())))
    for args, message in (
        (["nobody"], "no org named nobody"),
        ([site.org_name, "--campaign", "nothing"], "no campaign named nothing"),
        (
            [site.org_name, "--key", str(stranger)],
            f"the private key in {stranger} is not one of org {site.org_name}'s keys "
            f"(its active key is {key_id})",
        ),
    ):
        rc, out, err = await cli("export", *args, env=env)
        assert (rc, out, err) == (1, "", f"error: {message}\n"), args


def test_input_errors_come_before_the_database(tmp_path: Path) -> None:
    """Checked before any database is opened (none is configured here)."""
    private = base64url.encode(bytes(PrivateKey.generate()))
    garbage, missing = tmp_path / "garbage.key", tmp_path / "missing.key"
    garbage.write_text("not a key " + private)
    runner = CliRunner()
    for args, message in (
        (["--key", str(garbage)], f"{garbage} does not hold a private key"),
        (["--key", str(missing)], f"cannot read the key file {missing}: No such file"),
        (["--format", "xlsx"], "--format must be one of csv, jsonl"),
        (["--since", "2024-01-01", "--start", "3"], "give --since or --start, not both"),
        (["--since", "yesterday"], "--since must be a date"),
    ):
        result = runner.invoke(app, ["export", "acme", *args])
        assert isinstance(result.exception, UserInputError), (args, result.output)
        assert str(result.exception).startswith(message), args
        assert private not in str(result.exception)
