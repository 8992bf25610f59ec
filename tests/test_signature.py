"""A signature's one owner (action/signature.py): the rule that says which signatures the lane
may take, the input mapped once, the transaction entered once, the statement built once from
the models' tables, and the lane's fallbacks counted and logged."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from graphql import GraphQLInputObjectType
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action import lane as lane_module
from proca_server.action import store
from proca_server.action.lane import FALLBACKS, SignatureLane
from proca_server.action.service import ActionData, DonationInput, MttInput, PageCache
from proca_server.action.signature import (
    PLAIN_ACTION,
    PLAIN_INPUT,
    SignatureInput,
    general_path_reason,
)
from proca_server.action.widget_api import ACTION_FIELDS_READ, ARGUMENTS_READ, signature_input
from proca_server.app_state import state_of
from proca_server.config import Settings
from proca_server.contact.crypto import KeyRing
from proca_server.contact.keyrings import keyring_for
from proca_server.graphql import transactions
from proca_server.graphql.schema import build_schemas
from proca_server.models import Action, Contact, Source, Supporter
from tests.factories import make_world
from tests.widget_helpers import (
    ADD_ACTION_CONTACT,
    generic_resolvers,
    signature,
    warm_up,
    widget_post,
)

__all__ = ["generic_resolvers"]  # the fixture, from tests/widget_helpers.py

PLAIN = SignatureInput(
    page_id=1,
    action=ActionData(action_type="petition", fields={"a": 1}, testing=True),
    contact={"email": "ann@example.org"},
    opt_in=True,
    lead_opt_in=None,
    tracking={"source": "x"},
)


# --- the rule ------------------------------------------------------------------------------------


def test_a_plain_signature_may_take_the_lane(settings: Settings) -> None:
    assert general_path_reason(settings, PLAIN, idempotency_key=False) is None


def test_what_only_the_general_path_does_keeps_a_signature_off_the_lane(
    settings: Settings,
) -> None:
    donation = replace(PLAIN.action, donation=DonationInput(payload={}, amount=100))
    letter = replace(PLAIN.action, mtt=MttInput(targets=["t"]))
    for signature_ in (
        replace(PLAIN, contact_ref="AAAA"),
        replace(PLAIN, action=donation),
        replace(PLAIN, action=letter),
    ):
        assert general_path_reason(settings, signature_, idempotency_key=False) == "input"
    assert general_path_reason(settings, PLAIN, idempotency_key=True) == "idempotency"
    captcha = settings.model_copy(update={"hcaptcha_key": "secret"})
    assert general_path_reason(captcha, PLAIN, idempotency_key=False) == "captcha"


def test_every_part_the_plain_steps_do_not_name_is_the_general_paths(settings: Settings) -> None:
    """Whatever is added to the input later keeps its signatures off the lane until the plain
    steps carry it out: the rule names what is plain, not what is not."""
    others = [f.name for f in fields(SignatureInput) if f.name not in PLAIN_INPUT]
    action_others = [f.name for f in fields(ActionData) if f.name not in PLAIN_ACTION]
    assert others and action_others
    for name in others:
        given = replace(PLAIN, **dict[str, Any]({name: object()}))
        assert general_path_reason(settings, given, idempotency_key=False) == "input", name
    for name in action_others:
        given = replace(PLAIN, action=replace(PLAIN.action, **dict[str, Any]({name: object()})))
        assert general_path_reason(settings, given, idempotency_key=False) == "input", name


# --- the input, mapped once ----------------------------------------------------------------------


def arguments(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "actionPageId": 7,
        "action": {"actionType": "petition", "customFields": {"a": 1}, "fields": []},
        "contact": {"firstName": "Ann", "address": {"streetNumber": "1"}},
        "privacy": {"optIn": True},
    }
    args.update(over)
    return args


def test_the_coerced_arguments_are_mapped_to_the_steps_input() -> None:
    mapped = signature_input(arguments(contactRef=None, tracking={"source": "x"}))
    assert mapped is not None
    assert (mapped.page_id, mapped.opt_in, mapped.lead_opt_in, mapped.contact_ref) == (
        7,
        True,
        None,
        None,
    )
    assert mapped.action == ActionData("petition", {"a": 1}, False)
    assert mapped.contact["first_name"] == "Ann"
    assert mapped.contact["address"]["street_number"] == "1"
    assert mapped.tracking == {
        "source": "x", "medium": None, "campaign": None, "content": None, "location": None
    }  # fmt: skip


def test_what_the_mapping_does_not_read_goes_to_the_typed_input() -> None:
    """A coerced ActionInput holds every field of the schema's (null when not given): any one
    the mapping does not read, given, sends the signature to the typed input, and so off the
    lane; a field added to the schema later included."""
    core = build_schemas().core
    action_input = core.type_map["ActionInput"]
    assert isinstance(action_input, GraphQLInputObjectType)
    action_fields = action_input.fields
    nulls = dict.fromkeys(action_fields)
    assert signature_input(arguments(action={**nulls, "actionType": "donate"})) is not None
    unread = [name for name in action_fields if name not in ACTION_FIELDS_READ]
    assert sorted(unread) == ["donation", "mtt"]
    for name in unread:
        given = {**nulls, "actionType": "donate", name: {"any": 1}}
        assert signature_input(arguments(action=given)) is None, name
    assert core.mutation_type is not None
    for name in core.mutation_type.fields["addActionContact"].args:
        if name not in ARGUMENTS_READ:
            assert signature_input(arguments(**{name: 1})) is None, name


# --- the general path: one transaction ---------------------------------------------------------


@pytest.fixture
def general_path(app: FastAPI) -> Iterator[None]:
    lane: SignatureLane = state_of(app).signature_lane
    enabled, lane.enabled = lane.enabled, False
    yield
    lane.enabled = enabled


@pytest.mark.parametrize("resolvers", ["direct", "generic"])
async def test_a_signature_on_the_general_path_is_one_transaction(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    general_path: None,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    resolvers: str,
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    await session.commit()
    await warm_up(client, page, "warm@example.org")
    if resolvers == "generic":
        request.getfixturevalue("generic_resolvers")
    entered: list[int] = []
    original = transactions.in_own_transaction

    async def counted(context: Any, call: Callable[[], Awaitable[Any]]) -> Any:
        entered.append(1)
        return await original(context, call)

    monkeypatch.setattr(transactions, "in_own_transaction", counted)
    seen: list[str] = []
    engine = state_of(app).engine.sync_engine
    listeners = {
        name: (lambda *_, name=name: seen.append(name)) for name in ("begin", "commit", "rollback")
    }
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    try:
        body = await widget_post(
            client, "addActionContact", ADD_ACTION_CONTACT, signature(page, "one@example.org")
        )
    finally:
        for name, listener in listeners.items():
            event.remove(engine, name, listener)
    assert body["data"]["addActionContact"]["firstName"] == "Ann"
    assert entered == [1]
    assert seen == ["begin", "commit"]


# --- the store ---------------------------------------------------------------------------------


def test_the_statement_is_compiled_once_per_shape() -> None:
    now = datetime.now(UTC)
    supporter = store.SupporterRow(b"f", 1, 2, None)
    contact = store.ContactRow(1, b"p", None, None, None, None, True)
    action = store.ActionRow("petition", {}, False, 1, 2, None, True)
    first, _ = store.pg_signature(supporter, [contact], action, store.Counted(1, None), now)
    again, arguments_ = store.pg_signature(supporter, [contact], action, None, now)
    same, _ = store.pg_signature(supporter, [contact], action, None, now)
    assert again is same and first is not again
    assert "counter_people" in first and "counter_people" not in again
    for table in ("supporters", "contacts", "actions"):
        assert f"INSERT INTO {table} (" in again
    assert ["email"] in arguments_ and b"p" in arguments_


async def test_a_signature_without_contacts_is_stored_as_one(session: AsyncSession) -> None:
    world = await make_world(session, roles=())
    await session.commit()
    supporter = store.SupporterRow(b"nobody", world.campaign.id, world.page.id, None, area="AT")
    action = store.ActionRow(
        "petition", {"k": "v"}, False, world.campaign.id, world.page.id, None, True
    )
    counted = store.Counted(world.org.id, "AT")
    supporter_id, action_id = await store.insert_signature(
        session, supporter, [], action, counted, datetime.now(UTC)
    )
    await session.commit()
    stored = await session.get(Action, action_id)
    assert stored is not None and stored.supporter_id == supporter_id
    assert stored.fields == {"k": "v"} and stored.with_consent
    assert (await session.get(Supporter, supporter_id)) is not None
    contacts = select(func.count()).select_from(Contact).where(Contact.supporter_id == supporter_id)
    assert await session.scalar(contacts) == 0


# --- the lane's fallbacks, counted and logged ----------------------------------------------------


async def lane_metrics(client: httpx.AsyncClient) -> dict[str, float]:
    """The lane's counters as /metrics serves them: each fallback reason, and `answered`."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "proca_signature_lane_fallbacks_total":
                out[sample.labels["reason"]] = sample.value
            elif sample.name == "proca_signature_lane_answered_total":
                out["answered"] = sample.value
    return out


