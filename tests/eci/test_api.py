"""The ECI build's HTTP API: /api serves a signature page and nothing else, every signature
needs a captcha, and the staff API is on /private/api for Basic and API-token callers."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from nacl.public import Box
from nacl.public import PublicKey as NaclPublicKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.auth.authenticate import SESSION_COOKIE, sign
from proca_server.config import Settings
from proca_server.models import Action, AuditLog, Campaign, Contact, Org, Supporter
from proca_server.models.enums import ContactSchema
from proca_server.user.service import reset_api_token
from proca_server.web.account_service import create_session_token
from tests.account_helpers import app_settings
from tests.eci.conftest import JWT_SECRET, EciWorld, Verifier
from tests.factories import PASSWORD, make_user

# what the ECI widget sends (snake_case contact keys, the deprecated `fields` list)
ADD_SUPPORT = """mutation addSupport($action: ActionInput!, $contact: ContactInput!,
  $privacy: ConsentInput!, $contactRef: ID, $actionPage: Int!, $tracking: TrackingInput) {
  addActionContact(actionPageId: $actionPage, action: $action, contact: $contact,
    privacy: $privacy, contactRef: $contactRef, tracking: $tracking) { contactRef firstName }
}"""
COUNT = "query getCount($actionPage: Int!) { actionPage(id: $actionPage) { campaign { stats { supporterCount } } } }"  # noqa: E501
CURRENT_USER = "{ currentUser { email } }"
GOOD = {"captcha": "good", "captcha_service": "procaptcha"}


def statement(page_id: int, number: str = "R1234567", **action: Any) -> dict[str, Any]:
    return {
        "actionPage": page_id,
        "action": {"actionType": "register", "fields": [], **action},
        "contact": {
            "first_name": "Alicia",
            "last_name": "Witch Switch",
            "nationality": {
                "country": "AT",
                "documentType": "passport",
                "documentNumber": number,
            },
        },
        "privacy": {"optIn": False},
        # no tracking: a tracking row is cached only once it outlived the signature that
        # inserted it, and the lane takes only what its caches hold
    }


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/api",
) -> httpx.Response:
    body: dict[str, Any] = {"query": query, "variables": variables or {}, "operationName": ""}
    if extensions is not None:
        body["extensions"] = extensions
    return await client.post(
        path,
        content=json.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


async def answer(client: httpx.AsyncClient, query: str, **kwargs: Any) -> dict[str, Any]:
    response = await post(client, query, **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def count(session: AsyncSession, model: type[Any]) -> int:
    await session.rollback()  # a fresh snapshot
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# -- the public schema ------------------------------------------------------------------------


async def test_introspection_is_refused(eci_client: httpx.AsyncClient) -> None:
    for query in (
        "{ __schema { queryType { name } } }",
        '{ __type(name: "RootQueryType") { fields { name } } }',
        "query { actionPage(id: 1) { __typename } __schema { types { name } } }",
    ):
        body = await answer(eci_client, query)
        assert body == {
            "errors": [
                {
                    "message": "Unauthorized",
                    "locations": body["errors"][0]["locations"],
                    "extensions": {"code": "unauthorized"},
                }
            ]
        }, query
    over_get = await eci_client.get("/api", params={"query": "{ __schema { types { name } } }"})
    assert over_get.json()["errors"][0]["message"] == "Unauthorized"
    # the type name of a result is no introspection
    assert await answer(eci_client, "{ __typename }") == {"data": {"__typename": "RootQueryType"}}


async def test_only_the_signature_page_fields_are_served(
    eci_client: httpx.AsyncClient, session: AsyncSession, eci_world: EciWorld
) -> None:
    user = await make_user(session, admin=True)
    token = await reset_api_token(session, user)
    await session.commit()
    refused = {
        CURRENT_USER: "Cannot query field 'currentUser' on type 'RootQueryType'.",
        '{ org(name: "eci-org") { name } }': "Cannot query field 'org' on type 'RootQueryType'.",
        '{ campaign(name: "eci-test") { id } }': (
            "Cannot query field 'campaign' on type 'RootQueryType'."
        ),
        'mutation { addOrg(input: {name: "x", title: "x"}) { name } }': (
            "Cannot query field 'addOrg' on type 'RootMutationType'."
        ),
        'mutation { addAction(actionPageId: 1, contactRef: "x", action: {actionType: "share"})'
        " { contactRef } }": "Cannot query field 'addAction' on type 'RootMutationType'.",
        "mutation { resetApiToken }": (
            "Cannot query field 'resetApiToken' on type 'RootMutationType'."
        ),
    }
    for query, message in refused.items():
        # an admin's token changes nothing: /api reads no credentials
        body = await answer(eci_client, query, headers={"Authorization": f"Bearer {token}"})
        assert "data" not in body, query
        assert body["errors"][0]["message"] == message
    # the page is the public one whoever asks, and bad credentials are no error here
    page = f"{{ actionPage(id: {eci_world.pages['fr']}) {{ __typename name locale }} }}"
    for authorization in (f"Bearer {token}", "Bearer API-nonsense"):
        body = await answer(eci_client, page, headers={"Authorization": authorization})
        assert body == {
            "data": {
                "actionPage": {
                    "__typename": "PublicActionPage",
                    "name": "eci-test/fr",
                    "locale": "fr",
                }
            }
        }
    subscription = await post(eci_client, "subscription { actionPageUpserted { id } }")
    assert subscription.status_code == 400
    assert subscription.json()["errors"][0]["message"] == (
        "Subscriptions are not served by this server"
    )


async def test_only_the_eci_routes_are_served(
    eci_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    assert (await eci_client.get("/health")).json() == {"status": "ok"}
    for path in ("/graphiql", "/users/log_in", "/mailbox", "/socket/websocket", "/link/accept/1"):
        assert (await eci_client.get(path)).status_code == 404, path
    # a browser's GET without a query gets no GraphiQL either
    ide = await eci_client.get("/api", headers={"Accept": "text/html"})
    assert ide.status_code == 400
    # and without ENABLE_ECI there is no /private/api
    assert (await post(client, CURRENT_USER, path="/private/api")).status_code == 404


# -- signatures ---------------------------------------------------------------------------------


async def test_a_signature_without_a_captcha_is_refused_and_nothing_stored(
    eci_client: httpx.AsyncClient,
    eci_app: FastAPI,
    session: AsyncSession,
    eci_world: EciWorld,
    procaptcha: Verifier,
) -> None:
    page = eci_world.pages["at"]
    lane_answered = state_of(eci_app).signature_lane.answered
    for _ in range(2):  # the same request again: nothing cached answers it
        body = await answer(eci_client, ADD_SUPPORT, variables=statement(page))
        assert body["errors"][0]["message"] == "Captcha code is required for this API call"
        assert body["errors"][0]["extensions"]["code"] == "unauthorized"
    # the generic resolver (a donation leaves the direct one) asks the same
    donation = statement(page, donation={"payload": "{}", "amount": 100, "currency": "EUR"})
    body = await answer(eci_client, ADD_SUPPORT, variables=donation)
    assert body["errors"][0]["message"] == "Captcha code is required for this API call"
    # an idempotency key is no way around it
    body = await answer(
        eci_client, ADD_SUPPORT, variables=statement(page), headers={"Idempotency-Key": "k1"}
    )
    assert body["errors"][0]["extensions"]["code"] == "unauthorized"
    seen = len(procaptcha.seen)
    bad = await answer(
        eci_client, ADD_SUPPORT, variables=statement(page), extensions={"captcha": "x"}
    )
    assert bad["errors"][0]["extensions"]["code"] == "bad_captcha"
    assert procaptcha.seen[seen:] == [{"service": "procaptcha", "response": "x"}]
    assert await count(session, Action) == 0
    assert await count(session, Supporter) == 0
    assert state_of(eci_app).signature_lane.answered == lane_answered


async def test_a_signature_with_a_verified_captcha_is_stored_with_the_eci_schema(
    eci_client: httpx.AsyncClient,
    eci_app: FastAPI,
    eci_settings: Settings,
    session: AsyncSession,
    eci_world: EciWorld,
    procaptcha: Verifier,
    backend: str,
) -> None:
    page = eci_world.pages["at"]
    lane_answered = state_of(eci_app).signature_lane.answered
    seen = len(procaptcha.seen)
    body = await answer(
        eci_client,
        ADD_SUPPORT,
        variables=statement(page),
        extensions=GOOD,
        headers={"Idempotency-Key": "k2"},
    )
    assert body["data"]["addActionContact"]["firstName"] == "Alicia", body
    assert procaptcha.seen[seen:] == [{"service": "procaptcha", "response": "good"}]
    # the stored answer of the key, without a new statement (nor a captcha: none is spent)
    again = await answer(
        eci_client, ADD_SUPPORT, variables=statement(page), headers={"Idempotency-Key": "k2"}
    )
    assert again == body
    other = await post(
        eci_client,
        ADD_SUPPORT,
        variables=statement(page, "R7654321"),
        extensions=GOOD,
        headers={"Idempotency-Key": "k2"},
    )
    assert other.json()["errors"][0]["extensions"]["code"] == "idempotency_key_reused"
    # with the page and the keys now in the caches, a statement without a captcha is
    # still refused: the signature lane leaves it to the general path
    refused = await answer(eci_client, ADD_SUPPORT, variables=statement(page, "R7654321"))
    assert refused["errors"][0]["extensions"]["code"] == "unauthorized"
    assert await count(session, Action) == 1
    assert state_of(eci_app).signature_lane.answered == lane_answered

    action = (await session.execute(select(Action))).scalar_one()
    campaign = await session.get(Campaign, action.campaign_id)
    assert campaign is not None and campaign.contact_schema == ContactSchema.ECI
    supporter = (await session.execute(select(Supporter))).scalar_one()
    assert supporter.email is None and supporter.area == "AT"
    contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.org_id == eci_world.org_id and contact.public_key_id == eci_world.key_id
    assert contact.crypto_nonce is not None
    box = Box(eci_world.private_key, NaclPublicKey(eci_world.sign_public))
    sealed = json.loads(box.decrypt(contact.payload, contact.crypto_nonce))
    assert sealed["nationality"] == {
        "country": "AT",
        "documentType": "passport",
        "documentNumber": "R1234567",
    }
    audit = (
        await session.execute(select(AuditLog).where(AuditLog.resource == "captcha_actions"))
    ).scalar_one()
    assert audit.resource_id == str(action.id) and audit.changeset == {"method": "image"}

    if backend == "postgresql":
        # the control: only the captcha keeps that request off the lane, which would take it
        eci_settings.procaptcha_url = None
        try:
            taken = await answer(eci_client, ADD_SUPPORT, variables=statement(page, "R7654321"))
        finally:
            eci_settings.procaptcha_url = procaptcha.url
        assert "errors" not in taken
        assert state_of(eci_app).signature_lane.answered == lane_answered + 1
        assert await count(session, Action) == 2
        signed = 2
    else:
        signed = 1

    counter = await eci_client.get(
        "/api", params={"query": COUNT, "variables": json.dumps({"actionPage": page})}
    )
    stats = counter.json()["data"]["actionPage"]["campaign"]["stats"]
    assert stats == {"supporterCount": signed}


# -- the staff API ------------------------------------------------------------------------------


def basic(email: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()


async def test_the_staff_api_takes_api_tokens_and_basic(
    eci_client: httpx.AsyncClient, session: AsyncSession, eci_world: EciWorld
) -> None:
    user = await make_user(session, org=await session.get(Org, eci_world.org_id))
    token = await reset_api_token(session, user)
    await session.commit()
    for authorization in (f"Bearer {token}", basic(user.email, PASSWORD)):
        response = await post(
            eci_client,
            CURRENT_USER,
            headers={"Authorization": authorization},
            path="/private/api",
        )
        assert response.json() == {"data": {"currentUser": {"email": user.email}}}
    # the full schema, introspection included
    response = await post(
        eci_client,
        '{ org(name: "eci-org") { ... on PrivateOrg { personalData { contactSchema } } } '
        "__schema { mutationType { name } } }",
        headers={"Authorization": f"Bearer {token}"},
        path="/private/api",
    )
    assert response.json()["data"]["org"] == {"personalData": {"contactSchema": "ECI"}}
    assert response.json()["data"]["__schema"] == {"mutationType": {"name": "RootMutationType"}}


async def test_the_staff_api_refuses_anonymous_callers_jwts_and_session_cookies(
    eci_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    app: FastAPI,
    eci_settings: Settings,
    session: AsyncSession,
) -> None:
    user = await make_user(session)
    cookie = sign(eci_settings, SESSION_COOKIE, await create_session_token(session, user))
    await session.commit()
    token = jwt.encode(
        {
            "sub": "u1",
            "email": user.email,
            "user_metadata": {"email_verified": True},
            "exp": int(time.time()) + 300,
        },
        JWT_SECRET,
        algorithm="HS256",
    )
    # both identify the user on the full build's /api
    with app_settings(app, jwt_secret=JWT_SECRET):
        by_jwt = await post(client, CURRENT_USER, headers={"Authorization": f"Bearer {token}"})
        assert by_jwt.json() == {"data": {"currentUser": {"email": user.email}}}
    by_cookie = await post(client, CURRENT_USER, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert by_cookie.json() == {"data": {"currentUser": {"email": user.email}}}

    anonymous = await post(eci_client, CURRENT_USER, path="/private/api")
    cookie_only = await post(
        eci_client,
        CURRENT_USER,
        headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
        path="/private/api",
    )
    for response in (anonymous, cookie_only):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="Proca"'
        assert response.json() == {
            "data": None,
            "errors": [
                {
                    "message": "Authentication is required for this API call",
                    "extensions": {"code": "unauthorized"},
                }
            ],
        }
    by_jwt = await post(
        eci_client, CURRENT_USER, headers={"Authorization": f"Bearer {token}"}, path="/private/api"
    )
    assert by_jwt.status_code == 401
    assert by_jwt.json()["errors"] == [
        {
            "message": "Authentication with a JWT is not accepted here: "
            "use HTTP Basic or an API token",
            "extensions": {"code": "unauthorized"},
        }
    ]
    wrong = await post(
        eci_client,
        CURRENT_USER,
        headers={"Authorization": basic(user.email, "wrong")},
        path="/private/api",
    )
    assert wrong.status_code == 401
