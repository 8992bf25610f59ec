"""Confirms: operations deferred until a second party accepts or rejects them.

A confirm is found by its code plus the email it was sent to, or plus its object id, or by
the code alone when it has neither (an open code). Accepting spends one charge and runs the
operation; rejecting spends them all and runs the operation's reject branch. Both happen in
the caller's transaction, so a failing operation leaves the charges untouched.

| operation      | subject      | object       | accepted by                                  |
| -------------- | ------------ | ------------ | -------------------------------------------- |
| add_partner    | template page| -            | a staffer with manage_action_pages (copy)    |
| add_staffer    | org          | role bits    | the invited user (becomes a staffer)         |
| confirm_action | action       | -            | anyone with the code (action accepted)       |
| join_campaign  | partner org  | campaign     | lead org staffer with manage_campaigns       |
| launch_page    | campaign     | action page  | lead org staffer with manage_campaigns       |
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.orm.attributes import set_committed_value

from proca_server import db
from proca_server.action_page.events import page_upserted
from proca_server.action_page.service import copy_action_page, get_page_by_name
from proca_server.auth.permissions import Permission
from proca_server.config import Settings
from proca_server.confirm.emails import compose_notifications, merge_fields
from proca_server.email import EmailMessage
from proca_server.email.instance import deliver_instance_emails
from proca_server.errors import BadArgument, NotFound, PermissionDenied, ProcaError, Unauthorized
from proca_server.models import Action, ActionPage, Campaign, Confirm, Org, Staffer, User
from proca_server.models.enums import ActionProcessingStatus, ConfirmOperation
from proca_server.org.service import EMAIL_RE, get_staffer
from proca_server.processing import events
from proca_server.processing.events import AfterCommit
from proca_server.processing.handoff import Pipeline
from proca_server.processing.messages import Publication, confirm_created_publication

CODE_DIGITS = 8
# Eight random digits collide rarely; a long run of collisions means something else is wrong.
MAX_CODE_ATTEMPTS = 20


class ConfirmExpired(ProcaError):
    code = "expired"


class ConfirmNotFound(NotFound):
    """No confirm for that code (with that email or object id)."""


class StafferExists(ProcaError):
    code = "staffer_exists"


class Verb(Enum):
    ACCEPT = "accept"
    REJECT = "reject"


@dataclass(frozen=True)
class Acceptor:
    """Who accepts or rejects: the user (None when anonymous) and, when they act for an org,
    their membership in it."""

    user: User | None
    staffer: Staffer | None = None

    @property
    def perms(self) -> int:
        return (self.user.perms if self.user else 0) | (self.staffer.perms if self.staffer else 0)


@dataclass
class ConfirmOutcome:
    status: str = "success"
    action_page: ActionPage | None = None
    campaign: Campaign | None = None
    org: Org | None = None
    message: str | None = None
    # pages whose state changed (their subscribers are told after commit)
    changed_pages: list[ActionPage] = field(default_factory=list)
    # events to publish after commit
    publications: list[Publication] = field(default_factory=list)


# --- creation -----------------------------------------------------------------------------------


def generate_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def _insert_ignoring_code_clash(session: AsyncSession, values: dict[str, Any]) -> Any:
    """INSERT … ON CONFLICT (code) DO NOTHING RETURNING id: a clash is answered by no row,
    without a savepoint (which would end the transaction early on SQLite)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(Confirm)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Confirm.code])
        .returning(Confirm.id)
    )


async def create_confirm(
    session: AsyncSession,
    operation: ConfirmOperation,
    subject_id: int,
    *,
    object_id: int | None = None,
    email: str | None = None,
    message: str | None = None,
    creator: User | None = None,
    charges: int = 1,
) -> Confirm:
    """Insert a confirm with a fresh random code, drawing again when the code is taken."""
    values: dict[str, Any] = {
        "operation": operation,
        "subject_id": subject_id,
        "object_id": object_id,
        "email": email,
        "message": message,
        "charges": charges,
        "creator_id": creator.id if creator else None,
    }
    for _ in range(MAX_CODE_ATTEMPTS):
        statement = _insert_ignoring_code_clash(session, {**values, "code": generate_code()})
        confirm_id = (await session.execute(statement)).scalar_one_or_none()
        if confirm_id is not None:
            confirm = await session.get(Confirm, confirm_id)
            assert confirm is not None
            return confirm
    raise RuntimeError(f"no free confirm code after {MAX_CODE_ATTEMPTS} attempts")