def changed(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The lane's counters that moved between two readings, by how much."""
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k)}


OTHER_SHAPE = """fragment Ref on ContactReference { contactRef }
mutation addActionContact($action: ActionInput!, $actionPage: Int!, $contact: ContactInput!,
  $privacy: ConsentInput!, $tracking: TrackingInput) {
  addActionContact(actionPageId: $actionPage, action: $action, contact: $contact,
    privacy: $privacy, tracking: $tracking) { ...Ref }
}"""


async def test_each_fallback_is_counted_by_its_reason_and_each_answer_too(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    await session.commit()
    await warm_up(client, page, "warm@example.org")
    donation = {
        "actionType": "donate",
        "donation": {"payload": json.dumps({"id": "x"}), "amount": 500, "currency": "EUR"},
    }
    cases: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
        ("answered", ADD_ACTION_CONTACT, signature(page, "a@example.org"), {}),
        ("input", ADD_ACTION_CONTACT, signature(page, "b@example.org", contactRef="AAAA"), {}),
        ("input", ADD_ACTION_CONTACT, signature(page, "c@example.org", action=donation), {}),
        ("idempotency", ADD_ACTION_CONTACT, signature(page, "d@example.org"),
         {"Idempotency-Key": f"key-{page}"}),
        ("invalid", ADD_ACTION_CONTACT,
         signature(page, "e@example.org", contact={"firstName": "E", "email": "nope"}), {}),
        ("cache", ADD_ACTION_CONTACT, signature(987_654, "f@example.org"), {}),
        ("document", OTHER_SHAPE, signature(page, "g@example.org"), {}),
    ]  # fmt: skip
    for reason, query, variables, headers in cases:
        before = await lane_metrics(client)
        await widget_post(client, "addActionContact", query, variables, headers=headers)
        moved = changed(before, await lane_metrics(client))
        assert moved == {reason: 1.0}, (reason, moved)
    assert set(FALLBACKS) <= set(await lane_metrics(client)), "every reason is exported"


