"""What Mailjet and Brevo report about mail-to-target letters: the events of emails
whose custom id is `mtt:<message id>`.

- Delivery and engagement set the message's flags, which only ever turn on: `delivered`;
  `opened` (and delivered); `clicked` (and opened and delivered), in whatever order the events
  arrive, so that a replayed or late event changes nothing.
- A successful delivery (Mailjet `sent`, Brevo `delivered`) marks the target's address
  `active` and clears its soft bounces, unless the address was already given up on (bounce,
  blocked, spam, unsub, inactive): a late event never brings a bad address back.
- A hard bounce, a block, a spam complaint or an unsubscription gives the address that status;
  a soft bounce is counted, and the address is given up on (`bounce`) at SOFT_BOUNCE_LIMIT.
  The provider's reason is kept in `error`, without the address.
- The address is the target's row equal to the event's recipient (case-insensitive), or, for an
  event that names none, the target's first usable one (status none or active).

An event about a message or an address that is gone (the message deleted, the target upserted
without that address) is logged and dropped: a provider sends again what we refuse, so nothing
here raises for it."""

from __future__ import annotations

import enum
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Message, TargetEmail
from proca_server.models.enums import EmailStatus

log = logging.getLogger(__name__)

# soft bounces after which an address is given up on (the original's threshold)
SOFT_BOUNCE_LIMIT = 1
ERROR_LENGTH = 255


class EventKind(enum.StrEnum):
    """A provider event, its name normalised across providers (also the metric label)."""

    SENT = "sent"  # Mailjet: the receiving server took it
    DELIVERED = "delivered"  # Brevo: the receiving server took it
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"
    SOFT_BOUNCE = "soft_bounce"
    BLOCKED = "blocked"
    SPAM = "spam"
    UNSUB = "unsub"
    OTHER = "other"


# the kinds that give an address up, and the status each gives it
GIVE_UP_STATUSES: dict[EventKind, EmailStatus] = {
    EventKind.BOUNCE: EmailStatus.BOUNCE,
    EventKind.BLOCKED: EmailStatus.BLOCKED,
    EventKind.SPAM: EmailStatus.SPAM,
    EventKind.UNSUB: EmailStatus.UNSUB,
}
BOUNCE_KINDS = frozenset((*GIVE_UP_STATUSES, EventKind.SOFT_BOUNCE))
SUCCESS_KINDS = frozenset((EventKind.SENT, EventKind.DELIVERED))
FLAG_KINDS = frozenset((*SUCCESS_KINDS, EventKind.OPEN, EventKind.CLICK))
USABLE_STATUSES = frozenset((EmailStatus.NONE, EmailStatus.ACTIVE))

# local parts and domains as bounce texts write them; the known addresses are removed first
_ADDRESS = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
ADDRESS_PLACEHOLDER = "[address]"


@dataclass(frozen=True)
class MttEvent:
    message_id: int
    kind: EventKind
    email: str | None = None  # the recipient the provider names
    reason: str = ""  # the provider's explanation of a bounce


def scrub_reason(reason: str, *addresses: str | None) -> str | None:
    """A bounce reason fit to store: without any email address, at most ERROR_LENGTH long."""
    text = reason
    for address in addresses:
        if address and address.strip():
            text = re.sub(re.escape(address.strip()), ADDRESS_PLACEHOLDER, text, flags=re.I)
    text = _ADDRESS.sub(ADDRESS_PLACEHOLDER, text).strip()
    return text[:ERROR_LENGTH] or None


def _address_of(rows: Sequence[TargetEmail], email: str | None) -> TargetEmail | None:
    if email and email.strip():
        wanted = email.strip().lower()
        return next((row for row in rows if (row.email or "").strip().lower() == wanted), None)
    return next((row for row in rows if row.email_status in USABLE_STATUSES), None)


def _set_flags(message: Message, kind: EventKind) -> None:
    # never turned off: an open is also a delivery, a click also an open
    if kind in FLAG_KINDS:
        message.delivered = True
    if kind in (EventKind.OPEN, EventKind.CLICK):
        message.opened = True
    if kind is EventKind.CLICK:
        message.clicked = True


def _update_address(row: TargetEmail, event: MttEvent) -> None:
    if event.kind in SUCCESS_KINDS:
        if row.email_status in USABLE_STATUSES:
            row.email_status = EmailStatus.ACTIVE
            row.soft_bounce_count = 0
        return
    row.error = scrub_reason(event.reason, row.email, event.email)
    if event.kind is EventKind.SOFT_BOUNCE:
        row.soft_bounce_count += 1
        # an address given up on for a stronger reason (spam, unsub) keeps that reason
        if row.soft_bounce_count >= SOFT_BOUNCE_LIMIT and row.email_status in USABLE_STATUSES:
            row.email_status = EmailStatus.BOUNCE
    else:
        row.email_status = GIVE_UP_STATUSES[event.kind]


async def track_mtt_events(
    session: AsyncSession, events: Sequence[MttEvent], provider: str = "-"
) -> int:
    """Apply the events in their order; how many named a message that exists."""
    relevant = [event for event in events if event.kind is not EventKind.OTHER]
    if not relevant:
        return 0
    ids = {event.message_id for event in relevant}
    messages = {
        message.id: message
        for message in await session.scalars(select(Message).where(Message.id.in_(ids)))
    }
    addresses: dict[uuid.UUID, list[TargetEmail]] = defaultdict(list)
    target_ids = {message.target_id for message in messages.values()}
    if target_ids:
        rows = await session.scalars(
            select(TargetEmail)
            .where(TargetEmail.target_id.in_(target_ids))
            .order_by(TargetEmail.id)
            # soft bounces count up: two reports at once must not both read the old count
            .with_for_update()
        )
        for address in rows:
            addresses[address.target_id].append(address)
    tracked = 0
    for event in relevant:
        message = messages.get(event.message_id)
        if message is None:
            log.info("%s: %s for mtt:%d, no such message", provider, event.kind, event.message_id)
            continue
        tracked += 1
        _set_flags(message, event.kind)
        if event.kind not in SUCCESS_KINDS and event.kind not in BOUNCE_KINDS:
            continue
        row = _address_of(addresses[message.target_id], event.email)
        if row is None:
            log.info(
                "%s: %s for mtt:%d, its target has no such address (any more)",
                provider,
                event.kind,
                event.message_id,
            )
            continue
        _update_address(row, event)
        if event.kind in BOUNCE_KINDS:
            log.info(
                "%s: %s for mtt:%d, target email %d now %s",
                provider,
                event.kind,
                event.message_id,
                row.id,
                row.email_status.name.lower(),
            )
    await session.flush()
    return tracked
