"""Supporter emails of an action (and of the confirm reminders): which one is due, with which
template, and the message itself, ready for the org's backend.

Templates are looked up in the page's locale: page → campaign → org for the confirm email; on
the page for the thank-you and the duplicate email, and for the duplicate email then the
campaign's and the org's `config.duplicateTemplate` when the campaign's `config.duplicateEmail`
is on. Every supporter email carries the custom id `action:<id>` so that a bounce report
finds the supporter again, and the `rightsLink` of the supporter's page (supporter/rights.py)."""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email.backend import (
    OrgEmailBackend,
    get_org_email_backend,
    get_transactional_backend,
)
from proca_server.email.directory import Missing, directory
from proca_server.email.merge import confirm_links, doi_links, merge_variables
from proca_server.email.message import (
    EmailMessage,
    apply_sender,
    format_address,
    format_custom_id,
)
from proca_server.email.templates import (
    templated_message,
)
from proca_server.kit import base64url
from proca_server.models.enums import ActionProcessingStatus
from proca_server.processing.loader import LoadedAction
from proca_server.supporter.rights import rights_link

log = logging.getLogger(__name__)

_generated_srs_key: str | None = None


class EmailKind(enum.StrEnum):
    THANK_YOU = "thank_you"
    CONFIRM = "confirm"
    DUPLICATE = "duplicate"


# the emails whose lag from the action's insertion is measured, by their metrics' kind label
# (metrics.observe_email_lag): a repeat signature's confirm email counts as a confirm email
LAG_KINDS = {EmailKind.CONFIRM: "supporter_confirm", EmailKind.THANK_YOU: "thank_you"}


class TemplateMissing(Exception):
    """The template an email needs does not exist (yet): the message is retried."""


@dataclass(frozen=True)
class DueEmail:
    kind: EmailKind
    template: str
    # sent through the transactional backend (all but the duplicate notice)
    transactional: bool = True


@dataclass(frozen=True)
class ComposedEmail:
    action_id: int
    kind: EmailKind
    message: EmailMessage
    backend: OrgEmailBackend


def srs_key(settings: Settings) -> str:
    """EMAIL_SRS_KEY, or a random key made once per process (rewritten senders then change
    from one process to the next, which only matters for bounces of SRS addresses)."""
    global _generated_srs_key
    if settings.email_srs_key:
        return settings.email_srs_key
    if _generated_srs_key is None:
        log.warning("EMAIL_SRS_KEY is not set: using a random key for sender rewriting")
        _generated_srs_key = secrets.token_hex(16)
    return _generated_srs_key


class _HasConfirmTemplate(Protocol):
    supporter_confirm_template: str | None


def confirm_template(
    page: _HasConfirmTemplate | None,
    campaign: _HasConfirmTemplate | None,
    org: _HasConfirmTemplate,
) -> str | None:
    """The confirm template name of a page: its own, else its campaign's, else its org's
    (the page's org: a partner's page falls back to the partner's template)."""
    return (
        (page.supporter_confirm_template if page is not None else None)
        or (campaign.supporter_confirm_template if campaign is not None else None)
        or org.supporter_confirm_template
    )


def confirm_template_name(loaded: LoadedAction) -> str | None:
    return confirm_template(loaded.page, loaded.campaign, loaded.org)


def confirm_lacks_template(loaded: LoadedAction, stage: str) -> bool:
    """A confirm email is asked for but no template is named anywhere: the supporter waits
    for an email that never comes (`due_email` gives None)."""
    return (
        stage == "supporter_confirm"
        and loaded.supporter is not None
        and bool(loaded.action.with_consent)
        and confirm_template_name(loaded) is None
    )


def duplicate_email_on(loaded: LoadedAction) -> bool:
    """The campaign's `config.duplicateEmail` is `true`: a supporter who signed the campaign
    before gets the duplicate email instead of the thank-you (docs/supporter-rights.md)."""
    config = loaded.campaign.config
    return isinstance(config, Mapping) and config.get("duplicateEmail") is True


def _config_template(config: object) -> str | None:
    name = config.get("duplicateTemplate") if isinstance(config, Mapping) else None
    return name if isinstance(name, str) and name.strip() else None