# --- lookup -------------------------------------------------------------------------------------


async def find_confirm(
    session: AsyncSession, code: str, *, email: str | None = None, object_id: int | None = None
) -> Confirm | None:
    """By email and code, by object id and code, or an open code (no email, no object)."""
    query = select(Confirm).where(Confirm.code == code)
    if email is not None:
        query = query.where(func.lower(Confirm.email) == email.strip().lower())
    if object_id is not None:
        query = query.where(Confirm.object_id == object_id)
    if email is None and object_id is None:
        query = query.where(Confirm.email.is_(None), Confirm.object_id.is_(None))
    return (await session.execute(query.limit(1))).scalar_one_or_none()


async def access_confirm(
    session: AsyncSession, code: str, *, email: str | None = None, object_id: int | None = None
) -> Confirm:
    confirm = await find_confirm(session, code, email=email, object_id=object_id)
    if confirm is None:
        raise ConfirmNotFound("code invalid")
    return confirm


# --- accept and reject --------------------------------------------------------------------------


async def accept_confirm(
    session: AsyncSession, confirm: Confirm, acceptor: Acceptor
) -> ConfirmOutcome:
    # Spend the charge first, atomically: of two concurrent accepts of the last charge one
    # gets `expired`. A failing operation raises and the caller's rollback gives it back.
    spent = await session.execute(
        update(Confirm)
        .where(Confirm.id == confirm.id, Confirm.charges > 0)
        .values(charges=Confirm.charges - 1)
        .returning(Confirm.charges)
        .execution_options(synchronize_session=False)
    )
    left = spent.scalar_one_or_none()
    if left is None:
        raise ConfirmExpired("expired")
    set_committed_value(confirm, "charges", left)
    outcome = await _ACCEPT[confirm.operation](session, confirm, acceptor)
    outcome.message = confirm.message
    return outcome


async def reject_confirm(
    session: AsyncSession, confirm: Confirm, acceptor: Acceptor
) -> ConfirmOutcome:
    confirm.charges = 0
    await session.flush()
    outcome = await _REJECT.get(confirm.operation, _noop)(session, confirm, acceptor)
    outcome.message = confirm.message
    return outcome


async def _noop(session: AsyncSession, confirm: Confirm, acceptor: Acceptor) -> ConfirmOutcome:
    return ConfirmOutcome()


def _require_user(acceptor: Acceptor) -> User:
    if acceptor.user is None:
        raise Unauthorized("unauthorized")
    return acceptor.user


def _denied(*perms: Permission) -> PermissionDenied:
    # what accepting a confirm without the permission has always answered
    return PermissionDenied(
        "User does not have sufficient permissions",
        extensions={"required": [p.name.lower() for p in perms if p.name]},
    )


def _has_any(perms: int, *wanted: Permission) -> bool:
    return any(perms & p == p for p in (Permission.INSTANCE_OWNER, *wanted))


async def _require_lead_manager(
    session: AsyncSession, acceptor: Acceptor, campaign: Campaign
) -> None:
    """The user must be a staffer of the campaign's lead org with manage_campaigns, whatever
    org they act for (a link opened in another org's context still works)."""
    user = _require_user(acceptor)
    staffer = (
        await get_staffer(session, campaign.org_id, user.id)
        if campaign.org_id is not None
        else None
    )
    # Without a membership only the user's own bits count: instance_owner passes.
    if not _has_any(user.perms | (staffer.perms if staffer else 0), Permission.MANAGE_CAMPAIGNS):
        raise _denied(Permission.MANAGE_CAMPAIGNS)


