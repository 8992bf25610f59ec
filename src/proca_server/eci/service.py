"""Setting up an ECI collection: the org (contact schema `eci`), its active key (the public
part only: the statements are read where the private part is kept, never on the server), the
campaign and one action page per EU member state, `CAMPAIGN/<cc>` with the country code as
locale. Each step takes what already exists and completes it, so running it again changes
nothing. Something that exists but does not fit (an org with another contact schema, a page
of that name in another campaign) is refused, and the caller's transaction then keeps nothing
of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action_page import service as pages
from proca_server.audit import service as audit
from proca_server.campaign import service as campaigns
from proca_server.contact.eci_rules import COUNTRIES
from proca_server.errors import BadArgument
from proca_server.key import service as keys
from proca_server.kit import base64url
from proca_server.kit.time import utcnow
from proca_server.models import Campaign, Org, PublicKey
from proca_server.models.enums import ContactSchema
from proca_server.org import service as orgs
from proca_server.org.repository import list_keys

# the pages' locales, one per member state
PAGE_LOCALES: tuple[str, ...] = tuple(country.lower() for country in COUNTRIES)

CREATED = "created"
PRESENT = "present"
UPDATED = "updated"
IMPORTED = "imported"
GENERATED = "generated"
ACTIVATED = "activated"


@dataclass
class EciSetup:
    """What `create_eci` found or did, step by step (CREATED, PRESENT, ...)."""

    org: str
    campaign: str
    key_id: int = 0
    key_public: bytes = b""
    key: str = PRESENT
    # a generated key pair's private part: to hand over once, the server does not keep it
    private_key: bytes | None = None
    org_state: str = PRESENT
    campaign_state: str = PRESENT
    # (page name, locale, state), in PAGE_LOCALES order
    pages: list[tuple[str, str, str]] = field(default_factory=list)


@contextmanager
def _about(*where: str) -> Iterator[None]:
    """Name the entity in the errors of the services below (`campaign.name: ...`)."""
    try:
        yield
    except BadArgument as exc:
        exc.field = [*where, *exc.field]
        raise


async def create_eci(
    session: AsyncSession,
    org_name: str,
    campaign_name: str,
    *,
    instance_org_name: str,
    title: str | None = None,
    public_key: str | None = None,
    actor: str = audit.CLI,
    on_page: Callable[[], None] | None = None,
) -> EciSetup:
    """Create or complete the ECI org, key, campaign and pages; `on_page` is called after
    each page. Nothing is committed here."""
    if org_name == instance_org_name:
        raise BadArgument(
            f"{org_name} is the instance org, whose private key the server holds: an ECI org "
            "must be another one"
        )
    setup = EciSetup(org=org_name, campaign=campaign_name)
    org = await _org(session, org_name, instance_org_name, setup)
    key = await _key(session, org, public_key, actor, setup)
    setup.key_id, setup.key_public = key.id, key.public
    campaign = await _campaign(session, org, campaign_name, title, setup)
    for locale in PAGE_LOCALES:
        name = f"{campaign.name}/{locale}"
        setup.pages.append((name, locale, await _page(session, org, campaign, name, locale)))
        if on_page is not None:
            on_page()
    return setup


async def _org(session: AsyncSession, name: str, instance_org_name: str, setup: EciSetup) -> Org:
    org = await orgs.get_org_by_name(session, name)
    if org is None:
        with _about("org"):
            org = await orgs.add_org(
                session,
                None,
                {"name": name, "title": name, "contact_schema": ContactSchema.ECI},
                instance_org_name,
            )
        setup.org_state = CREATED
    elif org.contact_schema != ContactSchema.ECI:
        raise BadArgument(
            f"org {name} exists with contact schema {org.contact_schema.name.lower()}, not eci"
        )
    return org


async def _key(
    session: AsyncSession, org: Org, public_key: str | None, actor: str, setup: EciSetup
) -> PublicKey:
    """The org's active key: the given public key (imported unless the org has it), else the
    active key it has, else a new pair whose private part is handed back once."""
    name = f"{org.name} {utcnow().date().isoformat()}"
    if public_key is None:
        active = await orgs.get_active_key(session, org.id)
        if active is not None:
            return active
        key, private = await keys.generate_key(session, org, name, keep_private=False)
        audit.record(session, actor=actor, action="generateKey", org_id=org.id, resource_id=key.id)
        setup.key, setup.private_key = GENERATED, private
    else:
        public_key = public_key.strip()
        try:
            raw: bytes | None = base64url.decode(public_key)
        except ValueError:
            raw = None  # add_key says what is wrong with it
        held = await list_keys(session, org.id, public=raw) if raw is not None else []
        if held:
            key = held[0]
        else:
            with _about("key"):
                key = await keys.add_key(session, org, name, public_key)
            audit.record(session, actor=actor, action="addKey", org_id=org.id, resource_id=key.id)
            setup.key = IMPORTED
    if not key.active:
        await keys.activate_key(session, org, key.id)
        audit.record(session, actor=actor, action="activateKey", org_id=org.id, resource_id=key.id)
        if setup.key == PRESENT:
            setup.key = ACTIVATED
    return key


async def _campaign(
    session: AsyncSession, org: Org, name: str, title: str | None, setup: EciSetup
) -> Campaign:
    campaign = await campaigns.get_campaign_by_name(session, name)
    if campaign is None:
        with _about("campaign"):
            campaign = await campaigns.add_campaign(
                session, org, {"name": name, "title": title or name}
            )
        setup.campaign_state = CREATED
        return campaign
    if campaign.org_id != org.id:
        raise BadArgument(f"campaign {name} exists and belongs to another org")
    if campaign.contact_schema != ContactSchema.ECI:
        raise BadArgument(
            f"campaign {name} exists with contact schema "
            f"{campaign.contact_schema.name.lower()}, not eci"
        )
    if title and campaign.title != title:
        with _about("campaign"):
            await campaigns.update_campaign(session, campaign, {"title": title})
        setup.campaign_state = UPDATED
    return campaign


async def _page(session: AsyncSession, org: Org, campaign: Campaign, name: str, locale: str) -> str:
    page = await pages.get_page_by_name(session, name)
    if page is not None and (page.campaign_id != campaign.id or page.org_id != org.id):
        raise BadArgument(f"page {name} exists in another campaign or org")
    with _about("page", locale):
        if page is None:
            await pages.add_action_page(session, org, campaign, {"name": name, "locale": locale})
            return CREATED
        if page.locale != locale:
            await pages.update_action_page(session, page, {"locale": locale})
            return UPDATED
    return PRESENT
