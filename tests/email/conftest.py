"""Peers for the email backends: a certificate authority made for the run, and real SMTP
servers (aiosmtpd) speaking implicit TLS or STARTTLS with AUTH."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.local_http import free_port
from tests.tls import TlsFiles, make_tls_files

SMTP_USER = "mailer"
SMTP_PASSWORD = "Sm7p-pa55word"


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: MimeMessage
    login: str | None
    tls: bool


@dataclass
class SmtpHandler:
    """Keeps what arrives; refuses recipients at `refused.example`."""

    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, MimeMessage)
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                login=login,
                tls=server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 OK"

    def authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        ok = login == SMTP_USER and password == SMTP_PASSWORD
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@dataclass
class SmtpServer:
    url: str
    handler: SmtpHandler


def run_smtp_server(
    tls: TlsFiles, *, implicit: bool, handler: SmtpHandler | None = None
) -> Iterator[SmtpServer]:
    """A server for the duration of a fixture; `handler` decides what it answers."""
    handler = handler or SmtpHandler()
    port = free_port()
    context = tls.server_context()
    options: dict[str, Any] = {"authenticator": handler.authenticate}
    if implicit:
        # aiosmtpd only counts STARTTLS as TLS; here the whole connection is TLS
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            ssl_context=context,
            auth_require_tls=False,
            **options,
        )
    else:
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            **options,
        )
    controller.start()
    try:
        yield SmtpServer(f"{'ssl' if implicit else 'tls'}://127.0.0.1:{port}", handler)
    finally:
        controller.stop()


@pytest.fixture
def smtps_server(tls_files: TlsFiles) -> Iterator[SmtpServer]:
    """Implicit TLS: `ssl://127.0.0.1:<port>`."""
    yield from run_smtp_server(tls_files, implicit=True)


@pytest.fixture
def starttls_server(tls_files: TlsFiles) -> Iterator[SmtpServer]:
    """STARTTLS required before AUTH and MAIL: `tls://127.0.0.1:<port>`."""
    yield from run_smtp_server(tls_files, implicit=False)
