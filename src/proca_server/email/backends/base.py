"""What every delivering backend shares: the delivery error, the MIME rendering of a message,
and the HTTP call of the provider APIs.

A backend's `deliver(messages)` returns when every message was accepted (or dropped on purpose:
a provider saying the recipient address itself is unusable). Otherwise it raises
`EmailDeliveryError`, naming the messages that failed when the provider answers per message;
`retryable` says whether sending again may help. Messages never carry credentials: a provider's
answer is quoted, with any secret of the service blanked out."""

from __future__ import annotations

import email.policy
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from typing import Any

import httpx

from proca_server.email.message import Attachment, EmailMessage, split_address

# Header carrying the custom id where the provider has no field of its own for it.
CUSTOM_ID_HEADER = "X-Proca-Custom-Id"
# Headers the backends set themselves; a message's extra headers cannot override them.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in ("From", "To", "Subject", "Reply-To", "Message-Id", "Date", "Cc", "Bcc", "Sender")
)
HTTP_TIMEOUT = 30.0
_QP_UTF8 = Charset("utf-8")
_QP_UTF8.body_encoding = QP
_WIRE = email.policy.compat32.clone(linesep="\r\n")
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


@dataclass(frozen=True)
class DeliveryFailure:
    index: int
    custom_id: str | None
    reason: str
    retryable: bool = True
    # the provider refused a recipient address itself (never retryable): a supporter email
    # to a refused address has nothing left to do, a letter to a target has failed
    recipient: bool = False


class EmailDeliveryError(Exception):
    """Messages could not be delivered. `failures` lists them when the provider answered per
    message; empty means the whole batch failed."""

    def __init__(
        self,
        backend: str,
        reason: str,
        *,
        retryable: bool = True,
        failures: Sequence[DeliveryFailure] = (),
    ) -> None:
        super().__init__(f"{backend}: {reason}")
        self.backend = backend
        self.reason = reason
        self.failures = tuple(failures)
        self.retryable = retryable if not failures else any(f.retryable for f in failures)


