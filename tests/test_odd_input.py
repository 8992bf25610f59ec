"""Odd input in every place where a signature's strings reach the database (a NUL, a lone
surrogate, NaN and the infinities, huge numbers, JSON that passes a naive size check but not
the database's): each one is either stored or refused with bad_arg naming its field, the same
on SQLite and PostgreSQL and on the signature lane; never "Internal server error", never a
Python message."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import LargeBinary, bindparam, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action.lane import SignatureLane
from proca_server.kit.storable import (
    JSONB_PER_TEXT_BYTE,
    JSONB_SLACK,
    exceeds_stored_size,
    jsonb_size,
    sqlite_json_size,
    stored_json_size,
)
from proca_server.kit.time import utcnow
from proca_server.models import Action, Mtt, Target
from proca_server.models.action import MAX_FIELDS_BYTES
from proca_server.models.base import JSONMap
from tests.factories import make_world
from tests.graphql_helpers import gql
from tests.widget_helpers import ADD_ACTION, ADD_ACTION_CONTACT, signature, warm_up, widget_post

NUL, SURROGATE = "\x00", "\ud800"
# words of Python's own messages that must never reach a client
PYTHON_WORDS = (
    "Traceback",
    "Exceeds the limit",
    "set_int_max_str_digits",
    "codec can't",
    "Invalid isoformat",
    "not JSON serializable",
    "Expecting value",
    "object has no attribute",
)


@dataclass(frozen=True)
class Refused:
    """A refusal naming `field`: the error's path after the mutation's name (dotted), or, for
    a value refused while graphql-core coerced the input, its message "Variable '$v' has
    invalid value at .<field>: ..." (`field` "$v" for the variable itself)."""

    field: str
    code: str | None = "bad_arg"


STORED = "stored"
Expected = Refused | str


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def problems(body: dict[str, Any], expected: Expected) -> list[str]:
    """What is wrong with an answer (empty when it is as expected)."""
    text = json.dumps(body, ensure_ascii=False)
    found = [f"leaks {w!r}" for w in (*PYTHON_WORDS, "Internal server error") if w in text]
    errors = body.get("errors") or []
    if expected == STORED:
        return found + ([f"refused: {errors}"] if errors else [])
    assert isinstance(expected, Refused)
    if not errors:
        return [*found, "stored"]
    first = errors[0]
    if (first.get("extensions") or {}).get("code") != expected.code:
        found.append(f"code {first.get('extensions')}")
    path, message = first.get("path"), first["message"]
    if path is not None and len(path) == 1:
        # the original's shape for a page or contact that cannot be found: the path is the
        # mutation alone and the message starts with the argument's name (snake_case)
        named = message.startswith(f"{snake(expected.field)}: ")
    elif path is not None:
        named = ".".join(str(p) for p in path[1:]) == expected.field
    elif expected.field.startswith("$"):
        named = message.startswith(f"Variable '{expected.field}' ")
    else:
        named = f" at .{expected.field}:" in message
    if not named:
        found.append(f"does not name {expected.field}: {path} {message!r}")
    return found


async def action_count(session: AsyncSession) -> int:
    await session.rollback()
    return int(await session.scalar(select(func.count()).select_from(Action)) or 0)


Change = Callable[[dict[str, Any]], None]


def fields(value: Any) -> Change:
    """customFields holding `value`, a dict (JSON-encoded here) or the JSON text itself."""
    text = value if isinstance(value, str) else json.dumps(value)

    def change(v: dict[str, Any]) -> None:
        v["action"]["customFields"] = text

    return change


def legacy(key: str, value: str) -> Change:
    def change(v: dict[str, Any]) -> None:
        v["action"]["fields"] = [{"key": key, "value": value}]

    return change


def at(*path: str, value: Any) -> Change:
    """`value` at `path` in the variables (dicts made on the way)."""

    def change(v: dict[str, Any]) -> None:
        node = v
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value

    return change


def padded(base: dict[str, Any], size: int) -> dict[str, Any]:
    """`base` and a "pad" string that bring stored_json_size to exactly `size`."""
    for n in range(size):
        candidate = {**base, "pad": "x" * n}
        if stored_json_size(candidate) == size:
            return candidate
    raise AssertionError(f"no padding reaches {size} bytes")


def booleans(n: int) -> dict[str, Any]:
    return {f"k{i:03d}": True for i in range(n)}


