"""Carbon copies on outgoing emails: the MIME Cc header, each provider's Cc field (absent when
there is none), the SMTP envelope, the preview mailbox, and Cc addresses kept out of logs and
error texts."""

from __future__ import annotations

import json
import logging
import uuid
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage as MimeMessage
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from proca_server.email.backends import (
    BrevoBackend,
    EmailDeliveryError,
    HubspotBackend,
    MailjetBackend,
    SmtpBackend,
)
from proca_server.email.backends.base import build_mime, mime_bytes
from proca_server.email.backends.ses import SesBackend
from proca_server.email.message import EmailMessage, format_address
from proca_server.email.preview import PreviewBackend
from proca_server.models import PreviewEmail
from tests.email import ses_world
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, TlsFiles
from tests.email.providers import (
    BREVO_KEY,
    HUBSPOT_AUTH,
    MAILJET_KEY,
    MAILJET_SECRET,
    Seen,
    brevo_app,
    hubspot_app,
    mailjet_app,
)
from tests.email.ses_world import ACCESS_KEY, REGION, SECRET_KEY, SENDER, sent
from tests.local_http import serve

# the moto server and the fresh SES account of tests/email/ses_world.py
moto_url = ses_world.moto_url
ses = ses_world.ses

SUPPORTER = format_address("Ann Signer", "ann@example.com")
COLLEAGUE = "office@parliament.example"
CC = (SUPPORTER, COLLEAGUE)


def letter(n: int = 1, **fields: object) -> EmailMessage:
    values: dict[str, object] = {
        "to": format_address("Member Target", f"target{n}@parliament.example"),
        "sender": format_address("Save Trees", SENDER),
        "subject": "Please act",
        "html": "<p>Please act</p>",
        "text": "Please act",
        "custom_id": f"mtt:{n}",
        "cc": CC,
    }
    values.update(fields)
    return EmailMessage(**values)  # type: ignore[arg-type]


# --- MIME -----------------------------------------------------------------------------------------


def test_mime_carries_the_cc_header_and_never_a_bcc() -> None:
    wire = mime_bytes(build_mime(letter()))
    sent = message_from_bytes(wire, policy=policy.default)

    assert sent["Cc"] == "Ann Signer <ann@example.com>, office@parliament.example"
    assert [a.addr_spec for a in sent["Cc"].addresses] == ["ann@example.com", COLLEAGUE]
    assert sent["Bcc"] is None
    assert b"\r\nCc: Ann Signer <ann@example.com>, office@parliament.example\r\n" in wire


def test_mime_without_cc_has_no_cc_header() -> None:
    assert build_mime(letter(cc=()))["Cc"] is None


def test_a_cc_header_among_the_extra_headers_is_ignored() -> None:
    mime = build_mime(letter(cc=(), headers={"Cc": "sneaky@example.com", "Bcc": "x@example.com"}))

    assert mime["Cc"] is None and mime["Bcc"] is None


# --- Mailjet --------------------------------------------------------------------------------------


async def test_mailjet_sends_cc_and_leaves_it_out_when_empty() -> None:
    app, seen = mailjet_app()
    async with serve(app) as base:
        backend = MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base)
        await backend.deliver([letter(1), letter(2, cc=())])

    with_cc, without_cc = seen.bodies[0]["Messages"]
    assert with_cc["Cc"] == [
        {"Email": "ann@example.com", "Name": "Ann Signer"},
        {"Email": COLLEAGUE},
    ]
    assert "Cc" not in without_cc and "Bcc" not in with_cc


def mailjet_refusing_cc_app() -> tuple[Starlette, Seen]:
    """Send API v3.1 refusing Cc addresses at `invalid.example` on `Cc[i].Email`, quoting the
    address in its message as Mailjet does."""
    seen = Seen()

    async def send(request: Request) -> JSONResponse:
        body = await request.json()
        seen.requests.append((dict(request.headers), body))
        results: list[dict[str, Any]] = []
        for message in body["Messages"]:
            bad = [
                (i, c["Email"])
                for i, c in enumerate(message.get("Cc", []))
                if c["Email"].lower().endswith("invalid.example")
            ]
            if not bad:
                results.append({"Status": "success", "CustomID": message.get("CustomID", "")})
                continue
            errors = [
                {
                    "ErrorIdentifier": str(uuid.uuid4()),
                    "ErrorCode": "send-0003",
                    "StatusCode": 400,
                    "ErrorMessage": f'"{address}" is an invalid email address.',
                    "ErrorRelatedTo": [f"Cc[{i}].Email"],
                }
                for i, address in bad
            ]
            results.append({"Status": "error", "Errors": errors})
        failed = any(r["Status"] == "error" for r in results)
        return JSONResponse({"Messages": results}, status_code=400 if failed else 200)

    return Starlette(routes=[Route("/v3.1/send", send, methods=["POST"])]), seen


async def test_mailjet_refused_cc_fails_the_letter_as_a_refused_recipient_without_the_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, seen = mailjet_refusing_cc_app()
    messages = [letter(1), letter(2, cc=(COLLEAGUE, "Typo Person <ann@Mail.Invalid.example>"))]
    async with serve(app) as base:
        with (
            caplog.at_level(logging.WARNING, logger="proca_server.email.mailjet"),
            pytest.raises(EmailDeliveryError) as caught,
        ):
            await MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base).deliver(messages)

    # the letter is not counted as sent: its sender sees a refused recipient, never retried
    [failure] = caught.value.failures
    assert (failure.index, failure.recipient, failure.retryable) == (1, True, False)
    assert "invalid.example" not in failure.reason.lower()

    assert len(seen.bodies[0]["Messages"]) == 2
    [record] = caplog.records
    logged = record.getMessage()
    assert "mtt:2" in logged and "Cc[1].Email: send-0003" in logged
    assert "invalid.example" not in logged.lower() and "typo person" not in logged.lower()
    assert COLLEAGUE not in logged


