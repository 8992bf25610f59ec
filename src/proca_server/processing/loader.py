"""Everything the pipeline needs of many actions, in a fixed number of statements.

`load_actions_for_processing` runs at most eight SELECTs whatever the number of actions
(actions with page, owner org and source; campaigns with their MTT flag; supporters;
contacts; keys; the contacts' orgs; donations; provider template refs), so a batch of
actions never costs a query per action."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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


async def load_actions_for_processing(
    session: AsyncSession, action_ids: Sequence[int]
) -> list[LoadedAction]:
    """The actions that exist among `action_ids`, in id order, with their supporter, its
    contacts (+ keys and orgs), page, campaign, page owner org, source and donation."""
    ids = _ids(action_ids)
    if not ids:
        return []
    rows = (
        await session.execute(
            select(Action, ActionPage, Org, Source)
            .join(ActionPage, ActionPage.id == Action.action_page_id)
            .join(Org, Org.id == ActionPage.org_id)
            .outerjoin(Source, Source.id == Action.source_id)
            .where(Action.id.in_(ids))
            .order_by(Action.id)
        )
    ).all()
    if not rows:
        return []

    campaign_ids = _ids(
        a.campaign_id if a.campaign_id is not None else p.campaign_id for a, p, _, _ in rows
    )
    has_mtt = select(Mtt.id).where(Mtt.campaign_id == Campaign.id).exists()
    campaigns = {
        c.id: (c, bool(mtt))
        for c, mtt in (
            await session.execute(select(Campaign, has_mtt).where(Campaign.id.in_(campaign_ids)))
        ).all()
    }

    supporter_ids = _ids(a.supporter_id for a, _, _, _ in rows)
    supporters: dict[int, Supporter] = {}
    contacts_by_supporter: dict[int, list[Contact]] = {}
    keys: dict[int, PublicKey] = {}
    orgs: dict[int, Org] = {o.id: o for _, _, o, _ in rows}
    if supporter_ids:
        supporters = {
            s.id: s
            for s in (
                await session.execute(select(Supporter).where(Supporter.id.in_(supporter_ids)))
            )
            .scalars()
            .all()
        }
        contacts = (
            (
                await session.execute(
                    select(Contact)
                    .where(Contact.supporter_id.in_(supporter_ids))
                    .order_by(Contact.id)
                )
            )
            .scalars()
            .all()
        )
        for contact in contacts:
            contacts_by_supporter.setdefault(contact.supporter_id, []).append(contact)
        key_ids = _ids(key_id for c in contacts for key_id in (c.public_key_id, c.sign_key_id))
        if key_ids:
            keys = {
                k.id: k
                for k in (await session.execute(select(PublicKey).where(PublicKey.id.in_(key_ids))))
                .scalars()
                .all()
            }
        missing_orgs = [i for i in _ids(c.org_id for c in contacts) if i not in orgs]
        if missing_orgs:
            for org in (
                (await session.execute(select(Org).where(Org.id.in_(missing_orgs)))).scalars().all()
            ):
                orgs[org.id] = org

    donations: dict[int, Donation] = {}
    for donation in (
        (
            await session.execute(
                select(Donation).where(Donation.action_id.in_(ids)).order_by(Donation.id.desc())
            )
        )
        .scalars()
        .all()
    ):
        donations[donation.action_id] = donation  # the oldest wins (has_one)

    refs = await _template_refs(session, [p for _, p, _, _ in rows])

    loaded = []
    for action, page, org, source in rows:
        campaign_id = action.campaign_id if action.campaign_id is not None else page.campaign_id
        campaign, mtt = campaigns[campaign_id]
        supporter = supporters.get(action.supporter_id) if action.supporter_id else None
        copies = [
            ContactCopy(
                contact=c,
                public_key=keys.get(c.public_key_id) if c.public_key_id else None,
                sign_key=keys.get(c.sign_key_id) if c.sign_key_id else None,
            )
            for c in (contacts_by_supporter.get(supporter.id, []) if supporter else [])
        ]
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