BIG = "1" + "0" * 4999
JSONB_AT_LIMIT = padded({"comment": "note"}, MAX_FIELDS_BYTES)
TEXT_AT_LIMIT = padded(booleans(300), MAX_FIELDS_BYTES)  # SQLite's text is the larger here


def sign_cases() -> list[tuple[str, Change, Expected]]:
    """addActionContact with plain (lane-able) input: what to change, what must happen."""
    cases: list[tuple[str, Change, Expected]] = [
        # customFields: the Json scalar
        ("fields: NUL in a value", fields({"comment": f"a{NUL}b"}), Refused("customFields")),
        ("fields: NUL in a key", fields({f"a{NUL}": "x"}), Refused("customFields")),
        ("fields: escaped lone surrogate", fields({"comment": SURROGATE}), Refused("customFields")),
        ("fields: raw lone surrogate", fields(f'{{"c": "{SURROGATE}"}}'), Refused("customFields")),
        ("fields: surrogate key", fields({"\udfff": 1}), Refused("customFields")),
        ("fields: high surrogate alone", fields({"c": "\ud83d x"}), Refused("customFields")),
        ("fields: NaN", fields('{"n": NaN}'), Refused("customFields")),
        ("fields: Infinity", fields('{"n": Infinity}'), Refused("customFields")),
        ("fields: -Infinity", fields('{"n": [1, -Infinity]}'), Refused("customFields")),
        ("fields: 1e400", fields('{"n": 1e400}'), Refused("customFields")),
        ("fields: -1e400", fields('{"n": -1e400}'), Refused("customFields")),
        ("fields: 5,000 digits", fields(f'{{"n": {BIG}}}'), Refused("customFields")),
        ("fields: 5,000 digits float", fields(f'{{"n": {BIG}.5}}'), Refused("customFields")),
        ("fields: 1,001 digits", fields(f'{{"n": 1{"0" * 1000}}}'), Refused("customFields")),
        ("fields: 300 short keys", fields({f"k{i:03d}": 1 for i in range(300)}),
         Refused("customFields")),
        ("fields: 400 booleans", fields(booleans(400)), Refused("customFields")),
        ("fields: jsonb at the limit", fields(JSONB_AT_LIMIT), STORED),
        ("fields: jsonb over the limit", fields({**JSONB_AT_LIMIT, "x": ""}),
         Refused("customFields")),
        ("fields: text at the limit", fields(TEXT_AT_LIMIT), STORED),
        ("fields: text over the limit",
         fields({**TEXT_AT_LIMIT, "pad": TEXT_AT_LIMIT["pad"] + "x"}), Refused("customFields")),
        ("fields: 1,800 Cyrillic letters", fields({"comment": "ж" * 1800}), STORED),
        ("fields: emoji and escapes", fields({"c": '😀 \u2028 \ufeff " \\ \n\t', "😀": ["é"]}),
         STORED),
        ("fields: odd numbers", fields({"a": 1e300, "b": -0.0, "c": 5e-324, "d": 10**300,
                                        "e": [1.5, -2]}), STORED),
        ("fields: deep nesting", fields("[" * 5000 + "]" * 5000), Refused("customFields")),
        # the deprecated key/value list
        ("legacy: NUL value", legacy("a", NUL), Refused("customFields")),
        ("legacy: surrogate key", legacy(SURROGATE, "x"), Refused("customFields")),
        ("actionType: NUL", at("action", "actionType", value=f"petition{NUL}"),
         Refused("actionType")),
        ("contactRef: NUL", at("contactRef", value=f"AAAA{NUL}"), Refused("contactRef")),
        ("contactRef: surrogate", at("contactRef", value=SURROGATE), Refused("contactRef")),
        ("actionPageId: 2^31", at("actionPage", value=2**31), Refused("$actionPage", None)),
        ("actionPageId: unknown", at("actionPage", value=2**31 - 1),
         Refused("actionPageId", "not_found")),
        ("birthDate: NUL", at("contact", "birthDate", value=f"2000-01-01{NUL}"),
         Refused("birthDate")),
    ]  # fmt: skip
    for name in ("source", "medium", "campaign", "content", "location"):
        for odd in (NUL, SURROGATE):
            cases.append(
                (f"tracking.{name}: {odd!r}", at("tracking", name, value=f"a{odd}"),
                 Refused(f"tracking.{name}"))
            )  # fmt: skip
    contact = [
        (("contact", "firstName"), "firstName"),
        (("contact", "lastName"), "lastName"),
        (("contact", "name"), "name"),
        (("contact", "email"), "email"),
        (("contact", "phone"), "phone"),
        (("contact", "address", "street"), "street"),
        (("contact", "address", "streetNumber"), "streetNumber"),
        (("contact", "address", "locality"), "locality"),
        (("contact", "address", "region"), "region"),
        (("contact", "address", "postcode"), "postcode"),
        (("contact", "address", "country"), "country"),
    ]
    for path, field in contact:
        for odd in (NUL, SURROGATE):
            value = f"ann{odd}@example.org" if field == "email" else f"Ab{odd}"
            cases.append((f"{field}: {odd!r}", at(*path, value=value), Refused(field)))
    for field in ("documentType", "documentNumber"):
        for odd in (NUL, SURROGATE):
            nationality = {"country": "FR", field: f"ab{odd}"}
            cases.append(
                (f"{field}: {odd!r}", at("contact", "nationality", value=nationality),
                 Refused(field))
            )  # fmt: skip
    cases.append(
        ("nationality", at("contact", "nationality", value={"country": f"F{NUL}"}),
         Refused("country"))
    )  # fmt: skip
    return cases