# --- Brevo ----------------------------------------------------------------------------------------


async def test_brevo_sends_cc_and_leaves_it_out_when_empty() -> None:
    app, seen = brevo_app()
    async with serve(app) as base:
        await BrevoBackend(BREVO_KEY, base_url=base).deliver([letter(1), letter(2, cc=())])

    with_cc, without_cc = seen.bodies
    assert with_cc["cc"] == [
        {"email": "ann@example.com", "name": "Ann Signer"},
        {"email": COLLEAGUE},
    ]
    assert with_cc["to"] == [{"email": "target1@parliament.example", "name": "Member Target"}]
    assert "cc" not in without_cc and "bcc" not in with_cc


async def test_brevo_error_text_names_no_cc_address() -> None:
    async def send(request: Request) -> JSONResponse:
        body = await request.json()
        address = body["cc"][0]["email"]
        return JSONResponse(
            {"code": "invalid_parameter", "message": f"cc.email {address} is not valid"}, 400
        )

    app = Starlette(routes=[Route("/v3/smtp/email", send, methods=["POST"])])
    async with serve(app) as base:
        with pytest.raises(EmailDeliveryError) as caught:
            await BrevoBackend(BREVO_KEY, base_url=base).deliver([letter()])

    [failure] = caught.value.failures
    assert failure.reason == "HTTP 400: cc.email *** is not valid"
    assert not failure.retryable
    assert "ann@example.com" not in str(caught.value)


# --- HubSpot --------------------------------------------------------------------------------------


async def test_hubspot_sends_cc_as_bare_addresses() -> None:
    app, seen = hubspot_app()
    messages = [letter(1, template_ref="555"), letter(2, template_ref="555", cc=())]
    async with serve(app) as base:
        await HubspotBackend(HUBSPOT_AUTH, base_url=base).deliver(messages)

    with_cc, without_cc = (body["message"] for body in seen.bodies)
    assert with_cc["cc"] == ["ann@example.com", COLLEAGUE]
    assert with_cc["bcc"] == []
    assert without_cc["cc"] == []  # HubSpot takes the empty list, as it always has


# --- SES ------------------------------------------------------------------------------------------


def ses_backend(url: str) -> SesBackend:
    return SesBackend(REGION, ACCESS_KEY, SECRET_KEY, endpoint_url=url)


async def test_ses_raw_mail_goes_to_the_cc_addresses_too(ses: str) -> None:
    await ses_backend(ses).deliver([letter(1)])

    [raw] = await sent(ses)
    # moto lists the Destinations given, then adds the addresses of the To and Cc headers
    given, from_headers = raw["destinations"][:3], raw["destinations"][3:]
    assert given == ["target1@parliament.example", "ann@example.com", COLLEAGUE]
    assert from_headers == ["Member Target <target1@parliament.example>", SUPPORTER, COLLEAGUE]
    mime = message_from_string(raw["raw_data"], policy=policy.default)
    assert isinstance(mime, MimeMessage)
    assert mime["Cc"] == "Ann Signer <ann@example.com>, office@parliament.example"
    assert mime["Bcc"] is None


async def test_ses_raw_mail_without_cc_goes_to_the_to_address_only(ses: str) -> None:
    await ses_backend(ses).deliver([letter(1, cc=())])

    [raw] = await sent(ses)
    # the Destinations given, then the To header's address added by moto
    assert raw["destinations"] == [
        "target1@parliament.example",
        "Member Target <target1@parliament.example>",
    ]
    assert message_from_string(raw["raw_data"])["Cc"] is None


async def test_ses_templated_mail_carries_cc_addresses(ses: str) -> None:
    messages = [
        letter(1, template_ref="thank-you", variables={"firstName": "Ann"}),
        letter(2, template_ref="thank-you", cc=()),
    ]
    await ses_backend(ses).deliver(messages)

    destinations = sorted(
        (m["destinations"] for m in await sent(ses, "TemplateMessage")),
        key=lambda d: json.dumps(d),
    )
    assert destinations == [
        {"ToAddresses": ["Member Target <target1@parliament.example>"], "CcAddresses": list(CC)},
        {"ToAddresses": ["Member Target <target2@parliament.example>"]},
    ]


# --- preview --------------------------------------------------------------------------------------


async def test_preview_stores_the_cc_header(
    sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    await PreviewBackend(sessionmaker).deliver([letter(1), letter(2, cc=())])

    rows = (await session.execute(select(PreviewEmail).order_by(PreviewEmail.id))).scalars()
    headers = [row.headers for row in rows]
    assert headers == [
        {
            "Cc": "Ann Signer <ann@example.com>, office@parliament.example",
            "X-Proca-Custom-Id": "mtt:1",
        },
        {"X-Proca-Custom-Id": "mtt:2"},
    ]


# --- SMTP -----------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")
async def test_smtp_envelope_goes_to_the_cc_addresses_too(
    smtps_server: SmtpServer, tls_files: TlsFiles
) -> None:
    backend = SmtpBackend(
        smtps_server.url, SMTP_USER, SMTP_PASSWORD, tls_context=tls_files.client_context()
    )
    await backend.deliver([letter(1), letter(2, cc=())])

    with_cc, without_cc = smtps_server.handler.received
    assert with_cc.rcpt_tos == ["target1@parliament.example", "ann@example.com", COLLEAGUE]
    assert with_cc.message["Cc"] == "Ann Signer <ann@example.com>, office@parliament.example"
    assert without_cc.rcpt_tos == ["target2@parliament.example"]
    assert without_cc.message["Cc"] is None