def page_path(name: str) -> str:
    """`lead/sign` → `sign`; the part after the first slash."""
    return name.split("/", 1)[1] if "/" in name else name


async def _free_page_name(session: AsyncSession, wanted: str) -> str:
    name, suffix = wanted, 0
    while await get_page_by_name(session, name) is not None:
        suffix += 1
        name = f"{wanted}-{suffix}"
    return name


async def _accept_add_partner(
    session: AsyncSession, confirm: Confirm, acceptor: Acceptor
) -> ConfirmOutcome:
    _require_user(acceptor)
    if acceptor.staffer is None:
        raise Unauthorized("unauthorized: accept this invitation on behalf of an org")
    if not _has_any(acceptor.perms, Permission.MANAGE_ACTION_PAGES):
        raise _denied(Permission.MANAGE_ACTION_PAGES)
    template = await session.get(ActionPage, confirm.subject_id)
    if template is None:
        raise NotFound("action page not found")
    org = await session.get(Org, acceptor.staffer.org_id)
    assert org is not None
    name = await _free_page_name(session, f"{org.name}/{page_path(template.name)}")
    page = await copy_action_page(session, org, name, template)
    return ConfirmOutcome(action_page=page, changed_pages=[page])


async def _accept_add_staffer(
    session: AsyncSession, confirm: Confirm, acceptor: Acceptor
) -> ConfirmOutcome:
    user = _require_user(acceptor)
    org = await session.get(Org, confirm.subject_id)
    if org is None:
        raise NotFound("org not found")
    if await get_staffer(session, org.id, user.id) is not None:
        raise StafferExists("You are already a member of this org")
    session.add(Staffer(org_id=org.id, user_id=user.id, perms=confirm.object_id or 0))
    await session.flush()
    return ConfirmOutcome(org=org)


async def _action(session: AsyncSession, confirm: Confirm) -> Action:
    action = await session.get(Action, confirm.subject_id)
    if action is None:
        raise NotFound("action not found")
    return action


async def _accept_confirm_action(
    session: AsyncSession, confirm: Confirm, acceptor: Acceptor
) -> ConfirmOutcome:
    action = await _action(session, confirm)
    status = action.processing_status
    if status is ActionProcessingStatus.CONFIRMING:
        action.processing_status = ActionProcessingStatus.ACCEPTED
        await session.flush()
        # Hook: the processing pipeline (a later issue) picks the accepted action up from its
        # status; a publish after commit will speed that up once the pipeline exists.
    elif status is not ActionProcessingStatus.ACCEPTED:
        raise BadArgument(f"cannot accept an action that is {status.name.lower()}")
    return ConfirmOutcome()


async def _reject_confirm_action(
    session: AsyncSession, confirm: Confirm, acceptor: Acceptor
) -> ConfirmOutcome:
    action = await _action(session, confirm)
    status = action.processing_status
    if status is ActionProcessingStatus.NEW:
        raise BadArgument("cannot reject an action that is new")
    if status is not ActionProcessingStatus.REJECTED:
        action.processing_status = ActionProcessingStatus.REJECTED
        await session.flush()
    return ConfirmOutcome()


async def _accept_join_campaign(
    session: AsyncSession, confirm: Confirm, acceptor: Acceptor
) -> ConfirmOutcome:
    org = await session.get(Org, confirm.subject_id)
    campaign = (
        await session.get(Campaign, confirm.object_id) if confirm.object_id is not None else None
    )
    if org is None or campaign is None:
        raise NotFound("campaign not found")
    await _require_lead_manager(session, acceptor, campaign)
    pages = (
        await session.execute(
            select(ActionPage)
            .where(
                ActionPage.org_id == org.id,
                ActionPage.campaign_id == campaign.id,
                ActionPage.live.is_(False),
            )
            .order_by(ActionPage.id)
        )
    ).scalars()
    changed = []
    for page in pages:
        page.live = True
        changed.append(page)
    await session.flush()
    # the event names the partner's most recent page in the campaign, live before or not
    latest = await session.scalar(
        select(ActionPage)
        .where(ActionPage.org_id == org.id, ActionPage.campaign_id == campaign.id)
        .order_by(ActionPage.id.desc())
        .limit(1)
    )
    publications = []
    if latest is not None:
        publications = await events.join_campaign(
            session, creator_id=confirm.creator_id, org=org, campaign=campaign, page=latest
        )
    return ConfirmOutcome(campaign=campaign, changed_pages=changed, publications=publications)