SIGN_CASES = sign_cases()


def variables_for(page: int, n: int, change: Change) -> dict[str, Any]:
    variables = signature(page, f"odd{n}@example.org")
    change(variables)
    return variables


async def run_cases(
    client: httpx.AsyncClient,
    session: AsyncSession,
    cases: Sequence[tuple[str, Callable[[int], dict[str, Any]], Expected]],
    *,
    query: str = ADD_ACTION_CONTACT,
    op: str = "addActionContact",
) -> list[str]:
    """Each case's problems: its answer, and the actions stored (one, or none)."""
    failures: list[str] = []
    for name, make, expected in cases:
        before = await action_count(session)
        body = await widget_post(client, op, query, make(len(failures)))
        found = problems(body, expected)
        stored = await action_count(session) - before
        if stored != (1 if expected == STORED else 0):
            found.append(f"{stored} actions stored")
        failures += [f"{name}: {p}" for p in found]
    return failures


async def test_odd_input_to_add_action_contact_is_stored_or_refused_naming_its_field(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    cases = [
        (name, lambda n, change=change: variables_for(page, n, change), expected)
        for name, change, expected in SIGN_CASES
    ]
    assert await run_cases(client, session, cases) == []


async def test_odd_donations_and_mail_to_target_are_refused_naming_their_field(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    page, campaign = world.page.id, world.campaign.id
    session.add(Mtt(campaign_id=campaign, start_at=utcnow(), end_at=utcnow() + timedelta(days=3)))
    target = Target(name="MEP", external_id="mep-odd", campaign_id=campaign)
    session.add(target)
    await session.commit()
    target_id = str(target.id)

    def donation(**over: Any) -> Change:
        def change(v: dict[str, Any]) -> None:
            v["action"] = {"actionType": "donate", "donation": {"amount": 100, **over}}
            v["action"]["donation"].setdefault("payload", "{}")

        return change

    def mtt(**over: Any) -> Change:
        def change(v: dict[str, Any]) -> None:
            v["action"] = {
                "actionType": "mail2target",
                "mtt": {"subject": "Hi", "body": "Please", "targets": [target_id], **over},
            }

        return change

    stripe = {"schema": "STRIPE_PAYMENT_INTENT"}
    table: list[tuple[str, Change, Expected]] = [
        ("payload: NUL", donation(payload=json.dumps({"id": NUL})), Refused("donation.payload")),
        ("payload: NaN", donation(payload='{"x": NaN}'), Refused("donation.payload")),
        ("currency: newline", donation(currency="EUR\n"), Refused("currency")),
        ("currency: NUL", donation(currency=f"EU{NUL}"), Refused("currency")),
        ("stripe amount: huge", donation(**stripe, payload=json.dumps(
            {"amount": 10**12, "currency": "EUR"})), Refused("amount")),
        ("stripe amount: true", donation(**stripe, payload=json.dumps(
            {"amount": True, "currency": "EUR"})), Refused("payload")),
        ("donation: plain", donation(currency="usd"), STORED),
        ("subject: NUL", mtt(subject=f"Hi{NUL}"), Refused("subject")),
        ("body: surrogate", mtt(body=f"Please{SURROGATE}"), Refused("body")),
        ("files: NUL", mtt(files=[f"a{NUL}.pdf"]), Refused("files")),
        ("targets: NUL", mtt(targets=[f"{target_id}{NUL}"]), Refused("targets")),
        ("mtt: plain", mtt(body="Please 😀"), STORED),
    ]  # fmt: skip
    cases = [
        (name, lambda n, change=change: variables_for(page, n, change), expected)
        for name, change, expected in table
    ]
    assert await run_cases(client, session, cases) == []


async def test_odd_input_to_add_action_is_stored_or_refused_naming_its_field(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    signed = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, signature(page, "ref@example.org")
    )
    ref = signed["data"]["addActionContact"]["contactRef"]

    def share(**over: Any) -> Callable[[int], dict[str, Any]]:
        base = {"contact": ref, "actionPage": page, "actionType": "share", "payload": "{}"}
        return lambda _: {**base, **over}

    cases: list[tuple[str, Callable[[int], dict[str, Any]], Expected]] = [
        ("payload: NUL", share(payload=json.dumps({"c": NUL})), Refused("$payload")),
        ("payload: surrogate", share(payload=json.dumps({"c": SURROGATE})), Refused("$payload")),
        ("payload: Infinity", share(payload='{"c": Infinity}'), Refused("$payload")),
        ("payload: 300 keys", share(payload=json.dumps({f"k{i:03d}": 1 for i in range(300)})),
         Refused("customFields")),
        ("tracking: NUL", share(tracking={"source": NUL}), Refused("tracking.source")),
        ("tracking: surrogate", share(tracking={"content": SURROGATE}),
         Refused("tracking.content")),
        ("contactRef: NUL", share(contact=f"{ref}{NUL}"), Refused("contactRef")),
        ("actionType: NUL", share(actionType=NUL), Refused("actionType")),
        ("payload: emoji", share(payload=json.dumps({"c": "😀"})), STORED),
    ]  # fmt: skip
    assert await run_cases(client, session, cases, query=ADD_ACTION, op="addAction") == []


async def test_staff_configs_with_a_nul_or_a_surrogate_are_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, org, page = world.tokens["owner"], world.org.name, world.page.id
    update_page = (
        "mutation($id: Int!, $i: ActionPageInput!) { updateActionPage(id: $id, input: $i) { id } }"
    )
    upsert_campaign = (
        "mutation($o: String!, $i: CampaignInput!) { upsertCampaign(orgName: $o, input: $i) "
        "{ id } }"
    )
    answers = [
        await gql(client, update_page, {"id": page, "i": {"config": json.dumps({"a": NUL})}},
                  token=token),
        await gql(client, update_page,
                  {"id": page, "i": {"config": json.dumps({"a": [SURROGATE]})}}, token=token),
        await gql(client, upsert_campaign,
                  {"o": org, "i": {"name": "odd", "title": "Odd",
                                   "config": json.dumps({NUL: 1})}}, token=token),
        await gql(client, upsert_campaign,
                  {"o": org, "i": {"name": "odd", "title": "Odd", "config": '{"x": NaN}'}},
                  token=token),
    ]  # fmt: skip
    expected = [Refused("config")] * 4
    assert [problems(a, e) for a, e in zip(answers, expected, strict=True)] == [[]] * 4
    fine = await gql(
        client, update_page, {"id": page, "i": {"config": json.dumps({"a": "😀"})}}, token=token
    )
    assert problems(fine, STORED) == []


@pytest.mark.slow  # generated inputs by the hundred
@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=st.deferred(lambda: json_documents()))
async def test_stored_json_size_is_what_each_database_measures(
    session: AsyncSession, backend: str, document: dict[str, Any]
) -> None:
    # bound as the app binds a JSON column: jsonb on PostgreSQL, text on SQLite
    value = bindparam("v", type_=JSONMap())
    if backend == "postgresql":
        measured, ours = func.pg_column_size(value), jsonb_size(document)
    else:
        measured, ours = func.length(cast(value, LargeBinary)), sqlite_json_size(document)
    assert await session.scalar(select(measured), {"v": document}) == ours
    assert stored_json_size(document) >= ours
    # the shortcut of exceeds_stored_size: jsonb is never larger than its bound on the text
    bound = JSONB_PER_TEXT_BYTE * sqlite_json_size(document) + JSONB_SLACK
    assert jsonb_size(document) <= bound
    for limit in (64, 512, 5120):
        assert exceeds_stored_size(document, limit) == (stored_json_size(document) > limit)


@pytest.mark.parametrize(
    "document",
    [
        {"a": [1] * 400},
        {"a": [[]] * 300},
        {"a": [[[[[[[[]]]]]]]] * 40},
        {str(i): i % 10 for i in range(300)},
        {"a": [0.5] * 300, "b": [None] * 300, "c": [""] * 300},
    ],
)
def test_jsonb_stays_within_its_bound_on_the_text_for_the_densest_documents(
    document: dict[str, Any],
) -> None:
    text = sqlite_json_size(document)
    assert jsonb_size(document) <= JSONB_PER_TEXT_BYTE * text + JSONB_SLACK
    assert exceeds_stored_size(document, 5120) == (stored_json_size(document) > 5120)


def storable_text() -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


def json_documents() -> st.SearchStrategy[dict[str, Any]]:
    numbers = st.one_of(
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
    )
    scalars = st.one_of(st.none(), st.booleans(), numbers, storable_text())
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=6), st.dictionaries(storable_text(), inner, max_size=6)
        ),
        max_leaves=40,
    )
    return st.dictionaries(storable_text(), values, max_size=40)


