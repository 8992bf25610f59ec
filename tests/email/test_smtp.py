"""The SMTP backend against real local servers: implicit TLS and STARTTLS, both with AUTH and
certificates verified against the run's own CA."""

from __future__ import annotations

from typing import Any

import pytest

from proca_server.email.backends import EmailConfigError, EmailDeliveryError, SmtpBackend
from proca_server.email.backends.smtp import SmtpEndpoint, parse_smtp_url
from proca_server.email.message import EmailMessage, format_address
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, TlsFiles

# aiosmtpd itself sets its deprecated Session.login_data on every AUTH
pytestmark = pytest.mark.filterwarnings(
    "ignore:Session.login_data is deprecated:DeprecationWarning"
)


def thank_you(**fields: str | None) -> EmailMessage:
    values: dict[str, Any] = {
        "to": format_address("Ann Signer", "ann@example.com"),
        "sender": format_address("Save Trees", "hello@trees.example"),
        "subject": "Thank you for signing",
        "html": "<p>Thank <b>you</b></p>",
        "text": "Thank you",
    }
    values.update(fields)
    return EmailMessage(
        **values,
        reply_to="campaigner@trees.example",
        custom_id="action:42",
        headers={"X-Campaign": "trees", "Subject": "must not override"},
    )


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("ssl://smtp.example.org", SmtpEndpoint("smtp.example.org", 465, True)),
        ("smtps://smtp.example.org:2465", SmtpEndpoint("smtp.example.org", 2465, True)),
        ("tls://smtp.example.org", SmtpEndpoint("smtp.example.org", 25, False)),
        ("TLS://smtp.example.org:587", SmtpEndpoint("smtp.example.org", 587, False)),
    ],
)
def test_smtp_url_forms(url: str, endpoint: SmtpEndpoint) -> None:
    assert parse_smtp_url(url) == endpoint


@pytest.mark.parametrize("url", ["smtp.example.org", "http://smtp.example.org", "ssl://:25"])
def test_malformed_smtp_url_is_a_config_error(url: str) -> None:
    with pytest.raises(EmailConfigError):
        parse_smtp_url(url)


async def test_implicit_tls_sends_multipart_with_custom_message_id(
    smtps_server: SmtpServer, tls_files: TlsFiles
) -> None:
    backend = SmtpBackend(
        smtps_server.url, SMTP_USER, SMTP_PASSWORD, tls_context=tls_files.client_context()
    )
    await backend.deliver([thank_you()])

    [got] = smtps_server.handler.received
    assert got.tls and got.login == SMTP_USER
    assert got.mail_from == "hello@trees.example"
    assert got.rcpt_tos == ["ann@example.com"]
    mime = got.message
    assert mime["Message-Id"] == "<action.42@trees.example>"
    assert mime["X-Proca-Custom-Id"] == "action:42"
    assert mime["From"] == "Save Trees <hello@trees.example>"
    assert mime["To"] == "Ann Signer <ann@example.com>"
    assert mime["Reply-To"] == "campaigner@trees.example"
    assert mime["Subject"] == "Thank you for signing"
    assert mime["X-Campaign"] == "trees"
    assert mime.get_content_type() == "multipart/alternative"
    text = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    assert text is not None and text.get_content().strip() == "Thank you"
    assert html is not None and html.get_content().strip() == "<p>Thank <b>you</b></p>"


async def test_starttls_is_required_and_used(
    starttls_server: SmtpServer, tls_files: TlsFiles
) -> None:
    backend = SmtpBackend(starttls_server.url, SMTP_USER, SMTP_PASSWORD, ca_file=str(tls_files.ca))
    await backend.deliver([thank_you(html="<p>html only</p>", text=None), thank_you()])

    assert [r.tls for r in starttls_server.handler.received] == [True, True]
    assert starttls_server.handler.logins == [(SMTP_USER, SMTP_PASSWORD)]  # one session
    first = starttls_server.handler.received[0].message
    assert first.get_content_type() == "text/html"
    assert first.get_content().strip() == "<p>html only</p>"


async def test_wrong_password_fails_without_revealing_it(
    smtps_server: SmtpServer, tls_files: TlsFiles
) -> None:
    wrong = "Wr0ng-secret-value"
    backend = SmtpBackend(
        smtps_server.url, SMTP_USER, wrong, tls_context=tls_files.client_context()
    )
    with pytest.raises(EmailDeliveryError) as caught:
        await backend.deliver([thank_you()])

    error = caught.value
    assert "authentication failed" in str(error)
    assert SMTP_USER in str(error)
    assert wrong not in str(error) and wrong not in repr(error.args)
    assert error.retryable
    # (the client tries each mechanism the server offers)
    assert set(smtps_server.handler.logins) == {(SMTP_USER, wrong)}
    assert smtps_server.handler.received == []


async def test_unknown_certificate_authority_is_refused(smtps_server: SmtpServer) -> None:
    # the system CAs do not know the test CA: verification must fail, not be skipped
    backend = SmtpBackend(smtps_server.url, SMTP_USER, SMTP_PASSWORD)
    with pytest.raises(EmailDeliveryError) as caught:
        await backend.deliver([thank_you()])
    assert "cannot connect" in str(caught.value)
    assert smtps_server.handler.logins == []


async def test_refused_recipient_fails_that_message_for_good(
    smtps_server: SmtpServer, tls_files: TlsFiles
) -> None:
    backend = SmtpBackend(
        smtps_server.url, SMTP_USER, SMTP_PASSWORD, tls_context=tls_files.client_context()
    )
    refused = thank_you(to="nobody@refused.example")
    with pytest.raises(EmailDeliveryError) as caught:
        await backend.deliver([refused, thank_you()])

    [failure] = caught.value.failures
    assert (failure.index, failure.custom_id, failure.retryable) == (0, "action:42", False)
    assert "550" in failure.reason and "nobody@refused.example" not in failure.reason
    assert not caught.value.retryable
    assert [r.rcpt_tos for r in smtps_server.handler.received] == [["ann@example.com"]]
