"""SQL of the retention cleanup (the rules are in service.py).

An action is *eligible* when its campaign is closed, ended (non-null end date) before the
cutoff date (and is the campaign given, when one is) and the action was made before the
cutoff. A supporter is a *candidate* when it has a contact of the org, at least one eligible
action and no other action, and its fingerprint is not *protected*: no supporter with the
same fingerprint and a contact of the org has an action that is not eligible (among the
actions of the campaign given, when one is).

Every statement decides from the rows as they are when it runs, so a batch checks its
supporters again before it erases them: a person who signed again since the list was made
is left alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from proca_server.models import Action, Campaign, Contact, Supporter
from proca_server.models.enums import CampaignStatus


@dataclass(frozen=True)
class Scope:
    """What a retention run may touch: the org's contacts, actions made before `cutoff` in
    campaigns ended before `cutoff_date`, optionally in one campaign."""

    org_id: int
    cutoff: datetime
    cutoff_date: date
    campaign_id: int | None = None


@dataclass(frozen=True)
class Counts:
    contacts: int = 0
    supporters: int = 0
    # candidates no other org holds a contact of: remove_pii clears their personal data
    unshared: int = 0


def _among(session: AsyncSession, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column IN ids`; on PostgreSQL one array parameter (`= ANY`), which spares building and
    sending a statement of thousands of parameters per batch."""
    among: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam("ids", list(ids), type_=postgresql.ARRAY(BigInteger()), unique=True)
        among = column == any_(array)
    else:
        among = column.in_(list(ids))
    return among


async def _ended_campaigns(session: AsyncSession, scope: Scope) -> list[int]:
    """The campaigns whose actions may be eligible: closed, ended before the cutoff date (the
    one given, if it is). Read by each statement, so a campaign reopened meanwhile is out."""
    query = select(Campaign.id).where(
        Campaign.status == CampaignStatus.CLOSED, Campaign.end_date < scope.cutoff_date
    )
    if scope.campaign_id is not None:
        query = query.where(Campaign.id == scope.campaign_id)
    return list(await session.scalars(query))


class _Rules:
    """The candidate rule over `ended` (_ended_campaigns): a small list, so that the actions'
    campaigns are checked against it rather than joined to `campaigns` for every action."""

    def __init__(self, session: AsyncSession, scope: Scope, ended: Sequence[int]) -> None:
        self.session = session
        self.scope = scope
        self.ended = ended

    def eligible(self, action: Any) -> ColumnElement[bool]:
        return and_(
            _among(self.session, action.campaign_id, self.ended),
            action.inserted_at < self.scope.cutoff,
        )

    def not_eligible(self, action: Any) -> ColumnElement[bool]:
        # spelled out rather than NOT(eligible): an action without a campaign is NULL there
        return or_(
            action.campaign_id.is_(None),
            ~_among(self.session, action.campaign_id, self.ended),
            action.inserted_at >= self.scope.cutoff,
        )

    def in_campaign(self, action: Any) -> ColumnElement[bool]:
        if self.scope.campaign_id is None:
            return true()
        return action.campaign_id == self.scope.campaign_id  # type: ignore[no-any-return]

    def is_candidate(self, supporter: Any) -> ColumnElement[bool]:
        """Whether `supporter` (the Supporter entity or an alias) is a candidate."""
        org_id = self.scope.org_id
        a1 = aliased(Action)
        eligible_action = (
            select(literal(1))
            .select_from(a1)
            .where(a1.supporter_id == supporter.id, self.eligible(a1))
            .exists()
        )
        a2 = aliased(Action)
        other_action = (
            select(literal(1))
            .select_from(a2)
            .where(a2.supporter_id == supporter.id, self.not_eligible(a2))
            .exists()
        )
        s3, a3 = aliased(Supporter), aliased(Action)
        protected = (
            select(literal(1))
            .select_from(s3)
            .join(a3, a3.supporter_id == s3.id)
            .where(
                s3.fingerprint == supporter.fingerprint,
                self.not_eligible(a3),
                self.in_campaign(a3),
                _has_org_contact(s3, org_id),
            )
            .exists()
        )
        return and_(_has_org_contact(supporter, org_id), eligible_action, ~other_action, ~protected)


def _has_org_contact(supporter: Any, org_id: int) -> ColumnElement[bool]:
    return (
        select(literal(1))
        .where(Contact.supporter_id == supporter.id, Contact.org_id == org_id)
        .exists()
    )


def _has_other_org_contact(supporter: Any, org_id: int) -> ColumnElement[bool]:
    # a contact whose org is gone (org_id NULL) is nobody's
    return (
        select(literal(1))
        .where(Contact.supporter_id == supporter.id, Contact.org_id != org_id)
        .exists()
    )


async def count_candidates(session: AsyncSession, scope: Scope) -> Counts:
    ended = await _ended_campaigns(session, scope)
    if not ended:
        return Counts()
    s = aliased(Supporter)
    contacts = (
        select(func.count())
        .select_from(Contact)
        .where(Contact.supporter_id == s.id, Contact.org_id == scope.org_id)
        .scalar_subquery()
    )
    unshared = case((_has_other_org_contact(s, scope.org_id), 0), else_=1)
    per_supporter = (
        select(s.id, contacts.label("contacts"), unshared.label("unshared"))
        .select_from(s)
        .where(_Rules(session, scope, ended).is_candidate(s))
        .subquery()
    )
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(per_supporter.c.contacts), 0),
                func.coalesce(func.sum(per_supporter.c.unshared), 0),
            ).select_from(per_supporter)
        )
    ).one()
    return Counts(contacts=int(row[1]), supporters=int(row[0]), unshared=int(row[2]))


async def list_candidate_ids(session: AsyncSession, scope: Scope) -> list[int]:
    ended = await _ended_campaigns(session, scope)
    if not ended:
        return []
    s = aliased(Supporter)
    query = select(s.id).where(_Rules(session, scope, ended).is_candidate(s)).order_by(s.id)
    return list(await session.scalars(query))


async def still_candidates(session: AsyncSession, scope: Scope, ids: Sequence[int]) -> list[int]:
    ended = await _ended_campaigns(session, scope)
    if not ended or not ids:
        return []
    s = aliased(Supporter)
    rules = _Rules(session, scope, ended)
    query = select(s.id).where(_among(session, s.id, ids), rules.is_candidate(s)).order_by(s.id)
    return list(await session.scalars(query))


async def delete_org_contacts(session: AsyncSession, org_id: int, ids: Sequence[int]) -> int:
    result = await session.execute(
        delete(Contact)
        .where(Contact.org_id == org_id, _among(session, Contact.supporter_id, ids))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def clear_unshared_pii(session: AsyncSession, org_id: int, ids: Sequence[int]) -> int:
    """Null the cleartext personal data (first and last name, email, address) of
    those of `ids` that no other org holds a contact of. The fingerprint, the area and the
    actions stay: the campaign counters are made of them."""
    result = await session.execute(
        update(Supporter)
        .where(_among(session, Supporter.id, ids), ~_has_other_org_contact(Supporter, org_id))
        .values(first_name=None, last_name=None, email=None, address=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
