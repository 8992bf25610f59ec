"""Fuzzing of everything an anonymous caller can send to /api (docs/security.md).

Generated documents (hypothesis-graphql) over every root query and mutation field, invalid
documents, the widget's own operations with odd variables, and raw transport (bodies, content
types, encodings). Every answer must be a JSON GraphQL answer below 500, with no crash: no
traceback in the body, no "Internal server error" and no error logged.

Seeded (`derandomize`) and bounded: the same few thousand cases on every run, on SQLite and
PostgreSQL. A failure prints the request that caused it."""

from __future__ import annotations

import json
import logging
import math
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, mutations, queries
from hypothesis_graphql import nodes as gql
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.graphql.schema import build_schemas
from tests.factories import make_world
from tests.widget_helpers import ADD_ACTION, ADD_ACTION_CONTACT

pytestmark = pytest.mark.slow  # generated documents by the hundred

SCHEMA = build_schemas().core


# PROCA_FUZZ_SCALE=10 runs ten times the cases (a longer local hunt); CI runs the default.
SCALE = float(os.environ.get("PROCA_FUZZ_SCALE", "1"))


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max(1, round(max_examples * SCALE)),
        derandomize=True,
        database=None,
        deadline=None,
        # no shrinking: a failure is reported as generated, which keeps a failing run short
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# --- the world the fuzzer aims at ------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Ids and names that exist, so that generated calls reach real rows."""

    page_ids: tuple[int, ...]
    campaign_ids: tuple[int, ...]
    names: tuple[str, ...]


@pytest.fixture
async def targets(session: AsyncSession) -> Targets:
    world = await make_world(session, roles=())
    return Targets(
        page_ids=(world.page.id,),
        campaign_ids=(world.campaign.id,),
        names=(world.page.name, world.campaign.name, world.org.name),
    )


# --- odd values ------------------------------------------------------------------------------

HUGE_INTS = st.sampled_from([2**31, -(2**31) - 1, 2**53 + 1, 2**63, 10**30, -(10**40)])
ODD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324])
LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d"])
ODD_STRINGS = st.one_of(
    st.sampled_from(["", " ", "\x00", "a\x00b", "\u2028", "\ufeff", "null", "{}", "[]", "'", '"']),
    LONE_SURROGATES,
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=10),
    st.integers(300, 5000).map(lambda n: "x" * n),
)


def json_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Any JSON-ish value, NaN, huge numbers and odd strings included."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**31), 2**31 - 1),
        HUGE_INTS,
        st.floats(allow_nan=False, allow_infinity=False),
        ODD_FLOATS,
        ODD_STRINGS,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.text(max_size=8), ODD_STRINGS), inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def json_object_strings() -> st.SearchStrategy[str]:
    """`Json` scalar values as the clients send them: a string holding an object, mostly."""
    objects = st.dictionaries(st.text(max_size=10), json_values(6), max_size=5)
    return st.one_of(
        objects.map(lambda o: json.dumps(o, allow_nan=True)),
        st.sampled_from(["{}", "[]", "1", "null", '"x"', "{", "NaN", '{"a": NaN}', "1e999"]),
        st.integers(10, 3000).map(lambda depth: "[" * depth + "]" * depth),
        st.integers(10, 3000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
        st.just("9" * 5000),
        ODD_STRINGS,
    )


def dates() -> st.SearchStrategy[str]:
    return st.one_of(
        st.dates().map(date.isoformat),
        st.sampled_from(["", "2020-02-30", "0000-01-01", "9999-12-31", "1-1-1", "today"]),
        ODD_STRINGS,
    )


def datetimes() -> st.SearchStrategy[str]:
    aware = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    naive = st.datetimes().map(datetime.isoformat)
    return st.one_of(
        aware,
        naive,
        aware.map(lambda s: s.replace("+00:00", "Z")),
        st.sampled_from(["", "2020-01-01T25:00:00Z", "9999-12-31T23:59:59+14:00", "now"]),
        st.just((datetime.now(UTC) - timedelta(days=1)).isoformat()),
        ODD_STRINGS,
    )


def int_values(targets: Targets) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from(targets.page_ids + targets.campaign_ids),
        st.integers(-(2**31), 2**31 - 1),
        st.sampled_from([0, -1, 1, 2**31 - 1]),
    )


def string_values(targets: Targets) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(targets.names),
        st.sampled_from(["petition", "share", "openletter", "register", "donate", "en"]),
        st.emails(),
        ODD_STRINGS,
    )


