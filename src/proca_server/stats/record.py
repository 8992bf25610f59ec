"""The counters' write path, run inside the signature's transaction.

A signature touches only rows of its own person: the upsert of (campaign, fingerprint) says
whether this is the person's first signature in the campaign and which area they leave, the
insert-or-ignore of (campaign, org, fingerprint) whether it is their first for that org; the
resulting change is appended as one `counter_deltas` row. No shared row is updated, so
signatures never wait for each other (only for the same person's concurrent signature).

On PostgreSQL the three writes are one statement (data-modifying CTEs): one round trip."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.stats.counts import sql

_UPSERT_PERSON = """
INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
VALUES (:campaign_id, :fingerprint, :area, NULL, 1)
ON CONFLICT (campaign_id, fingerprint) DO UPDATE
SET prev_area = counter_people.area,
    area = COALESCE(excluded.area, counter_people.area),
    seen = counter_people.seen + 1
RETURNING seen, prev_area, area
"""

_INSERT_ORG_PERSON = """
INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
VALUES (:campaign_id, :org_id, :fingerprint)
ON CONFLICT DO NOTHING
RETURNING 1
"""

INSERT_DELTA = text(
    "INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id, "
    "org_supporters, area, area_supporters, left_area) VALUES (:campaign_id, :action_type, "
    ":actions, :supporters, :org_id, :org_supporters, :area, :area_supporters, :left_area)"
)

# PostgreSQL: the person upsert, the org insert and the delta as data-modifying CTEs, so that
# they run in one statement (one round trip), on their own or inside a bigger write (the
# signature's, action/store.py). `gained`: the person now counts in `area` and did not before;
# `left_area`: they counted there before.
PG_COUNTER_CTES = "".join(
    (
        "person AS (",
        _UPSERT_PERSON,
        "), org_person AS (",
        _INSERT_ORG_PERSON,
        """), change AS (
    SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
           (SELECT count(*) FROM org_person) AS org_supporters,
           CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
                THEN p.area END AS gained,
           CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
                THEN p.prev_area END AS left_area
    FROM person AS p
), delta AS (
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT CAST(:campaign_id AS bigint), CAST(:action_type AS varchar), CAST(:actions AS integer),
       c.supporters, CAST(:org_id AS bigint), c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c
WHERE CAST(:actions AS integer) <> 0 OR c.supporters <> 0 OR c.org_supporters <> 0
   OR c.gained IS NOT NULL OR c.left_area IS NOT NULL
RETURNING 1
)""",
    )
)

_RECORD_PG = sql("WITH ", PG_COUNTER_CTES, " SELECT count(*) FROM delta")


async def record_action(
    session: AsyncSession,
    *,
    campaign_id: int,
    org_id: int,
    action_page_id: int,
    action_type: str,
    fingerprint: bytes | None,
    area: str | None,
    testing: bool,
) -> None:
    """Count a new action (call it in the transaction that inserts it).

    `org_id` owns the action's page. `fingerprint` is None for an action not yet linked to a
    supporter: it counts as an action only, until `record_link`. `area` None keeps the
    person's area. Testing actions are not counted."""
    del action_page_id  # counted per org; the page is the caller's context only
    if testing:
        return
    await _record(session, campaign_id, org_id, action_type, fingerprint, area)


async def record_link(
    session: AsyncSession,
    *,
    campaign_id: int,
    org_id: int,
    fingerprint: bytes,
    area: str | None,
    testing: bool = False,
) -> None:
    """Count the person of an action counted unlinked before (addActionContact with
    contactRef, linkActions): `org_id` owns that action's page, `area` is the supporter's."""
    if testing:
        return
    await _record(session, campaign_id, org_id, None, fingerprint, area)


def delta_params(campaign_id: int, org_id: int, action_type: str | None) -> dict[str, Any]:
    """The bind parameters of a delta row, and of PG_COUNTER_CTES (with `fingerprint` and
    `area` added): one action of `action_type` (None: no action, a link) by a person."""
    return {
        "campaign_id": campaign_id,
        "action_type": action_type,
        "actions": 0 if action_type is None else 1,
        "supporters": 0,
        "org_id": org_id,
        "org_supporters": 0,
        "area": None,
        "area_supporters": 0,
        "left_area": None,
    }


async def _record(
    session: AsyncSession,
    campaign_id: int,
    org_id: int,
    action_type: str | None,
    fingerprint: bytes | None,
    area: str | None,
) -> None:
    delta = delta_params(campaign_id, org_id, action_type)
    if fingerprint is None:
        if action_type is not None:
            await session.execute(INSERT_DELTA, delta)
        return
    keys = {"fingerprint": fingerprint, "area": area}
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        await session.execute(_RECORD_PG, {**delta, **keys})
        return
    person = (await session.execute(text(_UPSERT_PERSON), {**delta, **keys})).one()
    new_org = (await session.execute(text(_INSERT_ORG_PERSON), {**delta, **keys})).first()
    seen, prev_area, now_area = int(person[0]), person[1], person[2]
    delta["supporters"] = 1 if seen == 1 else 0
    delta["org_supporters"] = 0 if new_org is None else 1
    if now_area is not None and prev_area != now_area:
        delta["area"], delta["area_supporters"] = now_area, 1
    if prev_area is not None and prev_area != now_area:
        delta["left_area"] = prev_area
    if any(delta[k] for k in ("actions", "supporters", "org_supporters", "area", "left_area")):
        await session.execute(INSERT_DELTA, delta)
