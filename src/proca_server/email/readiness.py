"""Whether an org's supporter emails can go out: the checks that refuse a setting which
would leave supporters waiting for an email that never comes, and the warnings when a later
change breaks a setting that is on.

The rules are the email worker's own, asked through the same functions: an email goes
through the org's email backend, its own or the instance's it borrows
(`get_org_email_backend`); a confirm email uses the page's template, else its campaign's,
else its org's (`confirm_template`), a thank-you email the page's; the name is looked up in
the template directory (`directory.lookup`) in the page's locale.

- `supporterConfirm` turned on for an org, or set to true on a campaign, needs for every
  page it affects (the org's pages in campaigns that do not override it; all the campaign's
  pages, partners' included) an email backend of the page's org and a confirm template
  found in the page's locale. Before any page exists the org's template (the campaign's,
  else its lead org's, for a campaign) must exist in some locale. A page whose org takes the
  confirm messages with its own consumer (`customSupporterConfirm`) needs neither: its
  supporters are not left waiting on this server.
- `doiThankYou` needs an email backend and a page of the org with a thank-you template,
  each such template found in its page's locale: the double opt-in link travels in that
  email.
- A page's `thankYouTemplate` while its org has no email backend is kept (no action waits
  on it, and setups often name templates before choosing a backend) but logged.

A gap is one sentence naming the setting and what is missing, by org, campaign, page and
template names: never personal data."""

from __future__ import annotations

import logging

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.email.backend import OrgEmailBackend, get_org_email_backend
from proca_server.email.backends.base import EmailConfigError
from proca_server.email.directory import Missing, directory
from proca_server.email.supporter import confirm_template
from proca_server.models import ActionPage, Campaign, Org
from proca_server.processing.transition import effective_flags

log = logging.getLogger(__name__)

SUPPORTER_CONFIRM = "supporterConfirm"
DOI_THANK_YOU = "doiThankYou"
THANK_YOU_TEMPLATE = "thankYouTemplate"


class _Check:
    """One check's look-ups, each asked once (an org has many pages, few templates)."""

    def __init__(self, session: AsyncSession, setting: str) -> None:
        self.session = session
        self.setting = setting
        self._backends: dict[int, OrgEmailBackend | str] = {}
        self._found: dict[tuple[int, str, str | None], bool] = {}

    async def backend(self, org: Org) -> OrgEmailBackend | str:
        """The org's email backend, or the gap."""
        if org.id not in self._backends:
            try:
                backend = await get_org_email_backend(self.session, org)
            except EmailConfigError as exc:
                self._backends[org.id] = (
                    f"{self.setting} needs an email backend: the one of org {org.name} "
                    f"cannot send ({exc})"
                )
            else:
                self._backends[org.id] = backend or (
                    f"{self.setting} needs an email backend: org {org.name} has none "
                    "(set its emailBackend first)"
                )
        return self._backends[org.id]

    async def template(
        self,
        org: Org,
        backend: OrgEmailBackend,
        name: str,
        page: ActionPage | None,
        kind: str,
    ) -> str | None:
        """None when the org has the template `name` (in the page's locale), else the gap."""
        locale = page.locale if page is not None else None
        key = (org.id, name, locale)
        if key not in self._found:
            found = await directory.lookup(self.session, org, name, locale, backend=backend)
            self._found[key] = not isinstance(found, Missing)
        if self._found[key]:
            return None
        where = f" (for page {page.name}, locale {locale})" if page is not None else ""
        return (
            f"{self.setting} needs a {kind} template: {name!r}{where} is not a template "
            f"of org {org.name}"
        )

    async def confirm(
        self, org: Org, page: ActionPage | None, campaign: Campaign | None
    ) -> str | None:
        """The gap of the confirm emails of one page (None: a page yet to come)."""
        if org.custom_supporter_confirm:
            return None
        backend = await self.backend(org)
        if isinstance(backend, str):
            return backend
        name = confirm_template(page, campaign, org)
        if name is None:
            if page is not None:
                holder = f"page {page.name}"
            elif campaign is not None:
                holder = f"campaign {campaign.name} of org {org.name}"
            else:
                holder = f"org {org.name}"
            return (
                f"{self.setting} needs a supporter confirm template: none is set for {holder} "
                "(set supporterConfirmTemplate on the org, the campaign or the page)"
            )
        return await self.template(org, backend, name, page, "supporter confirm")


