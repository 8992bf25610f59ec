"""Action pages: names, creation, copies, launch and deletion."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action_page import repository

# also looked up by name from other slices through this module
from proca_server.action_page.repository import get_page_by_name as get_page_by_name
from proca_server.email import readiness
from proca_server.email.directory import check_template_name
from proca_server.errors import BadArgument, NotFound
from proca_server.models import ActionPage, Campaign, Org

# `identifier/path…` or `domain.tld/path…`, with one or more path segments.
NAME_RE = re.compile(r"^(?:[A-Za-z0-9_-]+|(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+)(?:/[A-Za-z0-9_-]+)+$")
LOCALE_RE = re.compile(r"^[a-z]{2}(?:_[A-Z]{2})?(?:@[a-z0-9]+)?$")
MAX_EXTRA_SUPPORTERS = 100_000_000
PAGE_FIELDS = (
    "locale",
    "thank_you_template",
    "supporter_confirm_template",
    "duplicate_template",
    "extra_supporters",
    "config",
    "delivery",
)


def validate_name(name: str | None) -> str:
    if not name:
        raise BadArgument("can't be blank", field="name")
    if not NAME_RE.match(name):
        raise BadArgument("has invalid format (use org-name/path or domain.tld/path)", field="name")
    return name


def validate_locale(locale: str | None) -> str:
    if not locale:
        raise BadArgument("can't be blank", field="locale")
    if not LOCALE_RE.match(locale):
        raise BadArgument("has invalid format", field="locale")
    return locale


async def _check_name_free(session: AsyncSession, name: str, page_id: int | None) -> None:
    other = await get_page_by_name(session, name)
    if other is not None and other.id != page_id:
        raise BadArgument("has already been taken", field="name")


def _apply(page: ActionPage, attrs: dict[str, Any]) -> None:
    for field in PAGE_FIELDS:
        if field not in attrs or attrs[field] is None:
            continue
        value = attrs[field]
        if field == "locale":
            value = validate_locale(value)
        if field == "extra_supporters" and not 0 <= value <= MAX_EXTRA_SUPPORTERS:
            raise BadArgument(
                f"must be between 0 and {MAX_EXTRA_SUPPORTERS}", field="extraSupporters"
            )
        setattr(page, field, value)


_TEMPLATE_FIELDS = {
    "thank_you_template": "thankYouTemplate",
    "supporter_confirm_template": "supporterConfirmTemplate",
    "duplicate_template": "duplicateTemplate",
}


async def _check_templates(session: AsyncSession, org: Org, attrs: dict[str, Any]) -> None:
    """The page's template names must name templates of its org (when the org has an email
    backend to look them up in)."""
    for column, field in _TEMPLATE_FIELDS.items():
        await check_template_name(session, org, attrs.get(column), field)


async def add_action_page(
    session: AsyncSession, org: Org, campaign: Campaign, attrs: dict[str, Any]
) -> ActionPage:
    name = validate_name(attrs.get("name"))
    validate_locale(attrs.get("locale"))
    await _check_name_free(session, name, None)
    page = ActionPage(name=name, campaign_id=campaign.id, org_id=org.id, live=False)
    await _check_templates(session, org, attrs)
    _apply(page, attrs)
    session.add(page)
    await session.flush()
    await readiness.warn_page_gaps(session, org, page)
    return page


async def update_action_page(
    session: AsyncSession, page: ActionPage, attrs: dict[str, Any]
) -> ActionPage:
    if attrs.get("name") is not None and attrs["name"] != page.name:
        await _check_name_free(session, validate_name(attrs["name"]), page.id)
        page.name = attrs["name"]
    org = await session.get(Org, page.org_id)
    if org is not None:
        await _check_templates(session, org, attrs)
    _apply(page, attrs)
    await session.flush()
    if org is not None and any(attrs.get(k) is not None for k in ("locale", *_TEMPLATE_FIELDS)):
        # a template name kept without an email backend, or a locale the template lacks
        await readiness.warn_page_gaps(session, org, page)
    return page


async def copy_action_page(
    session: AsyncSession, org: Org, name: str, source: ActionPage
) -> ActionPage:
    validate_name(name)
    await _check_name_free(session, name, None)
    page = ActionPage(
        name=name,
        locale=source.locale,
        config=dict(source.config or {}),
        delivery=source.delivery,
        campaign_id=source.campaign_id,
        org_id=org.id,
        live=False,
    )
    session.add(page)
    await session.flush()
    await readiness.warn_page_gaps(session, org, page)
    return page


async def newest_lead_page(session: AsyncSession, campaign: Campaign) -> ActionPage:
    page = await repository.newest_page_of(session, campaign.id, campaign.org_id)
    if page is None:
        raise NotFound(f"Campaign {campaign.name} does not have action pages")
    return page


async def deletable(session: AsyncSession, page_id: int) -> bool:
    """A page may go when it holds no real action and none of its supporters acted elsewhere
    (their rows would have to stay)."""
    if await repository.has_real_action(session, page_id):
        return False
    return not await repository.has_supporter_acting_elsewhere(session, page_id)


async def delete_action_page(session: AsyncSession, page: ActionPage) -> None:
    """Delete a page that holds no real action data, with its test actions and its
    supporters (who then have no action left)."""
    if not await deletable(session, page.id):
        raise BadArgument("has action data", field="name")
    await repository.delete_page_actions(session, page.id)
    await session.delete(page)
    await session.flush()
