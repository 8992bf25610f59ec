"""`proca-server eci create`: the ECI org, its key, the campaign and a page per member state,
run as an operator runs it; and the ECI build's settings check."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.public import PrivateKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import ConfigError, Settings
from proca_server.contact.eci_rules import COUNTRIES
from proca_server.eci.service import create_eci
from proca_server.errors import BadArgument
from proca_server.kit import base64url
from proca_server.models import ActionPage, AuditLog, Campaign, Org, PublicKey
from proca_server.models.enums import ContactSchema
from tests.cli_helpers import cli, env
from tests.factories import make_campaign, make_org, make_page

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py

pytestmark = pytest.mark.slow  # the proca-server command in a subprocess

Snapshot = tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]


async def snapshot(session: AsyncSession) -> Snapshot:
    await session.rollback()  # a fresh snapshot
    orgs = await session.execute(select(Org.id, Org.name, Org.contact_schema).order_by(Org.id))
    keys = await session.execute(
        select(
            PublicKey.id, PublicKey.org_id, PublicKey.public, PublicKey.private, PublicKey.active
        ).order_by(PublicKey.id)
    )
    pages = await session.execute(
        select(ActionPage.id, ActionPage.name, ActionPage.locale, ActionPage.campaign_id).order_by(
            ActionPage.id
        )
    )
    return [tuple(r) for r in orgs], [tuple(r) for r in keys], [tuple(r) for r in pages]


async def test_create_sets_up_the_collection_and_again_changes_nothing(
    env: dict[str, str], session: AsyncSession
) -> None:
    rc, out, err = await cli("eci", "create", "acme", "eci-2027", "--title", "Save bees", env=env)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "org acme: created (contact schema eci)"
    assert lines[1].endswith(": generated, active")
    assert lines[3] == "campaign eci-2027: created"
    assert lines[4] == "page eci-2027/at (locale at): created"
    assert sum(line.startswith("page ") for line in lines) == 27
    private = lines[-1].removeprefix("private key: ")
    assert private != lines[-1]
    assert "shown only this once" in err

    org = (await session.execute(select(Org))).scalar_one()
    assert org.contact_schema == ContactSchema.ECI
    key = (await session.execute(select(PublicKey))).scalar_one()
    assert key.active and key.private is None and key.org_id == org.id
    assert bytes(PrivateKey(base64url.decode(private)).public_key) == key.public
    campaign = (await session.execute(select(Campaign))).scalar_one()
    assert (campaign.name, campaign.title, campaign.org_id) == ("eci-2027", "Save bees", org.id)
    assert campaign.contact_schema == ContactSchema.ECI
    pages = (await session.execute(select(ActionPage))).scalars().all()
    assert len(pages) == 27
    assert {page.locale for page in pages} == {country.lower() for country in COUNTRIES}
    for page in pages:
        assert page.name == f"eci-2027/{page.locale}"
        assert (page.campaign_id, page.org_id) == (campaign.id, org.id)
    audited = await session.scalars(select(AuditLog.resource).order_by(AuditLog.inserted_at))
    assert list(audited) == ["generateKey", "activateKey"]
    first = await snapshot(session)

    rc, out, err = await cli("eci", "create", "acme", "eci-2027", env=env)
    assert rc == 0, err
    assert "private key" not in out and "created" not in out
    assert out.count(": present") == 27 + 3  # the pages, the org, its key and the campaign
    assert await snapshot(session) == first


async def test_create_imports_the_given_public_key(
    env: dict[str, str], session: AsyncSession
) -> None:
    given = PrivateKey.generate().public_key
    rc, out, err = await cli(
        "eci", "create", "acme", "eci-2027", "--public-key", base64url.encode(bytes(given)), env=env
    )
    assert rc == 0, err
    assert "private key" not in out
    key = (await session.execute(select(PublicKey))).scalar_one()
    assert (key.public, key.private, key.active) == (bytes(given), None, True)
    first = await snapshot(session)
    rc, out, err = await cli(
        "eci", "create", "acme", "eci-2027", "--public-key", base64url.encode(bytes(given)), env=env
    )
    assert rc == 0, err
    assert await snapshot(session) == first

    # another key replaces it as the active one
    other = PrivateKey.generate().public_key
    rc, out, err = await cli(
        "eci", "create", "acme", "eci-2027", "--public-key", base64url.encode(bytes(other)), env=env
    )
    assert rc == 0, err
    assert ": imported, active" in out
    await session.rollback()
    active = await session.scalars(select(PublicKey.public).where(PublicKey.active.is_(True)))
    assert list(active) == [bytes(other)]


async def test_create_refuses_in_one_line_and_keeps_nothing(
    env: dict[str, str], session: AsyncSession
) -> None:
    before = await snapshot(session)
    # the org and its key are written before the campaign's name is refused: all rolled back
    rc, out, err = await cli("eci", "create", "acme", "c 1", env=env)
    assert rc == 1 and out == ""
    assert [line for line in err.splitlines() if line.startswith("error")] == [
        "error: campaign.name: has invalid format"
    ]
    assert "Traceback" not in err
    assert await snapshot(session) == before


@pytest.mark.parametrize(
    ("org", "campaign", "public_key", "message"),
    [
        ("basic-org", "c1", None, "org basic-org exists with contact schema basic, not eci"),
        (
            "instance",
            "c1",
            None,
            "instance is the instance org, whose private key the server holds: an ECI org "
            "must be another one",
        ),
        ("acme", "c1", "not-a-key", "key.public: Cannot decode public key using Base64"),
        ("acme", "c1", base64url.encode(b"short"), "key.public: must be 256 bits"),
        ("a cme", "c1", None, "org.name: has invalid format"),
    ],
)
async def test_what_does_not_fit_is_refused(
    session: AsyncSession, org: str, campaign: str, public_key: str | None, message: str
) -> None:
    await make_org(session, "basic-org")
    await session.commit()
    before = await snapshot(session)
    with pytest.raises(BadArgument) as refused:
        await create_eci(
            session, org, campaign, instance_org_name="instance", public_key=public_key
        )
    # the line `proca-server` prints after `error: `
    assert refused.value.display() == message
    assert await snapshot(session) == before


async def test_a_page_of_another_campaign_is_not_taken_over(session: AsyncSession) -> None:
    other = await make_org(session, "other", contact_schema=ContactSchema.ECI)
    taken = await make_campaign(session, other, "taken")
    await make_page(session, taken, other, "eci-x/fr")
    await session.commit()
    with pytest.raises(BadArgument, match=r"page eci-x/fr exists in another campaign or org"):
        await create_eci(session, "acme", "eci-x", instance_org_name="instance")
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(ActionPage)) == 1


def test_the_eci_build_needs_a_captcha() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(ENABLE_ECI="true").check()
    assert str(refused.value) == (
        "ENABLE_ECI requires a captcha: set HCAPTCHA_KEY or PROCAPTCHA_URL"
    )
    Settings(ENABLE_ECI="true", HCAPTCHA_KEY="k").check()
    Settings(ENABLE_ECI="true", PROCAPTCHA_URL="http://127.0.0.1:1/verify").check()
    Settings().check()


async def test_the_server_does_not_start_without_a_captcha(tmp_path: Path) -> None:
    rc, _, err = await cli(
        "serve",
        env={"ENABLE_ECI": "true", "PROCA_DATA_DIR": str(tmp_path), "DATABASE_URL": ""},
    )
    assert rc == 1
    assert err.strip() == (
        "error: ENABLE_ECI requires a captcha: set HCAPTCHA_KEY or PROCAPTCHA_URL"
    )
