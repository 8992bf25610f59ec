"""The widget's mutations answer and store the same through the direct resolvers
(action/widget_api.py) as through Strawberry's generic ones."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action import widget_api
from proca_server.app_state import state_of
from proca_server.models import Action
from tests.factories import make_world
from tests.widget_helpers import (
    ADD_ACTION,
    ADD_ACTION_CONTACT,
    generic_resolvers,
    stored_rows,
    widget_post,
)

__all__ = ["generic_resolvers"]  # the fixture, from tests/widget_helpers.py

MISSING_PAGE = 987_654


def cases(page: int) -> list[tuple[str, str, dict[str, Any]]]:
    contact = {
        "firstName": "Ann",
        "lastName": "Lee",
        "email": "ann@example.org",
        "phone": "+48 600 000 000",
        "address": {
            "country": "pl",
            "postcode": "00-001",
            "locality": "Warszawa",
            "region": "Mazowsze",
            "street": "Prosta",
            "streetNumber": "1",
        },
    }
    action = {
        "actionType": "petition",
        "customFields": json.dumps({"comment": "hi", "n": 3, "tags": ["a", "b"]}),
        "fields": [{"key": "extra", "value": "1"}, {"key": "extra", "value": "2"}],
    }
    tracking = {"source": "newsletter", "medium": "email", "campaign": "spring"}
    sign = "addActionContact"
    return [
        (sign, ADD_ACTION_CONTACT, {
            "actionPage": page, "action": action, "contact": contact,
            "privacy": {"optIn": True, "leadOptIn": False}, "tracking": tracking,
        }),
        (sign, ADD_ACTION_CONTACT, {
            "actionPage": page, "action": {"actionType": "register", "testing": True},
            "contact": {"firstName": "Bob", "email": "bob@example.org"},
            "privacy": {"optIn": False},
        }),
        (sign, ADD_ACTION_CONTACT, {
            "actionPage": page, "action": {"actionType": "register"},
            "contact": {"first_name": "Cy", "email": "cy@example.org"},
            "privacy": {"opt_in": None},
        }),
        ("addAction", ADD_ACTION, {
            "actionPage": page, "contact": "AAAA", "actionType": "share",
            "payload": json.dumps({"channel": "mail"}), "tracking": {"source": "x"},
        }),
        (sign, ADD_ACTION_CONTACT, {
            "actionPage": page, "action": {"actionType": "register"},
            "contact": {"firstName": "Dee", "email": "dee@example.org"},
            "privacy": {"optIn": True}, "contactRef": "AAAA",
        }),
        # errors: each must leave nothing behind, with the same answer
        (sign, ADD_ACTION_CONTACT, {
            "actionPage": page, "action": {"actionType": "register"},
            "contact": {"firstName": "Eve", "email": "not an email"}, "privacy": {"optIn": True},
        }),
        (sign, ADD_ACTION_CONTACT, {
            "actionPage": MISSING_PAGE, "action": {"actionType": "register"},
            "contact": {"firstName": "Eve", "email": "eve@example.org"},
            "privacy": {"optIn": True},
        }),
        (sign, ADD_ACTION_CONTACT, {
            "actionPage": page, "action": {"actionType": "register"},
            "contact": {"firstName": "Eve", "email": "eve@example.org"},
            "privacy": {"optIn": True}, "contactRef": "%%%",
        }),
        (sign, ADD_ACTION_CONTACT, {
            "actionPage": page, "action": {"actionType": "bad type!"},
            "contact": {"firstName": "Eve", "email": "eve@example.org"},
            "privacy": {"optIn": True},
        }),
        ("addAction", ADD_ACTION, {
            "actionPage": page, "contact": "AAAA", "actionType": "share",
            "payload": json.dumps({"nested": {"no": 1}}),
        }),
    ]  # fmt: skip


async def run_all(client: httpx.AsyncClient, session: AsyncSession) -> dict[str, Any]:
    world = await make_world(session, roles=())
    page, campaign = world.page.id, world.campaign.id
    answers = []
    for op, query, variables in cases(page):
        body = await widget_post(client, op, query, variables)
        answers.append(body)
    supporters, actions, contacts = await stored_rows(session, campaign)
    return {
        "answers": answers,
        "supporters": [
            (s.fingerprint, s.first_name, s.last_name, s.email, s.address, s.area)
            for s in supporters
        ],
        "actions": [
            (
                a.action_type,
                a.fields,
                a.testing,
                a.with_consent,
                a.ref,
                a.supporter_id is not None,
                None if src is None else (src.source, src.medium, src.campaign, src.location),
            )
            for a, src in actions
        ],
        "contacts": [
            (
                c.payload,
                c.communication_consent,
                c.delivery_consent,
                c.communication_scopes,
                c.crypto_nonce is None,
            )
            for c in contacts
        ],
    }


async def test_direct_and_generic_resolvers_answer_and_store_the_same(
    client: httpx.AsyncClient, session: AsyncSession, request: pytest.FixtureRequest
) -> None:
    direct = await run_all(client, session)
    request.getfixturevalue("generic_resolvers")
    generic = await run_all(client, session)
    assert direct["answers"] == generic["answers"]
    assert direct["supporters"] == generic["supporters"]
    assert direct["actions"] == generic["actions"]
    assert direct["contacts"] == generic["contacts"]
    # the cases did what they say: 4 signatures and a share (linked by the 4th) stored,
    # the errors nothing
    assert len(direct["supporters"]) == 4 and len(direct["actions"]) == 5
    assert all(a[5] for a in direct["actions"])  # every action has its supporter
    assert direct["actions"][0][1] == {
        "comment": "hi",
        "n": 3,
        "tags": ["a", "b"],
        "extra": ["1", "2"],
    }
    errors = [a for a in direct["answers"] if "errors" in a]
    assert len(errors) == 5
    paths = [e["errors"][0].get("path") for e in errors]
    assert ["addActionContact", "email"] in paths
    # an unknown page and an unreadable contactRef: the mutation alone, as the original
    assert paths.count(["addActionContact"]) == 2


async def test_a_donation_takes_the_generic_path_and_is_stored(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    variables = {
        "actionPage": page,
        "action": {
            "actionType": "donate",
            "donation": {"payload": json.dumps({"id": "x"}), "amount": 500, "currency": "eur"},
        },
        "contact": {"firstName": "Ann", "email": "ann@example.org"},
        "privacy": {"optIn": True},
    }
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    assert "errors" not in body, body
    await session.rollback()
    action = (await session.execute(select(Action))).scalar_one()
    assert action.action_type == "donate"


async def test_signatures_skip_the_generic_argument_conversion(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await make_world(session, roles=())
    # the general path's resolvers (the signature lane would take these signatures)
    monkeypatch.setattr(state_of(app).signature_lane, "enabled", False)

    def generic_only(self: Any) -> Any:
        raise AssertionError("the generic path converted the arguments")

    monkeypatch.setattr(widget_api.ContactInput, "as_dict", generic_only)
    body = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, cases(world.page.id)[1][2]
    )
    assert body["data"]["addActionContact"]["firstName"] == "Bob"
    monkeypatch.setattr(widget_api, "DIRECT_RESOLVERS", False)
    body = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, cases(world.page.id)[1][2]
    )
    assert "errors" in body  # the generic path did go through as_dict