async def supporter_confirm_gap(
    session: AsyncSession, org: Org | None = None, *, campaign: Campaign | None = None
) -> str | None:
    """What turning on `supporterConfirm` of the org (or of the campaign, when given) lacks."""
    check = _Check(session, SUPPORTER_CONFIRM)
    targets: list[tuple[Org, ActionPage | None, Campaign | None]]
    if campaign is not None:
        rows = await session.execute(
            select(ActionPage, Org)
            .join(Org, Org.id == ActionPage.org_id)
            .where(ActionPage.campaign_id == campaign.id)
            .order_by(ActionPage.id)
        )
        targets = [(page_org, page, campaign) for page, page_org in rows.all()]
        if not targets:
            lead = await session.get(Org, campaign.org_id) if campaign.org_id else None
            targets = [(lead, None, campaign)] if lead is not None else []
    elif org is not None:
        inheriting = await session.execute(
            select(ActionPage, Campaign)
            .join(Campaign, Campaign.id == ActionPage.campaign_id)
            .where(ActionPage.org_id == org.id, Campaign.supporter_confirm.is_(None))
            .order_by(ActionPage.id)
        )
        targets = [(org, page, page_campaign) for page, page_campaign in inheriting.all()]
        if not targets:
            targets = [(org, None, None)]
    else:
        return None
    for target_org, page, target_campaign in targets:
        gap = await check.confirm(target_org, page, target_campaign)
        if gap is not None:
            return gap
    return None


async def doi_thank_you_gap(session: AsyncSession, org: Org) -> str | None:
    """What turning on `doiThankYou` of the org lacks."""
    check = _Check(session, DOI_THANK_YOU)
    backend = await check.backend(org)
    if isinstance(backend, str):
        return backend
    pages = (
        await session.scalars(
            select(ActionPage)
            .where(ActionPage.org_id == org.id, ActionPage.thank_you_template.is_not(None))
            .order_by(ActionPage.id)
        )
    ).all()
    pages = [p for p in pages if p.thank_you_template]
    if not pages:
        return (
            f"{DOI_THANK_YOU} needs a thank-you template: no action page of org {org.name} "
            "has a thankYouTemplate (set one on its pages first)"
        )
    for page in pages:
        assert page.thank_you_template is not None
        gap = await check.template(org, backend, page.thank_you_template, page, "thank-you")
        if gap is not None:
            return gap
    return None


async def page_gaps(session: AsyncSession, org: Org, page: ActionPage) -> list[str]:
    """What the page's supporter emails lack, as its settings stand now."""
    gaps: list[str] = []
    campaign = await session.get(Campaign, page.campaign_id)
    if effective_flags(org, campaign).supporter_confirm:
        gap = await _Check(session, SUPPORTER_CONFIRM).confirm(org, page, campaign)
        if gap is not None:
            gaps.append(gap)
    if page.thank_you_template:
        check = _Check(session, THANK_YOU_TEMPLATE)
        backend = await check.backend(org)
        if isinstance(backend, str):
            gaps.append(backend)
        else:
            gap = await check.template(org, backend, page.thank_you_template, page, "thank-you")
            if gap is not None:
                gaps.append(gap)
    return gaps


async def org_gaps(session: AsyncSession, org: Org) -> list[str]:
    """What the org's settings that are on lack now (its own and its campaigns'
    `supporterConfirm`, `doiThankYou`, its pages' thank-you templates)."""
    gaps: list[str] = []
    if org.supporter_confirm and (gap := await supporter_confirm_gap(session, org)):
        gaps.append(gap)
    involved = select(ActionPage.campaign_id).where(ActionPage.org_id == org.id)
    campaigns = await session.scalars(
        select(Campaign)
        .where(
            Campaign.supporter_confirm.is_(True),
            or_(Campaign.org_id == org.id, Campaign.id.in_(involved)),
        )
        .order_by(Campaign.id)
    )
    for campaign in campaigns.all():
        if gap := await supporter_confirm_gap(session, campaign=campaign):
            gaps.append(gap)
    if org.doi_thank_you and (gap := await doi_thank_you_gap(session, org)):
        gaps.append(gap)
    with_thanks = await session.scalar(
        select(ActionPage.id)
        .where(ActionPage.org_id == org.id, ActionPage.thank_you_template.is_not(None))
        .limit(1)
    )
    if with_thanks is not None:
        backend = await _Check(session, THANK_YOU_TEMPLATE).backend(org)
        if isinstance(backend, str):
            gaps.append(backend)
    return gaps


def warn_gaps(subject: str, gaps: list[str]) -> None:
    for gap in dict.fromkeys(gaps):
        log.warning("%s: %s (until then those emails are not sent)", subject, gap)


async def warn_org_gaps(session: AsyncSession, org: Org) -> None:
    """After a change of the org's backend or templates: say what no longer works."""
    warn_gaps(f"org {org.name}", await org_gaps(session, org))


async def warn_page_gaps(session: AsyncSession, org: Org, page: ActionPage) -> None:
    warn_gaps(f"page {page.name}", await page_gaps(session, org, page))
