"""The `actions` (`exportActions`) answer: every field of an exported action, the same number
of statements whatever the number of actions, and fragments."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.action import export
from proca_server.kit import base64url
from proca_server.models import Donation, PublicKey
from proca_server.models.enums import DonationFrequencyUnit, DonationSchema
from tests.export_answers_helpers import EXPORT, owner_token, signed, statements
from tests.graphql_helpers import data, gql
from tests.processing.helpers import action_ids, make_site


async def test_every_field_of_an_exported_action(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)  # an org with an active key: sealed contacts
    token = await owner_token(session, site.org_id)
    await signed(client, session, site, 2)
    first, second = await action_ids(session)
    session.add(
        Donation(
            action_id=second,
            schema=DonationSchema.STRIPE_PAYMENT_INTENT,
            amount=500,
            currency="EUR",
            payload={"paymentIntent": "pi_1"},
            frequency_unit=DonationFrequencyUnit.MONTHLY,
        )
    )
    await session.commit()
    key = (
        await session.execute(select(PublicKey).where(PublicKey.org_id == site.org_id))
    ).scalar_one()

    a, b = data(await gql(client, EXPORT, {"o": site.org_name}, token=token))["exportActions"]
    assert (a["actionId"], b["actionId"]) == (first, second)
    assert a["customFields"] == '{"comment":"hi"}'
    assert a["fields"] == [{"key": "comment", "value": "hi"}]
    assert a["contact"]["publicKey"] == {"id": key.id, "public": base64url.encode(key.public)}
    assert a["contact"]["signKey"]["public"] == base64url.encode(site.sign_public)
    assert a["contact"]["nonce"] is not None and a["contact"]["dupeRank"] == 0
    assert a["privacy"]["optIn"] is True and a["privacy"]["emailStatus"] == "NONE"
    assert a["tracking"] == {
        "source": "newsletter",
        "medium": "email",
        "campaign": "spring",
        "content": "",
    }
    assert a["donation"] is None
    assert b["donation"] == {
        "schema": "STRIPE_PAYMENT_INTENT",
        "amount": 500,
        "currency": "EUR",
        "payload": '{"paymentIntent":"pi_1"}',
        "frequencyUnit": "MONTHLY",
    }
    assert a["campaign"] == b["campaign"] == {"name": site.campaign_name}
    assert a["actionPage"] == {"name": site.page_name}


async def test_an_export_costs_the_same_statements_for_any_number_of_actions(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    site = await make_site(session)
    token = await owner_token(session, site.org_id)
    await signed(client, session, site, 2)
    with statements(engine) as few:
        answer = data(await gql(client, EXPORT, {"o": site.org_name}, token=token))
    assert len(answer["exportActions"]) == 2
    await signed(client, session, site, 4)
    with statements(engine) as more:
        answer = data(await gql(client, EXPORT, {"o": site.org_name}, token=token))
    assert len(answer["exportActions"]) == 6
    assert len(more) == len(few)
    # the actions, and one statement each for keys, sources, donations, campaigns, pages
    assert sum("FROM public_keys" in s for s in more) == 1
    assert sum("FROM donations" in s for s in more) == 1


async def test_fields_selected_through_fragments_are_answered(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    token = await owner_token(session, site.org_id)
    await signed(client, session, site, 1)
    query = """
    query($o: String!) { exportActions(orgName: $o) { ...A ... on Action { tracking { source } } } }
    fragment A on Action { actionId campaign { name } ...Page contact { publicKey { id } } }
    fragment Page on Action { page: actionPage { name } }
    """
    [row] = data(await gql(client, query, {"o": site.org_name}, token=token))["exportActions"]
    assert row["campaign"] == {"name": site.campaign_name}
    assert row["page"] == {"name": site.page_name}
    assert row["tracking"] == {"source": "newsletter"}
    assert row["contact"]["publicKey"]["id"] is not None


async def test_many_ids_go_in_slices_with_the_same_answer(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = await make_site(session)
    token = await owner_token(session, site.org_id)
    await signed(client, session, site, 3)
    for action_id in await action_ids(session):
        session.add(Donation(action_id=action_id, amount=100, currency="EUR", payload={}))
    await session.commit()
    whole = data(await gql(client, EXPORT, {"o": site.org_name}, token=token))["exportActions"]
    monkeypatch.setattr(export, "IDS_PER_STATEMENT", 1)
    sliced = data(await gql(client, EXPORT, {"o": site.org_name}, token=token))["exportActions"]
    assert sliced == whole
    assert [a["donation"]["amount"] for a in sliced] == [100, 100, 100]