def duplicate_template_name(loaded: LoadedAction) -> str | None:
    """The page's duplicate template, else the campaign's `config.duplicateTemplate`, else
    the page org's `config.duplicateTemplate`."""
    return (
        loaded.page.duplicate_template
        or _config_template(loaded.campaign.config)
        or _config_template(loaded.org.config)
    )


def due_email(loaded: LoadedAction, stage: str) -> DueEmail | None:
    """The email the stage's message asks for, or None (nothing to send)."""
    action, page, org = loaded.action, loaded.page, loaded.org
    if loaded.supporter is None or not action.with_consent:
        # shares and other actions without a contact of their own get no email
        return None
    confirm_template = confirm_template_name(loaded)
    if stage == "supporter_confirm":
        return DueEmail(EmailKind.CONFIRM, confirm_template) if confirm_template else None
    if stage != "deliver":
        return None
    if (loaded.supporter.dupe_rank or 0) > 0 and duplicate_email_on(loaded):
        # any earlier signature of the campaign, on this page (a repeat) or another one
        duplicate = duplicate_template_name(loaded)
        if duplicate:
            return DueEmail(EmailKind.DUPLICATE, duplicate, transactional=False)
    if action.processing_status is ActionProcessingStatus.REPEAT:
        if page.duplicate_template:
            return DueEmail(EmailKind.DUPLICATE, page.duplicate_template, transactional=False)
        if confirm_template:
            return DueEmail(EmailKind.CONFIRM, confirm_template)
    if page.thank_you_template:
        copy = loaded.contact_for(org.id)
        consented = copy is not None and bool(copy.contact.communication_consent)
        if not org.doi_thank_you or consented:
            return DueEmail(EmailKind.THANK_YOU, page.thank_you_template)
    return None


async def select_backend(
    session: AsyncSession,
    loaded: LoadedAction,
    due: DueEmail,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> OrgEmailBackend | None:
    if due.transactional:
        return await get_transactional_backend(session, loaded.org, sessionmaker=sessionmaker)
    return await get_org_email_backend(session, loaded.org, sessionmaker=sessionmaker)


def _recipient_fields(contact: Mapping[str, Any] | None) -> dict[str, Any]:
    """firstName / lastName / email of a queue message's contact (v1 or v2)."""
    fields: dict[str, Any] = {}
    for key in ("firstName", "lastName", "email"):
        value = (contact or {}).get(key)
        if isinstance(value, str) and value:
            fields[key] = value
    return fields


async def compose_email(
    session: AsyncSession,
    settings: Settings,
    loaded: LoadedAction,
    due: DueEmail,
    backend: OrgEmailBackend,
    *,
    contact: Mapping[str, Any] | None = None,
    reminder: bool = False,
) -> EmailMessage | None:
    """The email, From settled; None when it cannot be sent at all (no recipient address,
    no sender address). Raises TemplateMissing."""
    action, page, org = loaded.action, loaded.page, loaded.org
    supporter = loaded.supporter
    assert supporter is not None
    # the sending backend's provider renders a remote template, so its list is the one searched
    template = await directory.lookup(session, org, due.template, page.locale, backend=backend)
    if isinstance(template, Missing):
        raise TemplateMissing(f"template {due.template!r} ({page.locale}) of org {org.name}")
    ref = base64url.encode(supporter.fingerprint)
    if due.kind is EmailKind.CONFIRM:
        links = confirm_links(settings, action.id, ref, reminder=reminder)
    else:
        links = doi_links(settings, action.id, ref)
    links["rightsLink"] = rights_link(settings, action.id, bytes(supporter.fingerprint))
    variables = await merge_variables(
        session, loaded, org.id, contact=_recipient_fields(contact), links=links
    )
    address = variables.get("email")
    if not isinstance(address, str) or "@" not in address:
        return None
    first_name = variables.get("firstName")
    to = format_address(first_name if isinstance(first_name, str) else None, address)
    custom_id = format_custom_id("action", action.id)
    message = templated_message(template, variables, to=to, custom_id=custom_id)
    return apply_sender(
        message,
        backend.sender_rules(org),
        srs_key=srs_key(settings),
        srs_prefix=settings.email_srs_prefix,
    )