# --- checking one answer ---------------------------------------------------------------------


def abbreviate(value: Any) -> Any:
    """A request or value made short enough to read: long runs are elided with their length."""
    if isinstance(value, bytes):
        return abbreviate(value.decode("utf-8", "backslashreplace"))
    if isinstance(value, str):
        return (
            value if len(value) <= 120 else f"{value[:60]}...({len(value)} chars)...{value[-30:]}"
        )
    if isinstance(value, Mapping):
        return {abbreviate(k): abbreviate(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [abbreviate(v) for v in value]
    return value


def describe(request: Mapping[str, Any]) -> str:
    return json.dumps(abbreviate(request), default=repr, ensure_ascii=True)


def report(found: list[str], request: Mapping[str, Any], answer: str) -> None:
    pytest.fail(f"{'; '.join(found)}\nrequest: {describe(request)}\nanswer: {answer}")


def problems(response: httpx.Response, *, html_allowed: bool = False) -> list[str]:
    found: list[str] = []
    if response.status_code >= 500:
        found.append(f"status {response.status_code}")
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    text = response.content.decode("utf-8", "replace")
    if "Traceback" in text:
        found.append("traceback in body")
    if html_allowed and content_type == "text/html":
        return found
    if content_type != "application/json":
        found.append(f"content-type {content_type!r}")
        return found
    try:
        body = json.loads(response.content)
    except ValueError:
        found.append("body is not JSON")
        return found
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        found.append("no data and no errors")
        return found
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if code == "internal" or message == "Internal server error":
            found.append(f"internal error at {error.get('path')}")
    return found


def crash(exc: BaseException) -> str:
    """An exception, and the last frames of ours it went through."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "proca_server" in f.filename] or frames
    at = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(ours[-3:]))
    return f"{type(exc).__name__}: {str(exc)[:200]} at {at}"


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = []
    for record in caplog.records:
        if record.levelno >= logging.ERROR:
            where = ""
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                where = f": {crash(exc)}"
            out.append(f"logged {record.levelname} {record.name} {record.getMessage()}{where}")
    return out


async def send(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    request: dict[str, Any],
    *,
    html_allowed: bool = False,
) -> httpx.Response | None:
    """Send one request (a dict of httpx.request arguments) and fail on any crash."""
    caplog.clear()
    try:
        response = await client.request(**request)
    except Exception as exc:  # an exception that escaped the app is a crash too
        found = [f"exception escaped the app: {crash(exc)}"]
        response = None
    else:
        found = problems(response, html_allowed=html_allowed)
    found += logged_errors(caplog)
    if found:
        report(found, request, response.text[:1000] if response is not None else "")
    return response


def post(body: Any, **headers: str) -> dict[str, Any]:
    """A JSON POST as the widget sends it; NaN and lone surrogates kept as Python writes them."""
    return {
        "method": "POST",
        "url": "/api",
        "content": json.dumps(body, allow_nan=True).encode(),
        "headers": {"content-type": "application/json", "accept": "application/json", **headers},
    }


# --- generated documents: every root field -----------------------------------------------------


def custom_scalars(targets: Targets) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    return {
        "Int": int_values(targets).map(gql.Int),
        "String": string_values(targets).map(gql.String),
        "ID": st.one_of(st.text(max_size=30), ODD_STRINGS).map(gql.String),
        "Json": json_object_strings().map(gql.String),
        "Date": dates().map(gql.String),
        "DateTime": datetimes().map(gql.String),
        "NaiveDateTime": datetimes().map(gql.String),
    }


@fuzz_settings(max_examples=400)
@given(data=st.data())
async def test_generated_queries(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    targets: Targets,
    data: st.DataObject,
) -> None:
    document = data.draw(queries(SCHEMA, custom_scalars=custom_scalars(targets)), label="query")
    await send(client, caplog, post({"query": document, "variables": {}}))


@fuzz_settings(max_examples=600)
@given(data=st.data())
async def test_generated_mutations(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    targets: Targets,
    data: st.DataObject,
) -> None:
    document = data.draw(
        mutations(SCHEMA, custom_scalars=custom_scalars(targets)), label="mutation"
    )
    await send(client, caplog, post({"query": document, "variables": {}}))


@fuzz_settings(max_examples=300)
@given(data=st.data())
async def test_invalid_documents(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    targets: Targets,
    data: st.DataObject,
) -> None:
    document = data.draw(
        from_schema(SCHEMA, custom_scalars=custom_scalars(targets), mode=Mode.NEGATIVE),
        label="document",
    )
    await send(client, caplog, post({"query": document, "operationName": ""}))


# --- the widget's operations, with variables -------------------------------------------------

GET_COUNT = """query getCount($actionPage: Int!) {
  actionPage(id: $actionPage) { campaign { stats { supporterCount } } }
}"""
GET_COUNT_BY_NAME = """query getCountByName($name: String) {
  actionPage(name: $name) { id campaign { name title externalId stats { supporterCount } } }
}"""
GET_LATEST = """query getLatest($actionPage: Int!, $actionType: String!, $limit: Int!) {
  actionPage(id: $actionPage) {
    campaign { actions(actionType: $actionType, limit: $limit) {
      list { actionId fields { key value } } } }
  }
}"""
PAGE_CONFIG = """query page($id: Int, $name: String, $url: String) {
  actionPage(id: $id, name: $name, url: $url) {
    id name locale thankYouTemplate config journey
    campaign { id title name config externalId org { name title } }
    org { title name config }
  }
}"""
LINK_ACTIONS = """mutation linkActions($actionPage: Int!, $contactRef: ID!, $linkRefs: [String!]) {
  linkActions(actionPageId: $actionPage, contactRef: $contactRef, linkRefs: $linkRefs) {
    contactRef
  }
}"""
ACCEPT_CONFIRM = """mutation accept($confirm: ConfirmInput!) {
  acceptUserConfirm(confirm: $confirm) { success }
}"""


def sometimes(value: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes an odd one (any JSON value)."""
    return st.one_of(value, value, value, odd)


def optional_fields(fields: Mapping[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional=dict(fields))


def widget_variables(targets: Targets) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    odd = json_values(6)
    page = sometimes(st.sampled_from(targets.page_ids), st.one_of(odd, HUGE_INTS, ODD_FLOATS))
    text = sometimes(st.text(max_size=20), odd)
    email = sometimes(st.emails(), odd)
    contact_ref = sometimes(
        st.binary(min_size=16, max_size=32).map(lambda b: b.hex()), st.one_of(odd, ODD_STRINGS)
    )
    custom_fields = sometimes(json_object_strings(), odd)
    tracking = sometimes(
        optional_fields(
            {k: sometimes(st.text(max_size=20), odd) for k in ("source", "medium", "campaign")}
            | {"content": text, "location": sometimes(st.just("https://example.org/x"), odd)}
        ),
        odd,
    )
    action = sometimes(
        st.fixed_dictionaries(
            {"actionType": sometimes(st.sampled_from(["register", "petition", "share"]), odd)},
            optional={
                "customFields": custom_fields,
                "testing": sometimes(st.booleans(), odd),
                "fields": sometimes(
                    st.lists(st.fixed_dictionaries({"key": text, "value": text}), max_size=3),
                    odd,
                ),
                "donation": sometimes(
                    st.fixed_dictionaries(
                        {"payload": custom_fields},
                        optional={
                            "amount": sometimes(st.integers(0, 10**6), odd),
                            "currency": sometimes(st.sampled_from(["EUR", "USD", "x"]), odd),
                            "frequencyUnit": sometimes(
                                st.sampled_from(["ONE_OFF", "MONTHLY", "YEARLY"]), odd
                            ),
                        },
                    ),
                    odd,
                ),
                "mtt": sometimes(
                    st.fixed_dictionaries(
                        {"targets": sometimes(st.lists(text, max_size=3), odd)},
                        optional={"subject": text, "body": text},
                    ),
                    odd,
                ),
            },
        ),
        odd,
    )
    address = optional_fields(
        {
            "country": sometimes(st.sampled_from(["", "DE", "FR", "IT", "de"]), odd),
            "postcode": sometimes(st.sampled_from(["", "10115", "75001", "1000"]), odd),
            "region": text,
            "locality": text,
            "street": text,
            "streetNumber": text,
        }
    )
    contact = sometimes(
        st.fixed_dictionaries(
            {"email": email, "firstName": sometimes(st.just("Ada"), odd)},
            optional={
                "lastName": text,
                "name": text,
                "phone": sometimes(st.sampled_from(["", "+49 30 1234567"]), odd),
                "birthDate": sometimes(dates(), odd),
                "address": sometimes(address, odd),
                "nationality": sometimes(
                    st.fixed_dictionaries(
                        {"country": sometimes(st.just("DE"), odd)},
                        optional={"documentType": text, "documentNumber": text},
                    ),
                    odd,
                ),
                # the ECI build sends snake_case keys
                "first_name": text,
                "street_number": text,
            },
        ),
        odd,
    )
    privacy = sometimes(
        optional_fields(
            {"optIn": sometimes(st.booleans(), odd), "leadOptIn": sometimes(st.booleans(), odd)}
        ),
        odd,
    )
    return st.one_of(
        st.tuples(st.just(GET_COUNT), st.fixed_dictionaries({"actionPage": page})),
        st.tuples(st.just(GET_COUNT_BY_NAME), st.fixed_dictionaries({"name": text})),
        st.tuples(
            st.just(GET_LATEST),
            st.fixed_dictionaries(
                {"actionPage": page, "actionType": text, "limit": sometimes(st.integers(), odd)}
            ),
        ),
        st.tuples(
            st.just(PAGE_CONFIG),
            optional_fields(
                {"id": page, "name": sometimes(st.sampled_from(targets.names), odd), "url": text}
            ),
        ),
        st.tuples(
            st.just(ADD_ACTION_CONTACT),
            st.fixed_dictionaries(
                {"actionPage": page, "action": action, "contact": contact, "privacy": privacy},
                optional={"contactRef": contact_ref, "tracking": tracking},
            ),
        ),
        st.tuples(
            st.just(ADD_ACTION),
            st.fixed_dictionaries(
                {"contact": contact_ref, "actionPage": page, "actionType": text},
                optional={
                    "payload": custom_fields,
                    "testing": sometimes(st.booleans(), odd),
                    "tracking": tracking,
                },
            ),
        ),
        st.tuples(
            st.just(LINK_ACTIONS),
            st.fixed_dictionaries(
                {"actionPage": page, "contactRef": contact_ref},
                optional={"linkRefs": sometimes(st.lists(contact_ref, max_size=3), odd)},
            ),
        ),
        st.tuples(
            st.just(ACCEPT_CONFIRM),
            st.fixed_dictionaries(
                {
                    "confirm": sometimes(
                        st.fixed_dictionaries(
                            {"code": text},
                            optional={"email": email, "objectId": page},
                        ),
                        odd,
                    )
                }
            ),
        ),
    )


@fuzz_settings(max_examples=800)
@given(data=st.data())
async def test_widget_operations(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    targets: Targets,
    data: st.DataObject,
) -> None:
    document, variables = data.draw(widget_variables(targets), label="operation")
    as_string = data.draw(st.booleans(), label="variables as a JSON string")
    body: dict[str, Any] = {
        "query": document,
        "variables": json.dumps(variables, allow_nan=True) if as_string else variables,
        "operationName": document.split("(")[0].split()[-1],
    }
    headers = {}
    if data.draw(st.booleans(), label="with Referer"):
        headers["referer"] = data.draw(
            st.sampled_from(["https://example.org/p", "\x7f", "x" * 3000])
        )
    await send(client, caplog, post(body, **headers))


# --- raw transport -----------------------------------------------------------------------------

CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/graphql",
        "application/graphql-response+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        "",
        "\x00",
        ";;;",
    ]
)
SMALL_QUERY = "{ actionPage(id: 1) { id } }"


def raw_bodies(targets: Targets) -> st.SearchStrategy[bytes]:
    page = targets.page_ids[0]
    valid = f'{{"query": "{{ actionPage(id: {page}) {{ id name }} }}"}}'.encode()
    return st.one_of(
        st.binary(max_size=200),
        st.just(valid),
        st.sampled_from(
            [
                b"",
                b"null",
                b"[]",
                b"1",
                b'"query"',
                b"{",
                b"\xff\xfe{}",
                b'{"query": "\xff"}',
                b'{"query": "{ actionPage(id: 1) { id } }", "variables": "\xc3\x28"}',
                b'{"query": "\\ud800"}',
                b'{"query": "\\u0000"}',
                b'{"query": 1}',
                b'{"query": null}',
                b'{"query": ["{ __typename }"]}',
                b'{"query": "{ __typename }", "variables": []}',
                b'{"query": "{ __typename }", "variables": "[]"}',
                b'{"query": "{ __typename }", "variables": "{"}',
                b'{"query": "{ __typename }", "variables": NaN}',
                b'{"query": "{ __typename }", "operationName": 7}',
                b'{"query": "{ __typename }", "operationName": "nope"}',
                b'{"query": "{ __typename }", "extensions": "x"}',
                b'{"query": "{ __typename }", "extensions": {"captcha": 1}}',
                b'{"query": "{ __typename }", "x": 1e99999}',
                b'{"query": "{ __typename }", "x": ' + b"9" * 5000 + b"}",
                b"query=%7B__typename%7D",
                b"--xyz\r\nContent-Disposition: form-data; name=query\r\n\r\n"
                b"{ __typename }\r\n--xyz--\r\n",
                b"{ __typename }",
                b"mutation { addOrg(input: {name: 1}) { id } }",
                b'{ actionPage(name: "\x00") { id } }',
            ]
        ),
        st.integers(100, 100_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(100, 100_000).map(lambda n: b'{"query": ' * n + b"1" + b"}" * n),
        st.integers(10, 5000).map(
            lambda n: json.dumps(
                {"query": "{" + " actionPage(id: 1) {" * n + " id" + "}" * n + "}"}
            ).encode()
        ),
        st.integers(2, 2000).map(
            lambda n: json.dumps(
                {
                    "query": "{"
                    + " ".join(f"a{i}: actionPage(id: 1) {{ id }}" for i in range(n))
                    + "}"
                }
            ).encode()
        ),
        json_values().map(lambda v: json.dumps(v, allow_nan=True).encode()),
        json_values().map(
            lambda v: json.dumps({"query": SMALL_QUERY, "variables": v}, allow_nan=True).encode()
        ),
    )


@fuzz_settings(max_examples=600)
@given(data=st.data())
async def test_raw_transport(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    targets: Targets,
    data: st.DataObject,
) -> None:
    headers: dict[str, str] = {}
    accept = data.draw(
        st.sampled_from(["", "application/json", "text/html", "*/*"]), label="accept"
    )
    if accept:
        headers["accept"] = accept
    if data.draw(st.integers(0, 9), label="authorization?") == 0:
        headers["authorization"] = data.draw(
            st.sampled_from(["Bearer", "Bearer API-x", "Basic %%%", "Basic Og==", "Token x"]),
            label="authorization",
        )
    if data.draw(st.integers(0, 9), label="idempotency key?") == 0:
        headers["idempotency-key"] = data.draw(
            st.one_of(st.text(max_size=80), st.just("k" * 500)).filter(_header_safe),
            label="idempotency key",
        )
    if data.draw(st.booleans(), label="GET?"):
        params = data.draw(
            st.dictionaries(
                st.sampled_from(["query", "variables", "operationName", "id", "extensions"]),
                # a URL carries bytes: lone surrogates are sent below as raw invalid UTF-8
                st.one_of(st.text(max_size=100), st.just(SMALL_QUERY), ODD_STRINGS).filter(
                    _utf8_ok
                ),
                max_size=4,
            ),
            label="params",
        )
        request: dict[str, Any] = {"method": "GET", "url": "/api", "params": params}
        if data.draw(st.integers(0, 4), label="raw query string?") == 0:
            raw = data.draw(RAW_QUERY_STRINGS, label="raw query string")
            request = {"method": "GET", "url": f"/api?{raw}"}
        html_allowed = "text/html" in accept and not params.get("query")
    else:
        headers["content-type"] = data.draw(CONTENT_TYPES, label="content-type")
        body = data.draw(raw_bodies(targets), label="body")
        request = {"method": "POST", "url": "/api", "content": body}
        html_allowed = False
    request["headers"] = headers
    await send(client, caplog, request, html_allowed=html_allowed)


RAW_QUERY_STRINGS = st.sampled_from(
    [
        "query=%ED%A0%80",
        "query=%7B__typename%7D&variables=%ED%A0%80",
        "query=%FF%FE",
        "query=%7B__typename%7D&variables=%7B%22a%22%3A%22%ED%A0%80%22%7D",
        "query=%00",
        "query=%7B__typename%7D&operationName=%FF",
        "query=%7B__typename%7D&variables=" + "%5B" * 5000,
        "query=%7B__typename%7D&variables=%7B%22a%22%3A1e99999%7D",
    ]
)


def _utf8_ok(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _header_safe(value: str) -> bool:
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        return False
    return "\n" not in value and "\r" not in value
