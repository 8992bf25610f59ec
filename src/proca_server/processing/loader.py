"""Everything the pipeline needs of many actions, in a fixed number of statements.

`load_actions_for_processing` runs three SELECTs for a common batch, seven at most, whatever
the number of actions, so a batch never costs a query per action; on PostgreSQL each takes
its ids as one array parameter, so its text (and prepared plan) is the same for any batch."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer

from proca_server.db import is_postgres, one_of
from proca_server.models import (
    Action,
    ActionPage,
    Campaign,
    Contact,
    Donation,
    EmailTemplate,
    Mtt,
    Org,
    PublicKey,
    Source,
    Supporter,
)


@dataclass(slots=True)
class ContactCopy:
    """One receiving org's contact row with the keys it was sealed with."""

    contact: Contact
    public_key: PublicKey | None
    sign_key: PublicKey | None

    @property
    def encrypted(self) -> bool:
        return self.contact.crypto_nonce is not None


@dataclass(slots=True)
class LoadedAction:
    action: Action
    supporter: Supporter | None
    page: ActionPage
    campaign: Campaign
    org: Org  # the page owner: it processes the action
    source: Source | None
    donation: Donation | None
    campaign_has_mtt: bool
    thank_you_template_ref: str | None
    contacts: list[ContactCopy] = field(default_factory=list)  # by contact id
    orgs: dict[int, Org] = field(default_factory=dict)  # page owner and contact orgs

    def contact_for(self, org_id: int) -> ContactCopy | None:
        for copy in self.contacts:
            if copy.contact.org_id == org_id:
                return copy
        return None


def _ids(values: Iterable[int | None]) -> list[int]:
    return sorted({v for v in values if v is not None})


@dataclass(frozen=True)
class _Statements:
    """The loader's statements, built once per dialect (building a statement costs more
    than running it) and run with the ids as parameters."""

    actions: Select[Action, Supporter, Source, bool]
    locked_actions: Select[Action, Supporter, Source, bool]
    pages: Select[ActionPage, Campaign, Org, bool]
    campaigns: Select[Campaign, bool]
    contacts: Select[Contact, PublicKey, PublicKey]
    orgs: Select[Org]
    donations: Select[Donation]


@functools.cache
def _statements(postgres: bool) -> _Statements:
    has_donation = select(Donation.id).where(Donation.action_id == Action.id).exists()
    has_mtt = select(Mtt.id).where(Mtt.campaign_id == Campaign.id).exists()
    actions = (
        select(Action, Supporter, Source, has_donation)
        .outerjoin(Supporter, Supporter.id == Action.supporter_id)
        .outerjoin(Source, Source.id == Action.source_id)
        .where(one_of(Action.id, "ids", postgres=postgres))
        .order_by(Action.id)
    )
    encrypt_key, sign_key = aliased(PublicKey), aliased(PublicKey)
    return _Statements(
        actions=actions,
        locked_actions=actions.with_for_update(of=Action, skip_locked=True),
        pages=(
            select(ActionPage, Campaign, Org, has_mtt)
            .join(Campaign, Campaign.id == ActionPage.campaign_id)
            .join(Org, Org.id == ActionPage.org_id)
            .where(one_of(ActionPage.id, "ids", postgres=postgres))
        ),
        campaigns=select(Campaign, has_mtt).where(one_of(Campaign.id, "ids", postgres=postgres)),
        contacts=(
            select(Contact, encrypt_key, sign_key)
            .outerjoin(encrypt_key, encrypt_key.id == Contact.public_key_id)
            .outerjoin(sign_key, sign_key.id == Contact.sign_key_id)
            .where(one_of(Contact.supporter_id, "ids", postgres=postgres))
            .order_by(Contact.id)
            .options(defer(encrypt_key.private), defer(sign_key.private))
        ),
        orgs=select(Org).where(one_of(Org.id, "ids", postgres=postgres)),
        donations=(
            select(Donation)
            .where(one_of(Donation.action_id, "ids", postgres=postgres))
            .order_by(Donation.id.desc())
        ),
    )