# --- the signature lane (PostgreSQL) ------------------------------------------------------------


async def test_the_lane_stores_odd_but_storable_input_and_refuses_the_rest_beside_it(
    client: httpx.AsyncClient, session: AsyncSession, lane: SignatureLane
) -> None:
    """Sent together, so that the lane's batcher groups them: the storable ones are the
    lane's, the others are refused as the general path refuses them, and none of them costs
    a neighbour its signature."""
    world = await make_world(session, roles=())
    page = world.page.id
    await warm_up(client, page, "warm@example.org")
    # plain requests whose tracking is the warm-up's: the lane's unless they are refused
    lane_cases = [(name, change, expected) for name, change, expected in SIGN_CASES
                  if not name.startswith(("tracking", "actionPageId", "contactRef"))]  # fmt: skip
    before, taken = await action_count(session), lane.answered
    answers = await asyncio.gather(
        *(
            widget_post(client, "addActionContact", ADD_ACTION_CONTACT,
                        variables_for(page, n, change))
            for n, (_, change, _) in enumerate(lane_cases)
        )
    )  # fmt: skip
    failures = [
        f"{name}: {p}"
        for (name, _, expected), body in zip(lane_cases, answers, strict=True)
        for p in problems(body, expected)
    ]
    assert failures == []
    storable = sum(1 for _, _, expected in lane_cases if expected == STORED)
    assert lane.answered - taken == storable
    assert await action_count(session) - before == storable


