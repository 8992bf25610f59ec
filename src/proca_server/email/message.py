"""An outgoing email, its custom id, and who it is sent from.

Sender rules, for a message sent through a backend (the org's own or one borrowed from the
instance org):
- no From yet (thank-you, confirm, notifications): From is the org's title and `email_from`,
  or, when the org has none, that of the org owning the backend;
- From already set (MTT emails sent "as" the supporter): the sending address is the service's
  `sending_from` or the owning org's `email_from`. A From equal to it is kept; any other is
  rewritten onto the sending domain, as `<org name>@<domain>` when the org turned
  `sender_rewrite` off, else as an SRS address (below); the original From then becomes the
  Reply-To when the org has `reply_enabled`.

SRS address: `<prefix>=<HHHH>=<TT>=<orig domain>=<orig user>@<sending domain>`, where TT is the
day number since the Unix epoch modulo 1024 written in the base32 alphabet A-Z, 2-7 (most
significant digit first, no padding) and HHHH the first four upper-case hex digits of
HMAC-SHA1(key, TT ‖ orig domain ‖ orig user)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email.utils import formataddr, parseaddr
from typing import Any

# `test`: a test email of `proca-server email test`, which no bounce report leads back to
CUSTOM_ID_KINDS = ("action", "mtt", "user", "test")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes = field(repr=False)
    content_type: str = "application/octet-stream"
    # the HTML part may show it as `cid:<content_id>`
    content_id: str | None = None
    # shown in the message (an image) rather than offered as a file
    inline: bool = False


@dataclass(frozen=True)
class EmailMessage:
    to: str
    # the From header (`from` is a Python keyword); "" while the sender rules have not run
    sender: str
    subject: str
    html: str | None = None
    text: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    reply_to: str | None = None
    # `action:<id>`, `mtt:<message id>`, `user:<email>` or `test:<random>`: carried to the
    # provider so a bounce report can be traced back to what was sent
    custom_id: str | None = None
    # a template kept by the provider (Mailjet TemplateID, Brevo templateId, HubSpot emailId,
    # SES template name), which the provider renders with `variables`
    template_ref: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    # carbon copies, each `Name <address>` or a bare address like `to`; never a Bcc
    cc: tuple[str, ...] = ()
    # files sent with the message (a backend that cannot carry them fails the message)
    attachments: tuple[Attachment, ...] = ()


def format_address(name: str | None, address: str) -> str:
    """`Name <address>`, quoted as RFC 5322 needs; just the address when there is no name."""
    return formataddr((name, address)) if name else address


def split_address(value: str) -> tuple[str, str]:
    """(display name, address) of `Name <address>` or a bare address."""
    name, address = parseaddr(value)
    return name, address or value


def format_custom_id(kind: str, id: int | str) -> str:
    if kind not in CUSTOM_ID_KINDS:
        raise ValueError(f"unknown custom id kind {kind!r}")
    return f"{kind}:{id}"


def parse_custom_id(value: str | None) -> tuple[str, int | str] | None:
    """(`action` | `mtt`, int) or (`user`, email); None for anything else."""
    if not value:
        return None
    kind, _, rest = value.partition(":")
    if kind in ("action", "mtt") and rest.isdigit():
        return kind, int(rest)
    if kind == "user" and rest:
        return kind, rest
    return None


def loggable_custom_id(value: str | None) -> str:
    """A custom id fit for a log line: `user:` ids carry an email address."""
    if value is None:
        return "-"
    return "user:…" if value.startswith("user:") else value


# --- sender rules ---------------------------------------------------------------------------------

SRS_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _base32_digits(n: int) -> str:
    digits = ""
    while True:
        n, low = divmod(n, 32)
        digits = SRS_ALPHABET[low] + digits
        if n == 0:
            return digits


def srs_timestamp(day: date) -> str:
    days = (day - date(1970, 1, 1)).days
    return _base32_digits(days % 1024)


def srs_local_part(user: str, domain: str, *, key: str, prefix: str = "SRS0", day: date) -> str:
    stamp = srs_timestamp(day)
    digest = hmac.new(key.encode(), (stamp + domain + user).encode(), hashlib.sha1)
    return f"{prefix}={digest.hexdigest().upper()[:4]}={stamp}={domain}={user}"


@dataclass(frozen=True)
class SenderRules:
    """What decides the From of an org's emails: the org and the backend it sends through."""

    org_name: str
    org_title: str
    email_from: str | None
    # email_from of the org owning the backend (the org itself unless borrowed through SYSTEM)
    owner_email_from: str | None
    # the service's verified sender address
    sending_from: str | None = None
    sender_rewrite: bool = True
    reply_enabled: bool = True

    @property
    def sending_address(self) -> str | None:
        return self.sending_from or self.owner_email_from


@dataclass(frozen=True)
class Sender:
    sender: str
    reply_to: str | None = None


def resolve_sender(
    rules: SenderRules,
    original_from: str | None,
    *,
    srs_key: str,
    srs_prefix: str = "SRS0",
    today: date | None = None,
) -> Sender | None:
    """The From (and Reply-To) of a message; None when the org has no address to send from."""
    if not original_from:
        address = rules.email_from or rules.owner_email_from
        if not address:
            return None
        return Sender(format_address(rules.org_title, address))
    name, address = split_address(original_from)
    sending = rules.sending_address
    if not sending or address.lower() == sending.lower():
        return Sender(original_from)
    sending_domain = sending.rpartition("@")[2]
    user, _, domain = address.rpartition("@")
    if not rules.sender_rewrite:
        local = rules.org_name
    else:
        day = today or datetime.now(UTC).date()
        local = srs_local_part(user, domain, key=srs_key, prefix=srs_prefix, day=day)
    rewritten = format_address(name or None, f"{local}@{sending_domain}")
    return Sender(rewritten, original_from if rules.reply_enabled else None)


def apply_sender(
    message: EmailMessage,
    rules: SenderRules,
    *,
    srs_key: str,
    srs_prefix: str = "SRS0",
    today: date | None = None,
) -> EmailMessage | None:
    """The message with its From and Reply-To settled; None when it has no possible sender."""
    sender = resolve_sender(
        rules, message.sender or None, srs_key=srs_key, srs_prefix=srs_prefix, today=today
    )
    if sender is None:
        return None
    return replace(message, sender=sender.sender, reply_to=sender.reply_to or message.reply_to)
