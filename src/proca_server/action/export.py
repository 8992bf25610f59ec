"""Export of an org's actions with its contact copies (docs/export.md) and GDPR erasure."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.db import is_postgres
from proca_server.models import (
    Action,
    ActionPage,
    Campaign,
    Contact,
    Donation,
    Org,
    PublicKey,
    Source,
    Supporter,
)
from proca_server.models.enums import (
    ActionProcessingStatus,
    EmailStatus,
    SupporterProcessingStatus,
)

DEFAULT_LIMIT = 100
PROCESSED = (
    ActionProcessingStatus.ACCEPTED,
    ActionProcessingStatus.DELIVERED,
    ActionProcessingStatus.REPEAT,
)


@dataclass(frozen=True)
class ExportFilter:
    campaign_id: int | None = None
    campaign_name: str | None = None
    start: int | None = None
    after: datetime | None = None
    limit: int | None = None
    only_opt_in: bool = True
    only_double_opt_in: bool = False
    include_testing: bool = False
    with_consent_only: bool = False
    fingerprint: bytes | None = None


def scoped(
    org_id: int, criteria: ExportFilter, *columns: Any, by_supporter: bool = False
) -> Select[Any]:
    """`columns` of the actions an export for the org holds under `criteria`, each joined to
    its supporter and the org's contact copy (no order, no limit: `export_actions` pages it,
    the file export streams it). `by_supporter`: the org's condition on the contacts written
    so that no index takes it, leaving the planner only the probe of each supporter's
    contacts (for the walk of `export_actions`)."""
    org = (Contact.org_id + 0) if by_supporter else Contact.org_id
    query = (
        select(*columns)
        .select_from(Action)
        .join(Supporter, Supporter.id == Action.supporter_id)
        .join(Contact, (Contact.supporter_id == Supporter.id) & (org == org_id))
    )
    if criteria.fingerprint is not None:
        # GDPR lookup: whatever the consent and processing state
        query = query.where(Supporter.fingerprint == criteria.fingerprint)
    else:
        query = query.where(
            Supporter.processing_status == SupporterProcessingStatus.ACCEPTED,
            Action.processing_status.in_(PROCESSED),
        )
        if criteria.only_opt_in:
            query = query.where(Contact.communication_consent.is_(True))
        if criteria.only_double_opt_in:
            query = query.where(Supporter.email_status == EmailStatus.DOUBLE_OPT_IN)
    if criteria.campaign_id is not None:
        query = query.where(Action.campaign_id == criteria.campaign_id)
    if criteria.campaign_name is not None:
        query = query.join(Campaign, Campaign.id == Action.campaign_id).where(
            Campaign.name == criteria.campaign_name
        )
    if not criteria.include_testing:
        query = query.where(Action.testing.is_(False))
    if criteria.with_consent_only:
        query = query.where(Action.with_consent.is_(True))
    if criteria.start is not None:
        query = query.where(Action.id >= criteria.start)
    if criteria.after is not None:
        query = query.where(Action.inserted_at >= criteria.after)
    return query


# What an exported action answers (action/types.py): plain rows, not model objects, since an
# answer may hold thousands of them
EXPORTED = (
    Action.id.label("action_id"),
    Action.inserted_at.label("created_at"),
    Action.action_type,
    Action.fields,
    Action.with_consent,
    Action.campaign_id,
    Action.action_page_id,
    Action.source_id,
    Supporter.fingerprint,
    Supporter.dupe_rank,
    Supporter.email_status,
    Supporter.email_status_changed,
    Contact.payload,
    Contact.crypto_nonce,
    Contact.public_key_id,
    Contact.sign_key_id,
    Contact.communication_consent,
    Contact.inserted_at.label("given_at"),
)


# actions walked in id order before the export asks PostgreSQL's planner for the rest, per
# action asked for
WALK_PER_ROW = 20
# The walk's settings, for its one statement: no sort (see export_actions), and no JIT: on a
# large database the planner's cost for the walk passes `jit_above_cost`, and compiling the
# plan took 13 ms of a 37 ms walk with 10 M actions stored (docs/benchmarks.md (13))
_WALK = (text("SET LOCAL enable_sort = off"), text("SET LOCAL jit = off"))
_WALK_DONE = (text("SET LOCAL enable_sort TO DEFAULT"), text("SET LOCAL jit TO DEFAULT"))


async def export_actions(
    session: AsyncSession, org: Org, criteria: ExportFilter
) -> Sequence[Row[Any]]:
    """The actions of an export (rows of `EXPORTED`), in id order, at most `limit`.

    On PostgreSQL a page first walks the actions in id order from `start`, probing each one's
    supporter and the org's contact, over at most WALK_PER_ROW * limit action ids: for a
    client paging through an org whose actions are close together (a sync client, an org
    with a busy campaign) that is the page's cost whatever the tables hold. Left alone, the
    planner may read every contact of the org and sort them to keep the first `limit` — each
    page then costs the size of the org, and it chooses that whenever its statistics say the
    org has few contacts (an org that grew since the last ANALYZE): docs/benchmarks.md (12).
    Whatever the walk leaves (an org whose actions are far apart) goes to the planner, from
    where the walk stopped: the rows are those of the one query in any case."""
    limit = max(0, criteria.limit if criteria.limit is not None else DEFAULT_LIMIT)
    if limit == 0 or criteria.fingerprint is not None or not is_postgres(session):
        query = scoped(org.id, criteria, *EXPORTED).order_by(Action.id)
        rows: Sequence[Row[Any]] = (await session.execute(query.limit(limit))).all()
        return rows
    query = scoped(org.id, criteria, *EXPORTED, by_supporter=True).order_by(Action.id)
    low = criteria.start if criteria.start is not None else 0
    high = low + WALK_PER_ROW * limit
    # without a sort, and without the org's index on the contacts (`by_supporter`), the only
    # plan is the walk: actions by primary key, each one's supporter and contact by index
    # (a failure rolls the transaction back, and the setting with it)
    for setting in _WALK:
        await session.execute(setting)
    walked: Sequence[Row[Any]] = (
        await session.execute(query.where(Action.id < high).limit(limit))
    ).all()
    for setting in _WALK_DONE:
        await session.execute(setting)
    if len(walked) == limit:
        return walked
    rest = scoped(org.id, replace(criteria, start=high), *EXPORTED)
    more = (await session.execute(rest.order_by(Action.id).limit(limit - len(walked)))).all()
    return [*walked, *more]


# What the exported actions refer to, for all the actions of an answer at once (types.py);
# the ids go in slices, as a database takes a bounded number of parameters in a statement
# and `limit` is the client's
IDS_PER_STATEMENT = 5000


async def _by_ids(
    session: AsyncSession, model: Any, column: Any, ids: Collection[int]
) -> list[Any]:
    ordered = sorted(ids)
    found: list[Any] = []
    for at in range(0, len(ordered), IDS_PER_STATEMENT):
        part = ordered[at : at + IDS_PER_STATEMENT]
        found += (await session.scalars(select(model).where(column.in_(part)))).all()
    return found


async def list_keys_by_id(session: AsyncSession, ids: Collection[int]) -> list[PublicKey]:
    return await _by_ids(session, PublicKey, PublicKey.id, ids)


async def list_sources_by_id(session: AsyncSession, ids: Collection[int]) -> list[Source]:
    return await _by_ids(session, Source, Source.id, ids)


async def list_donations(session: AsyncSession, action_ids: Collection[int]) -> list[Donation]:
    """The actions' donations, oldest first."""
    found: list[Donation] = await _by_ids(session, Donation, Donation.action_id, action_ids)
    return sorted(found, key=lambda d: d.id)