async def _accept_launch_page(
    session: AsyncSession, confirm: Confirm, acceptor: Acceptor
) -> ConfirmOutcome:
    campaign = await session.get(Campaign, confirm.subject_id)
    page = (
        await session.get(ActionPage, confirm.object_id) if confirm.object_id is not None else None
    )
    if campaign is None or page is None:
        raise NotFound("campaign not found")
    await _require_lead_manager(session, acceptor, campaign)
    page.live = True
    await session.flush()
    publications = []
    if page.org_id != campaign.org_id:
        # a partner's page: its org joins the campaign
        partner = await session.get(Org, page.org_id) if page.org_id is not None else None
        if partner is not None:
            publications = await events.join_campaign(
                session, creator_id=confirm.creator_id, org=partner, campaign=campaign, page=page
            )
    return ConfirmOutcome(action_page=page, changed_pages=[page], publications=publications)


Operation = Callable[[AsyncSession, Confirm, Acceptor], Awaitable[ConfirmOutcome]]

_ACCEPT: dict[ConfirmOperation, Operation] = {
    ConfirmOperation.ADD_PARTNER: _accept_add_partner,
    ConfirmOperation.ADD_STAFFER: _accept_add_staffer,
    ConfirmOperation.CONFIRM_ACTION: _accept_confirm_action,
    ConfirmOperation.JOIN_CAMPAIGN: _accept_join_campaign,
    ConfirmOperation.LAUNCH_PAGE: _accept_launch_page,
}
# The other operations do nothing on reject beyond spending the charges.
_REJECT: dict[ConfirmOperation, Operation] = {
    ConfirmOperation.CONFIRM_ACTION: _reject_confirm_action,
}


async def run_confirm(
    session: AsyncSession,
    after_commit: AfterCommit,
    pipeline: Pipeline,
    verb: Verb,
    code: str,
    *,
    email: str | None,
    object_id: int | None,
    acceptor: Acceptor,
) -> ConfirmOutcome:
    """Look the confirm up and accept or reject it in the session's transaction; tell page
    subscribers and publish the events after commit. Memberships may have changed
    (add_staffer): a caller that keeps them forgets them."""
    confirm = await access_confirm(session, code, email=email, object_id=object_id)
    if verb is Verb.ACCEPT:
        outcome = await accept_confirm(session, confirm, acceptor)
    else:
        outcome = await reject_confirm(session, confirm, acceptor)
    for page in outcome.changed_pages:
        page_upserted(session, after_commit, page)
    events.publish_after_commit(pipeline, after_commit, outcome.publications)
    return outcome


# --- creation paths with their notification ------------------------------------------------------


def _sessionmaker_of(session: AsyncSession) -> async_sessionmaker[AsyncSession]:
    bind = session.bind
    engine = bind.engine if isinstance(bind, AsyncConnection) else bind
    assert isinstance(engine, AsyncEngine)
    return db.create_sessionmaker(engine)


async def _created_event(
    session: AsyncSession, settings: Settings, confirm: Confirm
) -> list[Publication]:
    """`confirm_created.<operation>`: to the campaign's lead org for launch_page (none when
    the campaign is gone), to the instance org for the other operations."""
    if confirm.operation is ConfirmOperation.LAUNCH_PAGE:
        campaign = await session.get(Campaign, confirm.subject_id)
        org_id = campaign.org_id if campaign is not None else None
    else:
        org_id = await events.instance_org_id(session, settings)
    if org_id is None:
        return []
    fields = await merge_fields(session, settings, confirm)
    return [confirm_created_publication(confirm, fields, org_id)]