async def load_actions_for_processing(
    session: AsyncSession, action_ids: Sequence[int], *, lock: bool = False
) -> list[LoadedAction]:
    """The actions that exist among `action_ids`, in id order, with their supporter, its
    contacts (+ keys and orgs), page, campaign, page owner org, source and donation.

    Three statements in the common case (actions with supporters and sources; contacts with
    their keys; pages with campaigns and owner orgs), more only for what the batch has:
    a campaign other than its page's, contacts of other orgs, donations, provider
    template refs. With `lock` (PostgreSQL), the action rows are locked for the
    transaction with `FOR UPDATE SKIP LOCKED`: an action another transaction holds is left
    out (that one is processing it)."""
    ids = _ids(action_ids)
    if not ids:
        return []
    postgres = is_postgres(session)
    statements = _statements(postgres)
    chosen = statements.locked_actions if lock and postgres else statements.actions
    rows = (await session.execute(chosen, {"ids": ids})).all()
    if not rows:
        return []

    pages: dict[int, ActionPage] = {}
    campaigns: dict[int, tuple[Campaign, bool]] = {}
    orgs: dict[int, Org] = {}
    page_ids = _ids(a.action_page_id for a, _, _, _ in rows)
    for page, campaign, org, mtt in (
        await session.execute(statements.pages, {"ids": page_ids})
    ).all():
        pages[page.id] = page
        campaigns[campaign.id] = (campaign, bool(mtt))
        orgs[org.id] = org
    other_campaigns = [i for i in _ids(a.campaign_id for a, _, _, _ in rows) if i not in campaigns]
    if other_campaigns:
        for campaign, mtt in (
            await session.execute(statements.campaigns, {"ids": other_campaigns})
        ).all():
            campaigns[campaign.id] = (campaign, bool(mtt))

    supporter_ids = _ids(s.id for _, s, _, _ in rows if s is not None)
    contacts_by_supporter: dict[int, list[ContactCopy]] = {}
    if supporter_ids:
        for contact, public_key, signing in (
            await session.execute(statements.contacts, {"ids": supporter_ids})
        ).all():
            contacts_by_supporter.setdefault(contact.supporter_id, []).append(
                ContactCopy(contact=contact, public_key=public_key, sign_key=signing)
            )
        missing_orgs = [
            i
            for i in _ids(
                c.contact.org_id for copies in contacts_by_supporter.values() for c in copies
            )
            if i not in orgs
        ]
        if missing_orgs:
            for org in (await session.execute(statements.orgs, {"ids": missing_orgs})).scalars():
                orgs[org.id] = org

    donations: dict[int, Donation] = {}
    with_donation = [a.id for a, _, _, flag in rows if flag]
    if with_donation:
        for donation in (
            await session.execute(statements.donations, {"ids": with_donation})
        ).scalars():
            donations[donation.action_id] = donation  # the oldest wins (has_one)

    refs = await _template_refs(session, list(pages.values()))

    loaded = []
    for action, supporter, source, _ in rows:
        page = pages[action.action_page_id]
        org = orgs[page.org_id]
        campaign_id = action.campaign_id if action.campaign_id is not None else page.campaign_id
        campaign, mtt = campaigns[campaign_id]
        copies = contacts_by_supporter.get(supporter.id, []) if supporter is not None else []
        involved = {org.id} | {c.contact.org_id for c in copies if c.contact.org_id is not None}
        loaded.append(
            LoadedAction(
                action=action,
                supporter=supporter,
                page=page,
                campaign=campaign,
                org=org,
                source=source,
                donation=donations.get(action.id),
                campaign_has_mtt=mtt,
                thank_you_template_ref=_ref_for(refs, page),
                contacts=copies,
                orgs={i: orgs[i] for i in involved if i in orgs},
            )
        )
    return loaded


_Refs = dict[tuple[int, str], dict[str, str]]


async def _template_refs(session: AsyncSession, pages: Sequence[ActionPage]) -> _Refs:
    """Provider ids (`external_id`) of the pages' thank-you templates, by (org, name) and
    locale."""
    names = {p.thank_you_template for p in pages if p.thank_you_template}
    if not names:
        return {}
    org_ids = _ids(p.org_id for p in pages if p.thank_you_template)
    rows = await session.execute(
        select(
            EmailTemplate.org_id,
            EmailTemplate.name,
            EmailTemplate.locale,
            EmailTemplate.external_id,
        ).where(
            EmailTemplate.org_id.in_(org_ids),
            EmailTemplate.name.in_(sorted(names)),
            EmailTemplate.external_id.is_not(None),
        )
    )
    refs: _Refs = {}
    for org_id, name, locale, external_id in rows.all():
        if external_id is not None:
            refs.setdefault((org_id, name), {})[locale] = external_id
    return refs


def _ref_for(refs: _Refs, page: ActionPage) -> str | None:
    if not page.thank_you_template:
        return None
    by_locale = refs.get((page.org_id, page.thank_you_template))
    if not by_locale:
        return None
    if page.locale in by_locale:
        return by_locale[page.locale]
    return by_locale[min(by_locale)]