def failed_messages(
    backend: str, failures: Sequence[DeliveryFailure], total: int
) -> EmailDeliveryError:
    first = failures[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    reason = f"{len(failures)} of {total} not sent: {first.reason}{more}"
    return EmailDeliveryError(backend, reason, failures=failures)


@dataclass(frozen=True)
class RemoteTemplate:
    """A template kept by a provider: its name there and the reference a message gives."""

    name: str
    ref: str


class TemplateListError(Exception):
    """The provider's template list could not be read; the message never names a secret."""


class EmailConfigError(ValueError):
    """A service's fields cannot make a backend (a malformed SMTP URL, an unknown type)."""


def scrub(text: str, secrets: Iterable[str]) -> str:
    # longest first, so a secret inside another (`ann@x.org` in `joann@x.org`) leaves no trace;
    # regardless of case, as providers may echo an address lower-cased
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    return text


def reply_to_of(message: EmailMessage) -> str | None:
    """The message's Reply-To, whether given as a field or as a header."""
    if message.reply_to:
        return message.reply_to
    return next((v for k, v in message.headers.items() if k.lower() == "reply-to"), None)


def extra_headers(message: EmailMessage) -> dict[str, str]:
    return {k: v for k, v in message.headers.items() if k.lower() not in RESERVED_HEADERS}


def envelope_recipients(message: EmailMessage) -> list[str]:
    """The bare addresses the message goes to: its To, then its Cc."""
    return [address for _, address in getaddresses([message.to, *message.cc]) if address]


def message_id_for(message: EmailMessage) -> str:
    """`<custom id@sender's domain>`, the custom id written as a Message-Id allows (`:` and `@`
    are not: `action:42` becomes `<action.42@domain>`)."""
    domain = split_address(message.sender)[1].rpartition("@")[2] or "localhost"
    if message.custom_id:
        local = _NOT_ATEXT.sub(".", message.custom_id).strip(".")
        local = re.sub(r"\.{2,}", ".", local)
        if local:
            return f"<{local}@{domain}>"
    return make_msgid(domain=domain)


def _address_header(value: str) -> str:
    """`Name <address>` items with any non-ASCII name encoded (RFC 2047)."""
    return ", ".join(
        formataddr((name, address), charset="utf-8") for name, address in getaddresses([value])
    )


def _text_header(value: str) -> Any:
    """A header of text; a non-ASCII one as a Header, which the generator folds and encodes
    (typed Any: the stubs only know str values)."""
    return value if value.isascii() else Header(value, "utf-8", header_name="Subject")


def _part(text: str, subtype: str) -> Message:
    # quoted-printable: readable in the raw message, and 7-bit safe for every server
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.set_payload(text if text.endswith("\n") else text + "\n", _QP_UTF8)
    return part


def _attachment_part(attachment: Attachment) -> Message:
    maintype, _, subtype = attachment.content_type.partition("/")
    if not maintype or not subtype:
        maintype, subtype = "application", "octet-stream"
    part = MIMENonMultipart(maintype, subtype)
    part.set_payload(attachment.content)
    encode_base64(part)
    name: Any = attachment.filename
    if not name.isascii():
        name = ("utf-8", "", name)  # RFC 2231
    part.add_header(
        "Content-Disposition", "inline" if attachment.inline else "attachment", filename=name
    )
    if attachment.content_id:
        part["Content-ID"] = f"<{attachment.content_id}>"
    return part


def build_mime(message: EmailMessage) -> Message:
    """The message as MIME: text and HTML as alternatives, then any attachments (the whole
    being multipart/mixed), Cc, Reply-To, extra headers, a Message-Id made from the custom id,
    and the custom id as is in `CUSTOM_ID_HEADER`.

    Built with the email package's classic (compat32) classes: the modern API parses every
    header it is given again, which was most of the CPU of sending a letter."""
    if message.text is not None and message.html is not None:
        mime: Message = MIMEMultipart(
            "alternative", _subparts=[_part(message.text, "plain"), _part(message.html, "html")]
        )
    elif message.html is not None:
        mime = _part(message.html, "html")
    else:
        mime = _part(message.text or "", "plain")
    if message.attachments:
        mime = MIMEMultipart(
            "mixed", _subparts=[mime, *(_attachment_part(a) for a in message.attachments)]
        )
    mime["From"] = _address_header(message.sender)
    mime["To"] = _address_header(message.to)
    if message.cc:
        mime["Cc"] = _address_header(", ".join(message.cc))
    mime["Subject"] = _text_header(" ".join(message.subject.split()))
    mime["Date"] = formatdate(localtime=False)
    mime["Message-Id"] = message_id_for(message)
    reply_to = reply_to_of(message)
    if reply_to:
        mime["Reply-To"] = _address_header(reply_to)
    if message.custom_id:
        mime[CUSTOM_ID_HEADER] = message.custom_id
    for name, value in extra_headers(message).items():
        mime[name] = _text_header(" ".join(value.split()))
    return mime


def mime_bytes(mime: Message) -> bytes:
    """The message as sent: CRLF line ends."""
    return mime.as_bytes(policy=_WIRE)


def template_number(message: EmailMessage) -> int | None:
    """A provider template id that must be a number (Mailjet, Brevo, HubSpot)."""
    ref = message.template_ref
    return int(ref) if ref is not None and ref.strip().isdigit() else None


def _error_text(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "ErrorMessage", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text[:300].strip()


def retryable_status(status: int) -> bool:
    # authentication and rate limits may be fixed by the provider or the org; a malformed
    # request is sent the same way again
    return status >= 500 or status in (401, 403, 408, 429)


async def post_json(
    client: httpx.AsyncClient,
    backend: str,
    url: str,
    body: Mapping[str, Any] | Sequence[Any],
    *,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    secrets: Sequence[str] = (),
    accept: Iterable[int] = (),
) -> httpx.Response:
    """POST `body` as JSON; a transport failure or an unexpected status raises
    `EmailDeliveryError` with the provider's message. Statuses in `accept` are returned for the
    caller to read."""
    try:
        if auth is None:
            response = await client.post(url, json=body, headers=headers)
        else:
            response = await client.post(url, json=body, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        reason = scrub(f"{type(exc).__name__}: {exc}", secrets)
        raise EmailDeliveryError(backend, reason) from None
    if response.is_success or response.status_code in set(accept):
        return response
    reason = scrub(f"HTTP {response.status_code}: {_error_text(response)}", secrets)
    raise EmailDeliveryError(backend, reason, retryable=retryable_status(response.status_code))


async def get_json(
    client: httpx.AsyncClient,
    backend: str,
    url: str,
    params: Mapping[str, str | int],
    *,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    secrets: Sequence[str] = (),
) -> Any:
    """GET a provider's JSON answer; anything else raises `TemplateListError`."""
    try:
        if auth is None:
            response = await client.get(url, params=params, headers=headers)
        else:
            response = await client.get(url, params=params, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        raise TemplateListError(scrub(f"{backend}: {type(exc).__name__}: {exc}", secrets)) from None
    if not response.is_success:
        reason = f"{backend}: HTTP {response.status_code}: {_error_text(response)}"
        raise TemplateListError(scrub(reason, secrets))
    try:
        return response.json()
    except ValueError:
        raise TemplateListError(f"{backend}: the answer is not JSON") from None


TEMPLATE_PAGE_SIZE = 50
# a bound on the pages read, against a provider answering full pages forever
MAX_TEMPLATE_PAGES = 200


async def list_paged_templates(
    page: Callable[[int, int], Awaitable[list[Any]]], name_key: str, id_key: str
) -> list[RemoteTemplate]:
    """Every template of an offset-paged listing: `page(limit, offset)` gives that page's
    entries (dicts with the name under `name_key`, the ref under `id_key`); the listing ends
    at the first short page."""
    found: list[RemoteTemplate] = []
    for number in range(MAX_TEMPLATE_PAGES):
        entries = await page(TEMPLATE_PAGE_SIZE, number * TEMPLATE_PAGE_SIZE)
        for entry in entries:
            if isinstance(entry, dict) and entry.get(name_key) and entry.get(id_key):
                found.append(RemoteTemplate(str(entry[name_key]), str(entry[id_key])))
        if len(entries) < TEMPLATE_PAGE_SIZE:
            break
    return found


@asynccontextmanager
async def http_client(client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The backend's own client when it was given one (tests, a shared pool), else a fresh one
    for this delivery."""
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as fresh:
        yield fresh
