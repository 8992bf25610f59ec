"""The signature lane (action/lane.py) stores and answers exactly what the general path does,
takes only the requests it may, and hands its actions to the pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nacl.public import Box
from nacl.public import PublicKey as NaclPublicKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action.lane import SignatureLane
from proca_server.app_state import state_of
from proca_server.models import Action, ActionPage, Contact
from proca_server.org.service import ensure_instance_org
from tests.factories import make_key, make_org, make_page, make_world
from tests.widget_helpers import (
    ADD_ACTION_CONTACT,
    COUNT,
    NO_STORAGE,
    letter,
    mtt_world,
    signature,
    stored_rows,
    warm_up,
    widget_post,
)

ALIASED = """mutation Sign($v: ContactInput!, $page: Int!, $action: ActionInput!,
  $privacy: ConsentInput!) {
  sig: addActionContact(actionPageId: $page, contact: $v, action: $action, privacy: $privacy) {
    __typename ref: contactRef firstName
  }
}"""


class World:
    def __init__(self, page: int, partner_page: int, campaign: int) -> None:
        self.page, self.partner_page, self.campaign = page, partner_page, campaign


async def make_coalition(session: AsyncSession) -> tuple[World, Any, Any]:
    """A campaign with the lead org's page and a partner's page that delivers to the lead;
    both orgs have keys, and the instance org its sign key."""
    instance = await ensure_instance_org(session, "instance")
    world = await make_world(session, roles=())
    partner = await make_org(session)
    _, partner_private = await make_key(session, partner)
    partner_page = await make_page(session, world.campaign, partner)
    partner_page.delivery = True
    await session.commit()
    ids = World(world.page.id, partner_page.id, world.campaign.id)
    keys = {world.org.id: world.private_key, partner.id: partner_private}
    return ids, keys, NaclPublicKey(instance.key.public)


def lane_cases(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    """Requests the lane takes once the caches are warm."""
    return [
        ("addActionContact", ADD_ACTION_CONTACT, signature(w.page, "one@example.org")),
        ("addActionContact", ADD_ACTION_CONTACT, signature(
            w.page, "two@example.org",
            action={"actionType": "register", "testing": True,
                    "fields": [{"key": "a", "value": "1"}]},
            privacy={"optIn": False},
        )),
        ("Sign", ALIASED, aliased(w.page, "Three@Example.org")),
        ("addActionContact", ADD_ACTION_CONTACT, signature(
            w.partner_page, "four@example.org", privacy={"optIn": True, "leadOptIn": True}
        )),
        ("addActionContact", ADD_ACTION_CONTACT, signature(w.page, "ONE@example.org")),
    ]  # fmt: skip


def aliased(page: int, email: str) -> dict[str, Any]:
    return {
        "page": page, "action": {"actionType": "petition"},
        "v": {"first_name": "Zoë", "email": email}, "privacy": {"opt_in": None},
    }  # fmt: skip


def general_cases(w: World) -> list[tuple[str, str, dict[str, Any], dict[str, str]]]:
    """Requests the lane must leave to the general path (each with its extra headers)."""
    return [
        # earlier anonymous actions to link
        ("addActionContact", ADD_ACTION_CONTACT,
         signature(w.page, "five@example.org", contactRef="AAAA"), {}),
        # idempotency keys are the general path's
        ("addActionContact", ADD_ACTION_CONTACT, signature(w.page, "six@example.org"),
         {"Idempotency-Key": f"k-{w.campaign}"}),
        # errors
        ("addActionContact", ADD_ACTION_CONTACT, signature(
            w.page, "seven@example.org",
            contact={"firstName": "Eve", "email": "not an email"}), {}),
        ("addActionContact", ADD_ACTION_CONTACT, signature(987_654, "eight@example.org"), {}),
        ("addActionContact", ADD_ACTION_CONTACT, signature(
            w.page, "nine@example.org", action={"actionType": "bad type!"}), {}),
        ("addActionContact", ADD_ACTION_CONTACT, {"actionPage": "x"}, {}),
    ]  # fmt: skip


async def run(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> dict[str, Any]:
    world, keys, sign_public = await make_coalition(session)
    await warm_up(client, world.page, "warm@example.org")
    await warm_up(client, world.partner_page, "warm2@example.org")
    for _ in range(2):  # no tracking: its source is the Referer's, another row to cache
        await widget_post(client, "Sign", ALIASED, aliased(world.page, "warm3@example.org"))
    taken = lane.answered
    answers = []
    for op, query, variables in lane_cases(world):
        answers.append(await widget_post(client, op, query, variables))
    by_lane = lane.answered - taken
    for op, query, variables, headers in general_cases(world):
        answers.append(await widget_post(client, op, query, variables, headers=headers))
    assert lane.answered - taken == by_lane, "the lane took a request it must leave"
    return {
        "answers": answers,
        "by_lane": by_lane,
        "rows": await stored(session, world.campaign, keys, sign_public),
    }


async def stored(
    session: AsyncSession, campaign: int, keys: dict[int, Any], sign_public: NaclPublicKey
) -> dict[str, Any]:
    supporters, actions, contacts = await stored_rows(session, campaign)

    def opened(c: Contact) -> Any:
        assert c.crypto_nonce is not None, "every org here has a key: the copy is sealed"
        box = Box(keys[c.org_id], sign_public)
        return json.loads(box.decrypt(c.payload, c.crypto_nonce))

    return {
        "supporters": [
            (s.fingerprint, s.first_name, s.last_name, s.email, s.address, s.area, s.source_id
             is not None, s.inserted_at is not None, s.action_page_id in (None, 0))
            for s in supporters
        ],
        "actions": [
            (a.action_type, a.fields, a.testing, a.with_consent, a.ref, a.supporter_id is not None,
             None if src is None else (src.source, src.medium, src.campaign, src.location))
            for a, src in actions
        ],
        "contacts": [
            (opened(c), c.org_id in keys, c.communication_consent, c.delivery_consent,
             c.communication_scopes, c.public_key_id is not None, c.sign_key_id is not None)
            for c in contacts
        ],
    }  # fmt: skip


async def test_the_lane_and_the_general_path_answer_and_store_the_same(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    through_lane = await run(client, session, lane)
    lane.enabled = False
    general = await run(client, session, lane)
    assert through_lane["by_lane"] == len(lane_cases(World(0, 0, 0)))
    assert general["by_lane"] == 0
    assert through_lane["answers"] == general["answers"]
    for kind in ("supporters", "actions", "contacts"):
        assert through_lane["rows"][kind] == general["rows"][kind], kind
    answers = through_lane["answers"]
    assert answers[2] == {
        "data": {"sig": {"__typename": "ContactReference", "ref": answers[2]["data"]["sig"]["ref"],
                         "firstName": "Zoë"}}
    }  # fmt: skip
    assert (
        answers[0]["data"]["addActionContact"]["contactRef"]
        == (answers[4]["data"]["addActionContact"]["contactRef"])
    )  # the same person, whatever the case of the address
    errors = [a for a in answers if "errors" in a]
    assert len(errors) == 4
    assert ["addActionContact", "email"] in [e["errors"][0].get("path") for e in errors]
    missing = errors[1]["errors"][0]  # the unknown page
    assert missing["message"] == "action_page_id: Cannot find Action Page with id=987654"
    assert missing["path"] == ["addActionContact"]
    assert missing["extensions"]["code"] == "not_found"
    rows = through_lane["rows"]
    # 6 warm-up + 5 lane + 2 general signatures; the one on the partner's page with the lead
    # org's consent gave the lead org a copy too
    assert len(rows["actions"]) == 13
    assert len(rows["contacts"]) == 13 + 1
    assert sorted(c[3] for c in rows["contacts"]).count(False) == 1  # the lead's: no delivery


async def test_lane_signatures_are_counted_once_per_person_under_concurrency(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    world = await make_world(session, roles=())
    page, campaign = world.page.id, world.campaign.id
    await session.commit()
    await warm_up(client, page, "warm@example.org")
    taken = lane.answered
    emails = [f"p{i % 20}@example.org" for i in range(60)]
    answers = await asyncio.gather(
        *(
            widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page, e))
            for e in emails
        )
    )
    assert all("errors" not in a for a in answers)
    assert lane.answered - taken == 60
    await session.rollback()
    actions = await session.scalar(
        select(func.count()).select_from(Action).where(Action.campaign_id == campaign)
    )
    assert actions == 62
    count = await widget_post(client, "getCount", COUNT, {"actionPage": page}, referer=None)
    stats = count["data"]["actionPage"]["campaign"]["stats"]
    assert stats["supporterCount"] == 21  # 20 people and the warm-up's


async def test_lane_answers_carry_cors_headers_and_reach_the_pipeline(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    await session.commit()
    await warm_up(client, page, "warm@example.org")

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[Sequence[int]] = []

        async def after_commit(self, publications: Sequence[Any], ids: Sequence[int]) -> None:
            assert not publications
            self.calls.append(list(ids))

    recorder = Recorder()
    previous = state_of(app).pipeline
    state_of(app).pipeline = recorder
    try:
        taken = lane.answered
        response = await client.post(
            f"/api?id={page}",
            content=json.dumps(
                {"query": ADD_ACTION_CONTACT, "variables": signature(page, "c@example.org")}
            ),
            headers={
                "Content-Type": "application/json",
                "Origin": "https://campaign.example.org",
                # as the warm-up's, so that the sources row is a cached one
                "Referer": "https://campaign.example.org/sign?utm_source=x",
            },
        )
    finally:
        state_of(app).pipeline = previous
    assert response.status_code == 200 and lane.answered == taken + 1
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    await session.rollback()
    newest = await session.scalar(select(func.max(Action.id)))
    assert recorder.calls == [[newest]]


async def test_a_cache_miss_is_filled_on_the_lane_and_a_deleted_page_goes_the_general_way(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    other = (await make_page(session, world.campaign, world.org)).id
    await session.commit()
    await warm_up(client, page, "warm@example.org")
    lane.page_cache.clear()
    taken = lane.answered
    body = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, signature(page, "x@example.org")
    )
    # the page and its sources row are loaded again, and the lane answers
    assert "errors" not in body and lane.answered == taken + 1
    # a refused signature caches the other page without writing anything; then the page is
    # deleted while this process still has it cached: the lane's statement is refused,
    # nothing is written, and the general path gives the answer
    refused = signature(other, "y@example.org", contact={"firstName": "Y", "email": "nope"})
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, refused)
    assert body["errors"][0]["path"] == ["addActionContact", "email"]
    await session.execute(ActionPage.__table__.delete().where(ActionPage.id == other))
    await session.commit()
    before = await session.scalar(select(func.count()).select_from(Action))
    taken = lane.answered
    body = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, signature(other, "y@example.org")
    )
    assert "errors" in body and body.get("data") is None
    assert lane.answered == taken
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(Action)) == before


@pytest.mark.slow  # waits for its caches to expire
async def test_the_lane_refreshes_its_caches_before_they_expire(
    client: httpx.AsyncClient,
    session: AsyncSession,
    lane: SignatureLane,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from proca_server.action.service import PAGE_CACHE_SIZE
    from proca_server.contact.keyrings import keyring_for
    from proca_server.kit.cache import Cache

    monkeypatch.setattr(lane.page_cache, "pages", Cache(PAGE_CACHE_SIZE, 2.0))
    world = await make_world(session, roles=())
    page = world.page.id
    await session.commit()
    keyring = keyring_for("instance")
    monkeypatch.setattr(keyring, "max_age", 2.0)
    await warm_up(client, page, "warm@example.org")
    taken = lane.answered
    # signatures for three lifetimes of the cached entries: each entry is reloaded in the
    # background once past half its life, so none expires and every one takes the lane
    for i in range(20):
        body = await widget_post(
            client, "addActionContact", ADD_ACTION_CONTACT, signature(page, f"s{i}@example.org")
        )
        assert "errors" not in body
        await asyncio.sleep(0.25)
    assert lane.answered - taken == 20, "an entry expired: a request went the general way"


async def test_without_its_pool_the_lane_leaves_signatures_to_the_general_path(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    await session.commit()
    await warm_up(client, page, "warm@example.org")
    saved = (lane._pool, lane._dsn, lane._pool_retry_at)
    # a database the lane cannot reach (the general path's engine still can)
    lane._pool, lane._dsn, lane._pool_retry_at = None, "postgresql://nobody@127.0.0.1:1/none", 0
    try:
        taken = lane.answered
        for i in range(2):
            body = await widget_post(
                client, "addActionContact", ADD_ACTION_CONTACT, signature(page, f"n{i}@x.org")
            )
            assert "errors" not in body
        assert lane.answered == taken
        assert lane._pool is None and lane._pool_retry_at > 0  # not retried at once
    finally:
        lane._pool, lane._dsn, lane._pool_retry_at = saved
    await session.rollback()
    stored = await session.scalar(
        select(func.count()).select_from(Action).where(Action.campaign_id == world.campaign.id)
    )
    assert stored == 4


async def test_signatures_of_the_same_moment_share_a_commit_and_a_refused_one_fails_alone(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    world = await make_world(session, roles=())
    page, campaign = world.page.id, world.campaign.id
    gone = (await make_page(session, world.campaign, world.org)).id
    await session.commit()
    await warm_up(client, page, "warm@example.org")
    # cache the second page without writing anything, then delete it under the cache: its
    # signatures have the same statement as the first page's, so they share groups with them
    refused = signature(gone, "y@example.org", contact={"firstName": "Y", "email": "nope"})
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, refused)
    assert body["errors"][0]["path"] == ["addActionContact", "email"]
    await session.execute(ActionPage.__table__.delete().where(ActionPage.id == gone))
    await session.commit()
    batcher = lane.batcher
    taken, trips, statements = lane.answered, batcher.round_trips, batcher.statements
    retried = batcher.retried_alone
    requests = [(page, f"g{i}@example.org") for i in range(12)]
    requests[3] = requests[8] = (gone, "lost@example.org")
    window, batcher.window = batcher.window, 0.5  # all twelve in one group
    try:
        answers = await asyncio.gather(
            *(
                widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(p, e))
                for p, e in requests
            )
        )
    finally:
        batcher.window = window
    for (p, _), answer in zip(requests, answers, strict=True):
        if p == gone:
            # nothing written by the lane; the general path answers that the page is gone
            assert answer["data"] is None and "errors" in answer
        else:
            assert "errors" not in answer, answer
            assert answer["data"]["addActionContact"]["firstName"] == "Ann"
    assert lane.answered - taken == 10
    # one group of twelve, refused as a whole (nothing written), then each statement alone
    assert (batcher.round_trips - trips, batcher.statements - statements) == (1, 12)
    assert batcher.retried_alone - retried == 12
    await session.rollback()
    actions = await session.scalar(
        select(func.count()).select_from(Action).where(Action.campaign_id == campaign)
    )
    assert actions == 12  # the warm-up's two and the ten


async def test_mail_to_target_files_are_left_to_the_general_path_which_refuses_them(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    world, targets = await mtt_world(session, bucket=None)
    page = world.page.id
    await warm_up(client, page, "warm@example.org")  # the lane would take a signature now
    answers = []
    for enabled in (True, False):
        lane.enabled = enabled
        taken = lane.answered
        files = letter(page, targets, ["letters/photo.png"], "ann@example.org")
        answers.append(await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, files))
        assert lane.answered == taken
    assert answers[0] == answers[1]
    (error,) = answers[0]["errors"]
    assert (error["message"], error["path"]) == (NO_STORAGE, ["addActionContact", "files"])
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(Action)) == 2  # the warm-up