# --- a property over the strings of customFields and tracking -----------------------------------

ODD_CHARACTERS = st.one_of(
    st.sampled_from([NUL, SURROGATE, "\udfff", "\ud83d", "😀", "é", "\u2028", "\ufeff", '"', "\\"]),
    st.characters(exclude_categories=()),
)
# joined here: st.text drops surrogates whatever its alphabet
ODD_TEXT = st.lists(ODD_CHARACTERS, max_size=20).map("".join)
ODD_NUMBERS = st.one_of(
    st.floats(),  # NaN and the infinities too
    st.integers(min_value=-(10**1200), max_value=10**1200),
    st.sampled_from([1e308, 5e-324, -0.0]),
)


@pytest.fixture
async def page_id(session: AsyncSession) -> int:
    world = await make_world(session, roles=())
    return world.page.id


@pytest.mark.slow  # generated inputs by the hundred
@settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    custom=st.dictionaries(
        ODD_TEXT, st.one_of(ODD_TEXT, ODD_NUMBERS, st.lists(ODD_TEXT, max_size=3)), max_size=8
    ),
    tracking=st.one_of(
        st.none(), st.fixed_dictionaries({}, optional={k: ODD_TEXT for k in ("source", "content")})
    ),
)
async def test_no_string_of_custom_fields_or_tracking_makes_a_server_error(
    client: httpx.AsyncClient,
    session: AsyncSession,
    page_id: int,
    custom: dict[str, Any],
    tracking: dict[str, str] | None,
) -> None:
    variables = signature(page_id, "prop@example.org")
    variables["action"]["customFields"] = json.dumps(custom, allow_nan=True)
    if tracking is not None:
        variables["tracking"] = tracking
    before = await action_count(session)
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    text = json.dumps(body, ensure_ascii=False)
    assert not [w for w in (*PYTHON_WORDS, "Internal server error") if w in text], body
    stored = await action_count(session) - before
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "bad_arg", body
        assert stored == 0
    else:
        assert stored == 1
