"""Campaigns: creation, upsert with pages, settings (MTT included), deletion (refused while
partners' pages remain)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action_page import repository as page_rows
from proca_server.action_page import service as pages
from proca_server.campaign import repository

# also looked up by name from other slices through this module
from proca_server.campaign.repository import get_campaign_by_name as get_campaign_by_name
from proca_server.email import readiness
from proca_server.email.directory import check_template_name
from proca_server.errors import BadArgument
from proca_server.models import ActionPage, Campaign, Mtt, Org
from proca_server.models.enums import CampaignStatus, ContactSchema
from proca_server.target import repository as targets

NAME_RE = re.compile(r"^[\w-]+$")
MAX_EXTERNAL_ID = 2**31 - 1
MTT_FIELDS = (
    "start_at",
    "end_at",
    "message_template",
    "test_email",
    "cc_contacts",
    "cc_sender",
    "drip_delivery",
)


async def _check_name_free(session: AsyncSession, name: str, campaign_id: int | None) -> None:
    if not NAME_RE.match(name):
        raise BadArgument("has invalid format", field="name")
    other = await get_campaign_by_name(session, name)
    if other is not None and other.id != campaign_id:
        raise BadArgument("has already been taken", field="name")


async def _apply(session: AsyncSession, campaign: Campaign, attrs: dict[str, Any]) -> None:
    if attrs.get("name") is not None and attrs["name"] != campaign.name:
        await _check_name_free(session, attrs["name"], campaign.id)
        campaign.name = attrs["name"]
    if "title" in attrs and attrs["title"] is not None:
        if not attrs["title"]:
            raise BadArgument("can't be blank", field="title")
        campaign.title = attrs["title"]
    if attrs.get("external_id") is not None:
        external_id = attrs["external_id"]
        if not 0 <= external_id <= MAX_EXTERNAL_ID:
            raise BadArgument(f"must be between 0 and {MAX_EXTERNAL_ID}", field="externalId")
        campaign.external_id = external_id
    if attrs.get("contact_schema") is not None:
        campaign.contact_schema = ContactSchema(attrs["contact_schema"])
    if attrs.get("status") is not None:
        campaign.status = CampaignStatus(attrs["status"])
    if attrs.get("config") is not None:
        campaign.config = attrs["config"]
    if attrs.get("supporter_confirm_template") and campaign.org_id is not None:
        org = await session.get(Org, campaign.org_id)
        if org is not None:
            await check_template_name(
                session, org, attrs["supporter_confirm_template"], "supporterConfirmTemplate"
            )
    for key in ("supporter_confirm", "supporter_confirm_template", "action_confirm"):
        if key in attrs:
            setattr(campaign, key, attrs[key])
    if "start" in attrs:
        campaign.start_date = attrs["start"]
    if "end" in attrs:
        campaign.end_date = attrs["end"]
    start: date | None = campaign.start_date
    end: date | None = campaign.end_date
    if start is not None and end is not None and not start < end:
        raise BadArgument("must be after start", field="end")


async def _check_email_settings(
    session: AsyncSession, campaign: Campaign, attrs: dict[str, Any]
) -> None:
    """Refuse `supporterConfirm` set to true while the confirm emails of the campaign's pages
    could not go out (email/readiness.py); log it when a changed template breaks them."""
    if attrs.get("supporter_confirm") is True:
        await session.flush()
        gap = await readiness.supporter_confirm_gap(session, campaign=campaign)
        if gap is not None:
            raise BadArgument(gap, field="supporterConfirm")
    elif "supporter_confirm_template" in attrs and campaign.supporter_confirm is not False:
        await session.flush()
        for page, org in await page_rows.list_pages_with_orgs(session, campaign.id):
            await readiness.warn_page_gaps(session, org, page)


async def add_campaign(
    session: AsyncSession, org: Org, attrs: dict[str, Any], *, check: bool = True
) -> Campaign:
    name = attrs.get("name")
    if not name:
        raise BadArgument("can't be blank", field="name")
    if not attrs.get("title"):
        raise BadArgument("can't be blank", field="title")
    await _check_name_free(session, name, None)
    if attrs.get("external_id") is not None:
        await _check_external_id_free(session, org.id, attrs["external_id"], None)
    campaign = Campaign(
        name=name, title=attrs["title"], org_id=org.id, contact_schema=org.contact_schema
    )
    await _apply(session, campaign, attrs)
    session.add(campaign)
    await session.flush()
    if attrs.get("mtt") is not None:
        await set_mtt(session, campaign, attrs["mtt"])
    if check:
        await _check_email_settings(session, campaign, attrs)
    return campaign


async def _check_external_id_free(
    session: AsyncSession, org_id: int, external_id: int, campaign_id: int | None
) -> None:
    other = await repository.find_org_campaign(session, org_id, external_id=external_id)
    if other is not None and other.id != campaign_id:
        raise BadArgument("has already been taken", field="externalId")


async def update_campaign(
    session: AsyncSession, campaign: Campaign, attrs: dict[str, Any], *, check: bool = True
) -> Campaign:
    if attrs.get("external_id") is not None and campaign.org_id is not None:
        await _check_external_id_free(session, campaign.org_id, attrs["external_id"], campaign.id)
    await _apply(session, campaign, attrs)
    await session.flush()
    if attrs.get("mtt") is not None:
        await set_mtt(session, campaign, attrs["mtt"])
    if check:
        await _check_email_settings(session, campaign, attrs)
    return campaign


async def upsert_campaign(
    session: AsyncSession, org: Org, attrs: dict[str, Any]
) -> tuple[Campaign, list[ActionPage]]:
    """Match by externalId (when given) else by name within the org; upsert its pages by
    name. Pages are never deleted."""
    campaign = None
    if attrs.get("external_id") is not None:
        campaign = await repository.find_org_campaign(
            session, org.id, external_id=attrs["external_id"]
        )
    elif attrs.get("name"):
        campaign = await repository.find_org_campaign(session, org.id, name=attrs["name"])
    # checked once its pages are in: one of them may bring the template
    if campaign is None:
        campaign = await add_campaign(session, org, attrs, check=False)
    else:
        campaign = await update_campaign(session, campaign, attrs, check=False)
    touched = []
    for index, page_attrs in enumerate(attrs.get("action_pages") or []):
        try:
            touched.append(await _upsert_page(session, org, campaign, page_attrs))
        except BadArgument as exc:
            exc.field = ["actionPages", str(index), *exc.field]
            raise
    await _check_email_settings(session, campaign, attrs)
    return campaign, touched


async def _upsert_page(
    session: AsyncSession, org: Org, campaign: Campaign, attrs: dict[str, Any]
) -> ActionPage:
    page = None
    if attrs.get("name"):
        page = await page_rows.find_campaign_page(session, attrs["name"], org.id, campaign.id)
    if page is None:
        return await pages.add_action_page(session, org, campaign, attrs)
    return await pages.update_action_page(session, page, attrs)


async def set_mtt(session: AsyncSession, campaign: Campaign, attrs: dict[str, Any]) -> Mtt:
    """Configure mail to target. Refused while the campaign's org has no email backend: the
    letters go out through it, and a campaign collecting letters that can never be sent is
    the failure campaigners cannot see. (Removing the backend later blocks the sending: the
    `mtt status` command and the log say so.)"""
    org = await session.get(Org, campaign.org_id)
    if org is not None and org.email_backend_id is None:
        raise BadArgument(
            f"needs an email backend: org {org.name} has none (set its emailBackend first)",
            field="mtt",
        )
    mtt = await repository.get_mtt(session, campaign.id)
    if mtt is None:
        if attrs.get("start_at") is None or attrs.get("end_at") is None:
            raise BadArgument("can't be blank", field=["mtt", "startAt"])
        mtt = Mtt(campaign_id=campaign.id, start_at=attrs["start_at"], end_at=attrs["end_at"])
        session.add(mtt)
    for key in MTT_FIELDS:
        if attrs.get(key) is not None:
            setattr(mtt, key, attrs[key])
    if not mtt.start_at < mtt.end_at:
        raise BadArgument("must be after the start", field=["mtt", "endAt"])
    await session.flush()
    return mtt


async def deletable(session: AsyncSession, campaign: Campaign) -> bool:
    for page in await page_rows.list_pages_of_campaigns(session, [campaign.id]):
        if page.org_id != campaign.org_id or not await pages.deletable(session, page.id):
            return False
    return True


async def delete_campaign(session: AsyncSession, campaign: Campaign) -> None:
    """Delete the lead org's pages (only those without real action data), then the campaign;
    refuse while partners' pages remain. Checked first, so a refusal changes nothing."""
    all_pages = await page_rows.list_pages_of_campaigns(session, [campaign.id])
    if any(page.org_id != campaign.org_id for page in all_pages):
        raise BadArgument("has action pages", field="name")
    for page in all_pages:
        if not await pages.deletable(session, page.id):
            raise BadArgument("has action data", field="name")
    for page in all_pages:
        await pages.delete_action_page(session, page)
    await targets.delete_campaign_targets(session, campaign.id)
    await session.delete(campaign)
    await session.flush()
