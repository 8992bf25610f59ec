"""SMTP delivery (service `smtp`).

Service fields: `host` is a URL, `ssl://host:port` or `smtps://host:port` for implicit TLS
(port 465 by default) or `tls://host:port` for STARTTLS, which is then required (port 25 by
default); `user` and `password` log in. TLS is always verified against the system CAs (or the
context given), with SNI. One connection carries a batch; each message is MIME with its text and
HTML parts, Reply-To, extra headers, the custom id in `Message-Id` (`action:42` sent from
`x@org.example` gives `<action.42@org.example>`, as the Message-Id syntax has no `:` or second
`@`) and, verbatim, in `X-Proca-Custom-Id`.

A caller that must record a send exactly once passes `before_final(index)`: it is awaited when
the server has the whole message but the end-of-data mark, which alone makes the server take
it. What the callback records is then true unless the process dies in the instant between its
return and one socket write; a callback that raises abandons the message (RSET), which the
server then never delivers. The server may still refuse the message after the mark: that
failure is reported as usual, for the caller to undo its record."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from urllib.parse import urlsplit

import aiosmtplib

from proca_server.email.backends.base import (
    DeliveryFailure,
    EmailConfigError,
    EmailDeliveryError,
    build_mime,
    failed_messages,
    mime_bytes,
    scrub,
)
from proca_server.email.message import EmailMessage, loggable_custom_id, split_address

log = logging.getLogger("proca_server.email.smtp")

SCHEMES = {"ssl": (True, 465), "smtps": (True, 465), "tls": (False, 25)}
TIMEOUT = 30.0

BeforeFinal = Callable[[int], Awaitable[None]]
_LEADING_PERIOD = re.compile(rb"(?m)^\.")
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class SmtpEndpoint:
    hostname: str
    port: int
    implicit_tls: bool


def parse_smtp_url(url: str) -> SmtpEndpoint:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise EmailConfigError(
            "the SMTP host must be a URL ssl://host:port, smtps://host:port or tls://host:port"
        )
    try:
        port = parts.port
    except ValueError:
        raise EmailConfigError("the SMTP host has an invalid port") from None
    if not parts.hostname:
        raise EmailConfigError("the SMTP host URL has no host name")
    implicit, default_port = SCHEMES[scheme]
    return SmtpEndpoint(parts.hostname, port or default_port, implicit)


class SmtpBackend:
    name = "smtp"
    batch_size = 1

    def __init__(
        self,
        host_url: str,
        user: str = "",
        password: str = "",
        *,
        tls_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.endpoint = parse_smtp_url(host_url)
        self.user = user
        self._password = password
        self._tls_context = tls_context or ssl.create_default_context(cafile=ca_file)
        self._timeout = timeout

    def __repr__(self) -> str:
        e = self.endpoint
        return f"SmtpBackend({e.hostname}:{e.port}, user={self.user!r})"

    def _fail(self, reason: str, *, retryable: bool = True) -> EmailDeliveryError:
        e = self.endpoint
        text = scrub(f"{reason} ({e.hostname}:{e.port})", [self._password])
        return EmailDeliveryError(self.name, text, retryable=retryable)

    async def deliver(
        self, messages: Sequence[EmailMessage], *, before_final: BeforeFinal | None = None
    ) -> None:
        if not messages:
            return
        e = self.endpoint
        client = aiosmtplib.SMTP(
            hostname=e.hostname,
            port=e.port,
            use_tls=e.implicit_tls,
            start_tls=not e.implicit_tls,
            tls_context=self._tls_context,
            timeout=self._timeout,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPException as exc:
            raise self._fail(f"cannot connect: {exc}") from None
        except (OSError, ssl.SSLError) as exc:
            raise self._fail(f"cannot connect: {type(exc).__name__}: {exc}") from None
        try:
            if self.user or self._password:
                try:
                    await client.login(self.user, self._password)
                except aiosmtplib.SMTPAuthenticationError as exc:
                    raise self._fail(
                        f"authentication failed for user {self.user!r}: {exc.code} {exc.message}"
                    ) from None
                except aiosmtplib.SMTPException as exc:
                    raise self._fail(f"cannot log in: {exc}") from None
            failures = [
                failure
                for index, message in enumerate(messages)
                if (failure := await self._send(client, index, message, before_final)) is not None
            ]
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        if failures:
            raise failed_messages(self.name, failures, len(messages))

    async def _send(
        self,
        client: aiosmtplib.SMTP,
        index: int,
        message: EmailMessage,
        before_final: BeforeFinal | None = None,
    ) -> DeliveryFailure | None:
        mime = build_mime(message)
        recipients = [address for _, address in getaddresses([message.to, *message.cc]) if address]
        try:
            if before_final is None:
                await client.send_message(mime, recipients=recipients)
            else:
                await self._send_recorded(client, index, message, mime, recipients, before_final)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            reason = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            reason = scrub(reason, recipients)  # personal data stays out of errors
            return DeliveryFailure(index, message.custom_id, reason, retryable=False)
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx is a temporary refusal; 5xx a permanent one
            reason = scrub(f"{exc.code} {exc.message}", recipients)
            return DeliveryFailure(index, message.custom_id, reason, retryable=exc.code < 500)
        except aiosmtplib.SMTPException as exc:
            raise self._fail(str(exc)) from None
        log.info("sent %s through SMTP", loggable_custom_id(message.custom_id))
        return None

    async def _send_recorded(
        self,
        client: aiosmtplib.SMTP,
        index: int,
        message: EmailMessage,
        mime: Message,
        recipients: list[str],
        before_final: BeforeFinal,
    ) -> None:
        sender = split_address(message.sender)[1]
        if not all(a.isascii() for a in (sender, *recipients)):
            # an internationalised address needs SMTPUTF8, which only send_message negotiates:
            # recorded first, so such a letter is at most once rather than exactly once
            await before_final(index)
            await client.send_message(mime, recipients=recipients)
            return
        if not recipients:
            raise aiosmtplib.SMTPRecipientsRefused([])
        try:
            await client.mail(sender)
        except aiosmtplib.SMTPResponseException:
            await client.rset()
            raise
        refused = []
        for address in recipients:
            try:
                await client.rcpt(address)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused.append(exc)
        # a refused copy does not stop the letter; a refused addressee does
        if len(refused) == len(recipients) or recipients[0] in {r.recipient for r in refused}:
            await client.rset()
            raise aiosmtplib.SMTPRecipientsRefused(refused)
        protocol = client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        start = await client.execute_command(b"DATA")
        if start.code != aiosmtplib.SMTPStatus.start_input:
            await client.rset()
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        payload = _BARE_LINE_END.sub(b"\r\n", mime_bytes(mime))
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        protocol.write(_LEADING_PERIOD.sub(b"..", payload))
        try:
            await before_final(index)
        except BaseException:
            # without the end-of-data mark the server drops what it received
            client.close()
            raise
        protocol.write(b".\r\n")
        done = await protocol.read_response(timeout=self._timeout)
        if done.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(done.code, done.message)
