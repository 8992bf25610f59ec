"""Planning and applying processing: stages, dupe rank and repeat, transient fields, the
sweeper's selection and requeue."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import utcnow
from proca_server.models import Action, Campaign, Mtt, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.processing.service import (
    RequeueDestination,
    find_unprocessed,
    plan_processing,
    select_requeue,
)
from proca_server.processing.transition import Stage
from tests.processing.helpers import (
    action_ids,
    body,
    load,
    make_site,
    process,
    share,
    sign,
)


async def statuses(session: AsyncSession) -> list[tuple[A, S | None, int | None]]:
    await session.rollback()
    rows = await session.execute(
        select(Action.processing_status, Supporter.processing_status, Supporter.dupe_rank)
        .outerjoin(Supporter, Supporter.id == Action.supporter_id)
        .order_by(Action.id)
    )
    return [(a, s, r) for a, s, r in rows.all()]


async def test_default_flow_delivers_and_clears_transient_fields(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    await sign(client, site.page_id)
    [plan] = await process(session, await action_ids(session))
    assert plan.stage is Stage.DELIVER and plan.dupe_rank == 0
    [pub] = plan.publications
    assert (pub.exchange, pub.routing_key) == (
        f"org.{site.org_id}.deliver",
        f"petition.{site.campaign_name}",
    )
    assert body(pub.body)["contact"]["email"] == "ann@example.org"  # sent before clearing
    assert await statuses(session) == [(A.DELIVERED, S.ACCEPTED, 0)]
    supporter = (await session.execute(select(Supporter))).scalar_one()
    # default: first name kept, email/last name/address cleared
    assert (supporter.first_name, supporter.email, supporter.area) == ("Ann", None, "FR")
    # processed: a second run has nothing to do
    assert await process(session, await action_ids(session)) == []


async def test_high_security_clears_names_and_mtt_campaign_keeps_them(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    secure = await make_site(session, org_fields={"high_security": True})
    mtt = await make_site(session)
    now = utcnow()
    session.add(Mtt(campaign_id=mtt.campaign_id, start_at=now, end_at=now + timedelta(days=1)))
    await session.commit()
    await sign(client, secure.page_id, "s@example.org")
    await sign(client, mtt.page_id, "m@example.org")
    await process(session, await action_ids(session))
    rows = (
        await session.execute(
            select(Supporter.first_name, Supporter.last_name, Supporter.email).order_by(
                Supporter.id
            )
        )
    ).all()
    assert [tuple(r) for r in rows] == [(None, None, None), ("Ann", "Lee", "m@example.org")]


async def test_transient_custom_fields_are_removed_at_delivery(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    campaign = await session.get(Campaign, site.campaign_id)
    assert campaign is not None
    campaign.transient_actions = ["petition:comment", "share:comment"]
    await session.commit()
    await sign(
        client,
        site.page_id,
        action={"actionType": "petition", "customFields": '{"comment": "x", "keep": 1}'},
    )
    [plan] = await process(session, await action_ids(session))
    assert body(plan.publications[0].body)["action"]["customFields"] == {"comment": "x", "keep": 1}
    action = (await session.execute(select(Action))).scalar_one()
    assert action.fields == {"keep": 1}


async def test_supporter_confirm_then_action_confirm_stages(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    asks = await make_site(session, org_fields={"supporter_confirm": True})
    moderates = await make_site(session, org_fields={"custom_action_confirm": True})
    overridden = await make_site(
        session,
        org_fields={"supporter_confirm": True},
        campaign_fields={"supporter_confirm": False},
    )
    for site in (asks, moderates, overridden):
        await sign(client, site.page_id)
    plans = await process(session, await action_ids(session))
    assert [p.stage for p in plans] == [
        Stage.SUPPORTER_CONFIRM,
        Stage.ACTION_CONFIRM,
        Stage.DELIVER,
    ]
    assert [p.publications[0].exchange for p in plans] == [
        f"org.{asks.org_id}.confirm.supporter",
        f"org.{moderates.org_id}.confirm.action",
        f"org.{overridden.org_id}.deliver",
    ]
    assert body(plans[0].publications[0].body)["stage"] == "supporter_confirm"
    assert await statuses(session) == [
        (A.NEW, S.CONFIRMING, 0),
        (A.CONFIRMING, S.ACCEPTED, 0),
        (A.DELIVERED, S.ACCEPTED, 0),
    ]
    supporters = (await session.execute(select(Supporter.email).order_by(Supporter.id))).all()
    # not delivered yet: the confirm email still needs the address
    assert [s.email for s in supporters] == ["ann@example.org", "ann@example.org", None]


async def test_same_page_duplicate_is_repeat_other_page_is_ranked(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    other_page = await make_site(session, lead=site)
    await sign(client, site.page_id)
    await process(session, await action_ids(session))
    await sign(client, site.page_id)  # same person, same page
    await sign(client, other_page.page_id)  # same person, another page of the campaign
    plans = await process(session, await action_ids(session))
    assert [(p.action_status, p.dupe_rank) for p in plans] == [(A.REPEAT, 1), (A.DELIVERED, 2)]
    assert body(plans[0].publications[0].body)["contact"]["dupeRank"] == 1
    assert [s[0] for s in await statuses(session)] == [A.DELIVERED, A.REPEAT, A.DELIVERED]


async def test_duplicates_in_one_batch_are_ranked_in_order(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    await sign(client, site.page_id)
    await sign(client, site.page_id)
    await sign(client, site.page_id, "bob@example.org")
    plans = await process(session, await action_ids(session))
    assert [(p.action_status, p.dupe_rank) for p in plans] == [
        (A.DELIVERED, 0),
        (A.REPEAT, 1),
        (A.DELIVERED, 0),
    ]


async def test_share_waits_for_the_supporter_then_is_delivered(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    ref = await sign(client, site.page_id)
    await share(client, site.page_id, ref)
    consent_id, share_id = await action_ids(session)
    # the share alone does not start the supporter's processing
    assert await process(session, [share_id]) == []
    plans = await process(session, [share_id, consent_id])
    assert [(p.action_id, p.action_status) for p in plans] == [
        (consent_id, A.DELIVERED),
        (share_id, A.DELIVERED),
    ]
    assert [p.publications[0].routing_key.split(".")[0] for p in plans] == ["petition", "share"]


async def test_sweeper_pages_by_id_and_skips_recent_and_finished(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    for n in range(5):
        await sign(client, site.page_id, f"p{n}@example.org")
    ids = await action_ids(session)
    await process(session, ids[:1])  # delivered: not swept
    later = utcnow() + timedelta(seconds=5)
    first = await find_unprocessed(session, after_id=0, older_than=later, limit=2)
    assert first == ids[1:3]
    second = await find_unprocessed(session, after_id=first[-1], older_than=later, limit=2)
    assert second == ids[3:5]
    assert await find_unprocessed(session, after_id=second[-1], older_than=later, limit=2) == []
    # too recent: left to the live pipeline
    earlier = utcnow() - timedelta(minutes=1)
    assert await find_unprocessed(session, after_id=0, older_than=earlier, limit=10) == []
    # accepted actions of accepted supporters are swept too
    await session.rollback()
    action = await session.get(Action, ids[0])
    assert action is not None
    action.processing_status = A.ACCEPTED
    await session.commit()
    assert await find_unprocessed(session, after_id=0, older_than=later, limit=10) == ids


async def test_requeue_selects_repeat_and_counts_bad_stages(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    other = await make_site(session)
    await sign(client, site.page_id)
    await sign(client, site.page_id)  # becomes repeat
    await sign(client, site.page_id, "new@example.org")  # left new: not selected
    await sign(client, other.page_id, "other@example.org")  # no contact for the org
    ids = await action_ids(session)
    await process(session, ids[:2])
    await process(session, ids[3:])

    sel = await select_requeue(session, site.org_id, ids, RequeueDestination.CUSTOM_ACTION_DELIVER)
    assert sel.failed == 0
    assert [q for q, _ in sel.messages] == [f"cus.{site.org_id}.deliver"] * 2
    assert [body(b)["actionId"] for _, b in sel.messages] == ids[:2]
    assert {body(b)["stage"] for _, b in sel.messages} == {"deliver"}

    wrong = await select_requeue(
        session, site.org_id, ids, RequeueDestination.CUSTOM_ACTION_CONFIRM
    )
    assert (wrong.messages, wrong.failed) == ([], 2)
    email = await select_requeue(session, site.org_id, ids, RequeueDestination.EMAIL_SUPPORTER)
    assert [q for q, _ in email.messages] == [f"wrk.{site.org_id}.email.supporter"] * 2


async def test_plan_writes_nothing_until_applied(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    await sign(client, site.page_id)
    plans = await plan_processing(session, await load(session, await action_ids(session)))
    assert len(plans) == 1 and plans[0].publications
    await session.rollback()
    assert await statuses(session) == [(A.NEW, S.NEW, None)]