def counting(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, delay: float = 0.0
) -> list[Any]:
    """Count (and optionally slow down) calls of the async method `owner.name`."""
    calls: list[Any] = []
    original = getattr(owner, name)

    async def counted(self: Any, session: AsyncSession, key: Any) -> Any:
        calls.append(key)
        await asyncio.sleep(delay)
        return await original(self, session, key)

    monkeypatch.setattr(owner, name, counted)
    return calls


async def expired_page(app: FastAPI, client: httpx.AsyncClient, session: AsyncSession) -> int:
    """A page signed on before, whose snapshot has since expired from this process's cache."""
    world = await make_world(session, roles=())
    page = world.page.id
    await session.commit()
    await warm_up(client, page, "warm@example.org")
    state_of(app).page_cache.pages.clear()
    return page


async def test_a_burst_on_cold_caches_loads_each_entry_once_and_stays_on_the_lane(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    lane: SignatureLane,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first burst after a quiet spell (the page snapshot expired) or with new tracking:
    each missing entry is loaded once for all, and every signature is the lane's."""
    page = await expired_page(app, client, session)
    keyring_for(state_of(app).settings.org_name).invalidate()
    pages = counting(monkeypatch, PageCache, "reload_page", delay=0.05)
    sources = counting(monkeypatch, PageCache, "fill_source", delay=0.05)
    keys = counting(monkeypatch, KeyRing, "refresh", delay=0.05)
    tracking = {**signature(page)["tracking"], "campaign": f"burst-{page}"}  # new tracking
    before, taken = await lane_metrics(client), lane.answered
    caplog.set_level(logging.INFO, logger="proca_server.action.lane")
    bodies = await asyncio.gather(
        *(
            widget_post(client, "addActionContact", ADD_ACTION_CONTACT,
                        signature(page, f"burst{n}@example.org", tracking=tracking))
            for n in range(30)
        )
    )  # fmt: skip
    assert all(b["data"]["addActionContact"]["firstName"] == "Ann" for b in bodies)
    assert lane.answered - taken == 30
    assert changed(before, await lane_metrics(client)) == {"answered": 30.0}
    assert (pages, len(keys), len(sources)) == ([page], 1, 1)
    assert not [r for r in caplog.records if r.name == lane_module.__name__]
    # one sources row for the new tracking, shared by the 30 actions
    await session.rollback()
    rows = await session.execute(
        select(Action.source_id, func.count())
        .join(Supporter, Supporter.id == Action.supporter_id)
        .where(Supporter.email.like("burst%"))
        .group_by(Action.source_id)
    )
    [(source_id, count)] = rows.all()
    assert count == 30
    stored = await session.get(Source, source_id)
    assert stored is not None and stored.campaign == f"burst-{page}"


async def test_a_load_slower_than_the_wait_leaves_the_signature_to_the_general_path(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    lane: SignatureLane,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = await expired_page(app, client, session)
    monkeypatch.setattr(lane_module, "FILL_WAIT", 0.05)
    pages = counting(monkeypatch, PageCache, "reload_page", delay=1.0)
    before = await lane_metrics(client)
    body = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, signature(page, "slow@example.org")
    )
    assert body["data"]["addActionContact"]["firstName"] == "Ann", "the general path's"
    after = await lane_metrics(client)
    assert after["cache"] - before.get("cache", 0.0) == 1
    assert after["answered"] == before["answered"]
    assert pages == [page, page]  # the lane's load, then the general path's own


async def test_a_bug_in_the_lane_is_counted_and_logged_once_without_the_input(
    client: httpx.AsyncClient,
    session: AsyncSession,
    lane: SignatureLane,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    await session.commit()
    await warm_up(client, page, "warm@example.org")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot take secret.person@example.org")

    monkeypatch.setattr(lane_module, "plain_statement", broken)
    before, taken = await lane_metrics(client), lane.answered
    caplog.set_level(logging.DEBUG, logger="proca_server.action.lane")
    for n in range(3):
        email = f"secret.person{n}@example.org"
        body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT,
                                 signature(page, email))  # fmt: skip
        assert body["data"]["addActionContact"]["firstName"] == "Ann", "the general path's"
    after = await lane_metrics(client)
    assert after["error"] - before.get("error", 0.0) == 3
    assert lane.answered == taken
    lane_records = [r for r in caplog.records if r.name == lane_module.__name__]
    warnings = [r for r in lane_records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, "once a minute per exception type"
    message = warnings[0].getMessage()
    assert "RuntimeError" in message and "lane" in message
    assert warnings[0].exc_info is None
    for record in caplog.records:
        assert "secret.person" not in record.getMessage()
