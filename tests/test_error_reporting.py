"""Error reporting to Sentry (SENTRY_DSN): a local server receives the envelopes at a DSN that
points at it. A crash is reported once, with its type and without the personal data and
secrets of the request; what the caller got wrong is never reported."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proca_server import error_reporting
from proca_server.action import store as action_store
from proca_server.app import create_app
from proca_server.app_state import state_of
from proca_server.broker.embedded import EmbeddedBroker
from proca_server.config import ConfigError, Settings
from proca_server.errors import NotFound, UserInputError
from proca_server.kit import extras
from proca_server.processing.processor import Processor
from tests.factories import make_world
from tests.local_http import serve
from tests.pipeline.conftest import FAST, running
from tests.widget_helpers import ADD_ACTION_CONTACT, signature

EMAIL = "annabelle.leeward@example.org"
FIRST_NAME = "Annabelle"
LAST_NAME = "Leeward"
COOKIE = "cookie-value-Zq9x7Vw2"
FORWARDED_FOR = "198.51.100.23"
CAPTCHA_SECRET = "captcha-secret-Kx81"
INFO_MARKER = "info-marker"
ROUTE_CODE = "c0de5ecret123456789abc"


@dataclass
class Sentry:
    """The receiving end of a DSN: every envelope posted to it, decompressed."""

    dsn: str
    base: str
    envelopes: list[bytes] = field(default_factory=list)

    async def flush(self) -> list[bytes]:
        # the SDK sends from its own thread to this server, which runs on the test's loop
        await asyncio.to_thread(error_reporting.flush, 10)
        return self.envelopes

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(payload)
            for envelope in self.envelopes
            for header, payload in items(envelope)
            if header.get("type") == "event"
        ]


def items(envelope: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """(item header, payload) of each item of an envelope."""
    _, _, rest = envelope.partition(b"\n")
    found = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        found.append((header, payload))
    return found


def peer(received: list[bytes]) -> Starlette:
    async def envelope(request: Request) -> Response:
        body = await request.body()
        encoding = request.headers.get("content-encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            import brotli  # the SDK compresses with brotli only when it is installed

            body = brotli.decompress(body)
        received.append(body)
        return JSONResponse({})

    async def hcaptcha(request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        return JSONResponse({"success": form.get("response") == ["good"]})

    return Starlette(
        routes=[
            Route("/api/{project}/envelope/", envelope, methods=["POST"]),
            Route("/hcaptcha", hcaptcha, methods=["POST"]),
        ]
    )


@pytest.fixture
async def sentry() -> AsyncIterator[Sentry]:
    received: list[bytes] = []
    async with serve(peer(received)) as base:
        port = base.rsplit(":", 1)[1]
        yield Sentry(f"http://public@127.0.0.1:{port}/1", base, received)
        await asyncio.to_thread(error_reporting.stop)


@pytest.fixture
async def reporting_app(settings: Settings, sentry: Sentry) -> AsyncIterator[FastAPI]:
    """The app with SENTRY_DSN, and a captcha required on signatures."""
    configured = settings.model_copy(
        update={
            "sentry_dsn": sentry.dsn,
            "hcaptcha_key": CAPTCHA_SECRET,
            "hcaptcha_url": f"{sentry.base}/hcaptcha",
            "captcha_service": "hcaptcha",
        }
    )
    application = create_app(configured)
    yield application
    await state_of(application).signature_lane.close()
    await state_of(application).engine.dispose()


@pytest.fixture
async def reporting_client(
    reporting_app: FastAPI, session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    # a route's crash is answered 500, as a server would, instead of raised into the test
    transport = httpx.ASGITransport(app=reporting_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def crash_in_the_store(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        log = logging.getLogger("proca_server.test")
        log.info("an info line %s", INFO_MARKER)
        log.warning("delivery to %s was slow", EMAIL)
        # a bug whose message carries what it should not
        raise RuntimeError(f"cannot store {EMAIL} for {token}")

    monkeypatch.setattr(action_store, "insert_signature", broken)


async def sign_with_everything(
    client: httpx.AsyncClient, page_id: int, token: str, captcha: str = "good"
) -> httpx.Response:
    variables = signature(page_id, email=EMAIL)
    variables["contact"]["firstName"] = FIRST_NAME
    variables["contact"]["lastName"] = LAST_NAME
    body = {
        "query": ADD_ACTION_CONTACT,
        "variables": variables,
        "operationName": "addActionContact",
        "extensions": {"captcha": captcha},
    }
    return await client.post(
        f"/api?id={page_id}&email={EMAIL}",
        content=json.dumps(body),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "Cookie": f"tracking={COOKIE}",
            "X-Forwarded-For": FORWARDED_FOR,
            "X-Real-Ip": FORWARDED_FOR,
        },
    )


def assert_no_personal_data(envelope: bytes, *secrets: str) -> None:
    for value in (EMAIL, FIRST_NAME, LAST_NAME, COOKIE, FORWARDED_FOR, CAPTCHA_SECRET, *secrets):
        assert value.encode() not in envelope, value
        assert value.lower().encode() not in envelope.lower(), value
    # nor the query text or the variables
    assert b"addActionContact(actionPageId" not in envelope
    assert b"customFields" not in envelope


async def test_a_resolver_crash_is_reported_once_without_personal_data(
    reporting_client: httpx.AsyncClient,
    session: AsyncSession,
    sentry: Sentry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await make_world(session)
    token = world.tokens["owner"]
    crash_in_the_store(monkeypatch, token)

    response = await sign_with_everything(reporting_client, world.page.id, token)

    # the caller gets what it got without error reporting
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "internal"}
    assert error["path"] == ["addActionContact"]
    [envelope] = await sentry.flush()
    assert_no_personal_data(envelope, token)
    [event] = sentry.events()
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == "cannot store [email] for [token]"
    functions = [f["function"] for f in exception["stacktrace"]["frames"]]
    assert "broken" in functions
    assert all("vars" not in f for f in exception["stacktrace"]["frames"])
    assert event["logger"] == "proca_server.graphql"
    assert event["level"] == "error"
    assert event["environment"] == "test"
    assert event["tags"] == {"component": "api"}
    assert event["request"] == {"method": "POST", "url": "/api"}
    assert event["transaction"] == "/api"
    assert "user" not in event and "extra" not in event
    crumbs = [c["message"] for c in event["breadcrumbs"]["values"]]
    assert "delivery to [email] was slow" in crumbs
    # an INFO record is no breadcrumb (the frames' source lines show the code, not the value)
    assert INFO_MARKER.encode() not in envelope


async def test_what_the_caller_got_wrong_is_never_reported(
    reporting_client: httpx.AsyncClient,
    session: AsyncSession,
    sentry: Sentry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await make_world(session)
    token = world.tokens["owner"]
    client = reporting_client

    invalid = await client.post("/api", json={"query": "{ noSuchField }"})
    assert invalid.json()["errors"][0]["message"].startswith("Cannot query field")
    unparsable = await client.post("/api", json={"query": "{"})
    assert "errors" in unparsable.json()
    unknown_page = await sign_with_everything(client, 987654321, token)
    assert unknown_page.json()["errors"][0]["extensions"]["code"] == "not_found"
    bad_captcha = await sign_with_everything(client, world.page.id, token, captcha="bad")
    assert bad_captcha.json()["errors"][0]["extensions"]["code"] == "bad_captcha"
    refused = await client.post(
        "/api", json={"query": "{ currentUser { id } }"}, headers={"Authorization": "Bearer nope"}
    )
    assert refused.status_code == 401
    forbidden = await client.post(
        "/api",
        json={"query": '{ org(name: "someone-else") { id } }'},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert forbidden.json()["errors"][0]["extensions"]["code"] in {"not_found", "permission_denied"}
    assert (await client.get("/no/such/page")).status_code == 404
    assert (await client.get("/api?query=mutation{x}")).status_code == 405
    assert await sentry.flush() == []

    # the reporting works all the same: the next crash is the only envelope
    crash_in_the_store(monkeypatch, token)
    await sign_with_everything(client, world.page.id, token)
    [envelope] = await sentry.flush()
    assert b'"RuntimeError"' in envelope


async def test_a_route_crash_is_reported_once_with_the_route_template(
    reporting_app: FastAPI, sentry: Sentry
) -> None:
    code = ROUTE_CODE

    async def boom(code: str) -> Response:
        raise RuntimeError("the route broke")

    async def teapot(code: str) -> Response:
        raise HTTPException(status_code=418)

    reporting_app.add_api_route("/boom/{code}", boom)
    reporting_app.add_api_route("/teapot/{code}", teapot)

    # a real server, which also logs the crash at ERROR: still one report
    async with serve(reporting_app) as base, httpx.AsyncClient(base_url=base) as client:
        assert (await client.get(f"/teapot/{code}")).status_code == 418
        assert await sentry.flush() == []
        response = await client.get(
            f"/boom/{code}?email={EMAIL}", headers={"Cookie": f"t={COOKIE}"}
        )
        assert response.status_code == 500
        [envelope] = await sentry.flush()
    assert_no_personal_data(envelope, code)
    [event] = sentry.events()
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["exception"]["values"][-1]["value"] == "the route broke"
    assert event["request"] == {"method": "GET", "url": "/boom/{code}"}
    assert event["transaction"] == "/boom/{code}"


@pytest.mark.slow  # the proca-server command in a subprocess
async def test_a_command_that_crashes_is_reported(sentry: Sentry, tmp_path: Any) -> None:
    program = (
        "import sys\n"
        "import proca_server.cli as cli\n"
        "def broken(settings):\n"
        f"    raise RuntimeError('the worker broke for {EMAIL}')\n"
        "cli.require_database = broken\n"
        "sys.argv = ['proca-server', 'worker']\n"
        "cli.main()\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        program,
        env={**os.environ, "SENTRY_DSN": sentry.dsn, "PROCA_DATA_DIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 1
    assert b"RuntimeError" in err
    # the process sent its report before it ended
    [envelope] = sentry.envelopes
    assert_no_personal_data(envelope)
    [event] = sentry.events()
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["exception"]["values"][-1]["value"] == "the worker broke for [email]"
    assert event["exception"]["values"][-1]["mechanism"]["type"] == "excepthook"
    assert event["tags"] == {"component": "worker"}


async def test_a_worker_crash_is_reported(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    sentry: Sentry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert error_reporting.start(settings.model_copy(update={"sentry_dsn": sentry.dsn}), "worker")

    async def broken(self: Processor, ids: list[int]) -> int:
        raise RuntimeError(f"cannot process {EMAIL}")

    monkeypatch.setattr(Processor, "process_batch", broken)
    world = await make_world(session, roles=())
    broker = EmbeddedBroker(state_of(app).sessionmaker, retry_delay=0.1, poll_interval=0.1)
    try:
        async with running(app, broker, FAST):
            variables = signature(world.page.id, email=EMAIL)
            variables["contact"]["firstName"] = FIRST_NAME
            response = await client.post(
                "/api",
                json={"query": ADD_ACTION_CONTACT, "variables": variables},
            )
            assert "errors" not in response.json(), response.text
            deadline = asyncio.get_running_loop().time() + 15
            while not await sentry.flush():
                assert asyncio.get_running_loop().time() < deadline, "no report"
                await asyncio.sleep(0.1)
    finally:
        await broker.close()
    for envelope in sentry.envelopes:
        assert_no_personal_data(envelope)
    event = sentry.events()[0]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["exception"]["values"][-1]["value"] == "cannot process [email]"
    assert event["logger"] == "proca_server.processing.processor"
    assert event["tags"] == {"component": "worker"}


def test_without_a_dsn_nothing_starts(settings: Settings) -> None:
    assert settings.sentry_dsn is None
    assert error_reporting.start(settings, "api") is False


def test_a_dsn_without_the_library_refuses_to_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(extras.EXTRAS, "sentry", ("sentry_sdk_is_not_installed",))
    configured = settings.model_copy(update={"sentry_dsn": "http://public@127.0.0.1:9/1"})
    with pytest.raises(extras.MissingExtra) as caught:
        create_app(configured)
    assert str(caught.value) == (
        "error reporting (SENTRY_DSN) needs the sentry libraries: install them with "
        "pip install 'proca-server[sentry]'"
    )


@pytest.mark.slow  # the proca-server command in a subprocess
@pytest.mark.parametrize("command", ["worker", "serve"])
async def test_the_commands_refuse_a_dsn_without_the_library_in_one_line(
    command: str, tmp_path: Any
) -> None:
    # as if sentry_sdk were not installed: importlib finds no module set to None
    program = (
        "import sys; sys.modules['sentry_sdk'] = None; "
        f"sys.argv = ['proca-server', '{command}']; "
        "from proca_server.cli import main; main()"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        program,
        env={
            **os.environ,
            "SENTRY_DSN": "http://public@127.0.0.1:9/1",
            "PROCA_DATA_DIR": str(tmp_path),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 1
    assert err.decode() == (
        "error: error reporting (SENTRY_DSN) needs the sentry libraries: install them with "
        "pip install 'proca-server[sentry]'\n"
    )


def test_a_dsn_that_is_not_one_is_a_one_line_configuration_error(settings: Settings) -> None:
    configured = settings.model_copy(update={"sentry_dsn": "not a dsn"})
    with pytest.raises(ConfigError, match=r"^SENTRY_DSN is not a valid Sentry DSN$"):
        error_reporting.start(configured, "api")


# the allow-list itself, on events the SDK could build


def full_event() -> dict[str, Any]:
    frame = {
        "filename": "proca_server/x.py",
        "module": "proca_server.x",
        "function": "f",
        "lineno": 3,
        "vars": {"email": EMAIL},
    }
    return {
        "event_id": "e1",
        "level": "error",
        "logger": "proca_server.x",
        "exception": {
            "values": [
                {
                    "type": "IntegrityError",
                    "value": (
                        f"duplicate key: Key (email)=({EMAIL}) already exists\n"  # noqa: S608
                        f"[SQL: INSERT INTO supporters VALUES ('{FIRST_NAME}')]"
                    ),
                    "stacktrace": {"frames": [frame]},
                    "mechanism": {"type": "logging", "handled": True, "data": {"x": EMAIL}},
                }
            ]
        },
        "logentry": {"message": "failed for %s", "params": [EMAIL], "formatted": EMAIL},
        "request": {
            "method": "POST",
            "url": f"http://testserver/link/s/{COOKIE}?email={EMAIL}",
            "query_string": f"email={EMAIL}",
            "headers": {"Authorization": "Bearer x", "X-Forwarded-For": FORWARDED_FOR},
            "cookies": {"t": COOKIE},
            "data": {"variables": {"email": EMAIL}},
            "env": {"REMOTE_ADDR": FORWARDED_FOR},
        },
        "transaction": f"/link/s/{COOKIE}",
        "transaction_info": {"source": "url"},
        "user": {"ip_address": FORWARDED_FOR, "email": EMAIL},
        "extra": {"name": FIRST_NAME},
        "tags": {"component": "api", "who": LAST_NAME},
        "contexts": {"trace": {"trace_id": "t", "data": {"x": EMAIL}}, "custom": {"x": EMAIL}},
        "breadcrumbs": {
            "values": [
                {"type": "log", "level": "warning", "message": f"to {EMAIL}", "data": {"n": 1}},
                {"type": "http", "level": "info", "data": {"url": f"http://x/?e={EMAIL}"}},
            ]
        },
    }


def test_an_event_keeps_only_what_is_allowed() -> None:
    kept = error_reporting.before_send(full_event(), {})  # type: ignore[arg-type]
    assert kept is not None
    text = json.dumps(kept)
    for value in (EMAIL, FIRST_NAME, LAST_NAME, COOKIE, FORWARDED_FOR):
        assert value not in text, value
    assert kept["exception"]["values"][0] == {
        "type": "IntegrityError",
        "value": "duplicate key: Key (email)=([filtered]) already exists\n[SQL]",
        "stacktrace": {
            "frames": [
                {
                    "filename": "proca_server/x.py",
                    "module": "proca_server.x",
                    "function": "f",
                    "lineno": 3,
                }
            ]
        },
        "mechanism": {"type": "logging", "handled": True},
    }
    assert kept["request"] == {"method": "POST"}
    assert "transaction" not in kept
    assert kept["logentry"] == {"message": "failed for %s", "formatted": "[email]"}
    assert kept["tags"] == {"component": "api"}
    assert kept["contexts"] == {"trace": {"trace_id": "t"}}
    assert kept["breadcrumbs"] == {
        "values": [{"type": "log", "level": "warning", "message": "to [email]"}]
    }


@pytest.mark.parametrize(
    "error",
    [
        NotFound("no page"),
        UserInputError("bad"),
        GraphQLError("Syntax Error"),
        asyncio.CancelledError(),
        HTTPException(status_code=404),
    ],
)
def test_expected_errors_are_dropped(error: BaseException) -> None:
    hint = {"exc_info": (type(error), error, None)}
    assert error_reporting.before_send(full_event(), hint) is None  # type: ignore[arg-type]


def test_a_server_error_is_kept() -> None:
    error = HTTPException(status_code=503)
    hint = {"exc_info": (type(error), error, None)}
    assert error_reporting.before_send(full_event(), hint) is not None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("mail Ann.Lee+x@mail.example.co.uk now", "mail [email] now"),
        ("Authorization: Bearer abc.def", "Authorization=[filtered]"),
        ("sent Bearer abc.def", "sent Bearer [filtered]"),
        ("token=abc", "token=[filtered]"),
        ("jwt eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl end", "jwt [token] end"),
        ("key Zm9vYmFyYmF6cXV4MTIzNDU2 end", "key [token] end"),
        ("from 203.0.113.9 and 2001:db8::1:2:3", "from [address] and [address]"),
        ("call +33 6 12 34 56 78", "call [number]"),
        ("see https://u:p@host/x?code=1 now", "see [url] now"),
        ("KeyError: 'first_name'", "KeyError: 'first_name'"),
        ("ActionProcessingStatus is not valid", "ActionProcessingStatus is not valid"),
    ],
)
def test_scrub(text: str, scrubbed: str) -> None:
    assert error_reporting.scrub(text) == scrubbed
