"""Supporter and action lifecycle operations: confirm, reject, email status.

Each runs in the caller's transaction (flush, no commit) and returns an `Outcome`: the
`email_status` events to publish after commit (one per org holding a contact of the
supporter) and the actions to hand to processing after commit."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.errors import BadArgument
from proca_server.kit.time import utcnow
from proca_server.models import Action, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import EmailStatus
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.processing.loader import LoadedAction, load_actions_for_processing
from proca_server.processing.messages import Publication, email_status_publications


class LifecycleRefused(BadArgument):
    """The operation is not allowed from the current status (message says why)."""


class EmailStatusChange(enum.Enum):
    REVOKE_DOI = "revoke_doi"
    """Double opt-in becomes `unsub`; any other email status stays."""


REVOKE_DOI = EmailStatusChange.REVOKE_DOI


@dataclass(slots=True)
class Outcome:
    changed: bool = False
    publications: list[Publication] = field(default_factory=list)
    process_action_ids: list[int] = field(default_factory=list)

    def merge(self, other: Outcome) -> Outcome:
        return Outcome(
            changed=self.changed or other.changed,
            publications=[*self.publications, *other.publications],
            process_action_ids=sorted({*self.process_action_ids, *other.process_action_ids}),
        )


async def find_action_by_ref(
    session: AsyncSession, action_id: int, fingerprint: bytes
) -> LoadedAction | None:
    """The action `action_id` when its supporter has this fingerprint (the link's proof)."""
    found = await session.scalar(
        select(Action.id)
        .join(Supporter, Supporter.id == Action.supporter_id)
        .where(Action.id == action_id, Supporter.fingerprint == fingerprint)
    )
    if found is None:
        return None
    loaded = await load_actions_for_processing(session, [found])
    return loaded[0] if loaded else None


def _supporter(loaded: LoadedAction) -> Supporter:
    if loaded.supporter is None:
        raise LifecycleRefused("action has no supporter")
    return loaded.supporter


async def _other_actions(
    session: AsyncSession, supporter: Supporter, statuses: tuple[A, ...]
) -> list[int]:
    result = await session.execute(
        select(Action.id)
        .where(Action.supporter_id == supporter.id, Action.processing_status.in_(statuses))
        .order_by(Action.id)
    )
    return list(result.scalars().all())


async def set_email_status(
    session: AsyncSession,
    loaded: LoadedAction,
    status: EmailStatus,
    *,
    now: datetime | None = None,
    changed_at: datetime | None = None,
) -> Outcome:
    """Set the supporter's email status (shared by every org receiving them); when it
    changes to anything but `none`, tell each of those orgs. `changed_at`: when it changed,
    when that was before now (a detail backend's answer)."""
    supporter = _supporter(loaded)
    if supporter.email_status is status:
        return Outcome()
    now = now or utcnow()
    supporter.email_status = status
    supporter.email_status_changed = changed_at or now
    supporter.updated_at = now
    await session.flush()
    return Outcome(changed=True, publications=email_status_publications(loaded))


async def set_double_opt_in(
    session: AsyncSession, loaded: LoadedAction, *, now: datetime | None = None
) -> Outcome:
    return await set_email_status(session, loaded, EmailStatus.DOUBLE_OPT_IN, now=now)


async def confirm_supporter(session: AsyncSession, loaded: LoadedAction) -> Outcome:
    """confirming -> accepted, then the supporter's waiting actions are (re)processed;
    already accepted is a no-op; new and rejected are refused."""
    supporter = _supporter(loaded)
    status = supporter.processing_status
    if status is S.ACCEPTED:
        return Outcome()
    if status is S.NEW:
        raise LifecycleRefused("not allowed")
    if status is S.REJECTED:
        raise LifecycleRefused("supporter data already rejected")
    supporter.processing_status = S.ACCEPTED
    supporter.updated_at = utcnow()
    await session.flush()
    waiting = await _other_actions(session, supporter, (A.NEW,))
    return Outcome(changed=True, process_action_ids=sorted({loaded.action.id, *waiting}))


async def reject_supporter(
    session: AsyncSession,
    loaded: LoadedAction,
    *,
    email_status: EmailStatus | EmailStatusChange | None = REVOKE_DOI,
    now: datetime | None = None,
) -> Outcome:
    """Force the supporter and this action to rejected, whatever their status ("it wasn't
    me", bounces). `email_status`: REVOKE_DOI (default) turns double opt-in into unsub, an
    EmailStatus sets it (a bounce reason), None leaves it. The supporter's other pending
    actions are handed back to processing, which rejects them too."""
    supporter = _supporter(loaded)
    action = loaded.action
    now = now or utcnow()
    changed = False
    if supporter.processing_status is not S.REJECTED:
        supporter.processing_status = S.REJECTED
        supporter.updated_at = now
        changed = True
    if action.processing_status is not A.REJECTED:
        action.processing_status = A.REJECTED
        changed = True
    new_status: EmailStatus | None = None
    if email_status is REVOKE_DOI:
        if supporter.email_status is EmailStatus.DOUBLE_OPT_IN:
            new_status = EmailStatus.UNSUB
    elif isinstance(email_status, EmailStatus):
        new_status = email_status
    await session.flush()
    outcome = Outcome(changed=changed)
    if new_status is not None:
        outcome = outcome.merge(await set_email_status(session, loaded, new_status, now=now))
    pending = await _other_actions(session, supporter, (A.NEW, A.CONFIRMING, A.ACCEPTED))
    outcome.process_action_ids = [i for i in pending if i != action.id]
    return outcome


async def confirm_action(session: AsyncSession, action: Action) -> Outcome:
    """Moderation accepted the action: confirming -> accepted, then processed (delivered).
    Accepted or past it is a no-op; new and rejected are refused."""
    status = action.processing_status
    if status in (A.ACCEPTED, A.DELIVERED, A.REPEAT):
        return Outcome()
    if status is not A.CONFIRMING:
        raise LifecycleRefused(f"cannot accept an action that is {status.name.lower()}")
    action.processing_status = A.ACCEPTED
    await session.flush()
    return Outcome(changed=True, process_action_ids=[action.id])


async def reject_action(session: AsyncSession, action: Action) -> Outcome:
    """confirming, accepted, delivered or repeat -> rejected; rejected is a no-op; a new
    action (not processed yet) is refused."""
    status = action.processing_status
    if status is A.REJECTED:
        return Outcome()
    if status is A.NEW:
        raise LifecycleRefused("cannot reject an action that is new")
    action.processing_status = A.REJECTED
    await session.flush()
    return Outcome(changed=True)