@dataclass(frozen=True)
class Notify:
    """Where a new confirm's notifications go: the settings they are composed with, the
    request's after-commit list and the pipeline its event is published to."""

    settings: Settings
    after_commit: AfterCommit
    pipeline: Pipeline


async def notify_created(
    session: AsyncSession, notify: Notify, confirm: Confirm
) -> list[EmailMessage]:
    """Compose the notification emails and the `confirm_created` event now; deliver and
    publish them once the transaction committed."""
    settings = notify.settings
    messages = await compose_notifications(session, settings, confirm)
    if messages:
        sessionmaker = _sessionmaker_of(session)

        async def deliver() -> None:
            await deliver_instance_emails(sessionmaker, settings, messages)

        notify.after_commit.append(deliver)
    publications = await _created_event(session, settings, confirm)
    events.publish_after_commit(notify.pipeline, notify.after_commit, publications)
    return messages


async def _create_and_notify(
    session: AsyncSession,
    notify: Notify,
    operation: ConfirmOperation,
    subject_id: int,
    **fields: Any,
) -> Confirm:
    confirm = await create_confirm(session, operation, subject_id, **fields)
    await notify_created(session, notify, confirm)
    return confirm


async def request_launch(
    session: AsyncSession,
    notify: Notify,
    user: User,
    campaign: Campaign,
    page: ActionPage,
    message: str | None,
) -> Confirm:
    """A partner asks the campaign's lead to put their page live; the lead's owners and
    campaigners are emailed."""
    return await _create_and_notify(
        session,
        notify,
        ConfirmOperation.LAUNCH_PAGE,
        campaign.id,
        object_id=page.id,
        creator=user,
        message=message,
    )


def validate_email(email: str) -> str:
    email = email.strip()
    if not EMAIL_RE.match(email):
        raise BadArgument("must be an email address", field="email")
    return email


async def invite_staffer(
    session: AsyncSession,
    notify: Notify,
    org: Org,
    creator: User,
    email: str,
    role_bits: int,
    message: str | None,
) -> Confirm:
    """Invite `email` to join `org` with `role_bits`; the invitee is emailed the code."""
    email = validate_email(email)
    member = await session.execute(
        select(Staffer.id)
        .join(User, User.id == Staffer.user_id)
        .where(Staffer.org_id == org.id, User.email == email)
    )
    if member.first() is not None:
        raise BadArgument("is already a member of this org", field="email")
    return await _create_and_notify(
        session,
        notify,
        ConfirmOperation.ADD_STAFFER,
        org.id,
        object_id=int(role_bits),
        email=email,
        creator=creator,
        message=message,
    )


async def invite_partner(
    session: AsyncSession,
    notify: Notify,
    template: ActionPage,
    email: str | None,
    creator: User | None = None,
    message: str | None = None,
    charges: int = 1,
) -> Confirm:
    """Invite an org (by email, or anyone holding an open code) to copy `template` into
    their org. No API creates these yet."""
    return await _create_and_notify(
        session,
        notify,
        ConfirmOperation.ADD_PARTNER,
        template.id,
        email=validate_email(email) if email is not None else None,
        creator=creator,
        message=message,
        charges=charges,
    )


async def request_action_confirm(session: AsyncSession, notify: Notify, action: Action) -> Confirm:
    """An open code that accepts (or rejects) an action waiting for moderation."""
    return await _create_and_notify(session, notify, ConfirmOperation.CONFIRM_ACTION, action.id)


async def request_join_campaign(
    session: AsyncSession,
    notify: Notify,
    org: Org,
    campaign: Campaign,
    creator: User | None,
    message: str | None,
) -> Confirm:
    """A partner org asks to join a campaign (no API creates these yet)."""
    return await _create_and_notify(
        session,
        notify,
        ConfirmOperation.JOIN_CAMPAIGN,
        org.id,
        object_id=campaign.id,
        creator=creator,
        message=message,
    )