async def list_campaigns_by_id(session: AsyncSession, ids: Collection[int]) -> list[Campaign]:
    return await _by_ids(session, Campaign, Campaign.id, ids)


async def list_pages_by_id(session: AsyncSession, ids: Collection[int]) -> list[ActionPage]:
    return await _by_ids(session, ActionPage, ActionPage.id, ids)


async def delete_contact(session: AsyncSession, org: Org, fingerprint: bytes) -> int:
    """Erase the org's copies of a person: clear the cleartext of accepted supporters on the
    org's campaigns, and delete the org's contact rows. Actions stay, anonymous. The number of
    contact rows deleted."""
    led = select(Campaign.id).where(Campaign.org_id == org.id)
    await session.execute(
        update(Supporter)
        .where(
            Supporter.fingerprint == fingerprint,
            Supporter.campaign_id.in_(led),
            Supporter.processing_status == SupporterProcessingStatus.ACCEPTED,
        )
        .values(first_name=None, last_name=None, email=None, address=None)
    )
    same_person = select(Supporter.id).where(Supporter.fingerprint == fingerprint)
    deleted = await session.execute(
        delete(Contact).where(Contact.org_id == org.id, Contact.supporter_id.in_(same_person))
    )
    await session.flush()
    return int(getattr(deleted, "rowcount", 0) or 0)
