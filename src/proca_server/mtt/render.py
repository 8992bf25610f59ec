"""A letter as an email (docs/mail-to-target.md, "What happens to a letter").

- With the campaign's `message_template` (looked up for the target's locale, `en` by default,
  in the lead org's templates, then its provider's): the template renders the email, with the
  letter's `subject` and `body` (as HTML paragraphs) among the merge tags.
- Without one: the supporter's subject and body are mustache templates themselves, rendered
  with the `target` (name, externalId, area, locale, fields) and the supporter's merge tags;
  the text part is the rendered body, the HTML part its paragraphs.
- From: the supporter ("first last" and address), then the sender rules of the backend
  (email/message.py: SRS or `<org>@domain`, Reply-To the supporter). To: the target's first
  usable address. CC: the campaign's `cc_contacts`, and the supporter with `cc_sender`.
- A test letter goes to the supporter, CC the campaign's `test_email`, its subject prefixed
  `[TEST] `, never to the target.
- `files`: the names of the letter's files, which the sender attaches (mtt/attachments.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.email.backend import OrgEmailBackend
from proca_server.email.directory import Missing, directory
from proca_server.email.message import EmailMessage, apply_sender, format_address, format_custom_id
from proca_server.email.templates import (
    ProviderTemplate,
    TemplateText,
    render_mustache,
    templated_message,
)
from proca_server.models import Message, MessageContent, Mtt, Org, Target
from proca_server.processing.loader import LoadedAction

TEST_PREFIX = "[TEST] "
DEFAULT_LOCALE = "en"
_PARAGRAPHS = re.compile(r"\n\s*\n")


class NothingToSend(Exception):
    """The letter cannot become an email; `reason` says why (never personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemplateMissing(Exception):
    """The campaign's template is not found for a locale: the letter waits."""


async def find_template(
    session: AsyncSession, org: Org, backend: OrgEmailBackend, mtt: Mtt, locale: str | None
) -> TemplateText | ProviderTemplate | None:
    """The campaign's template for a locale (None when the campaign names none). Raises
    TemplateMissing."""
    if not mtt.message_template:
        return None
    locale = locale or DEFAULT_LOCALE
    found = await directory.lookup(session, org, mtt.message_template, locale, backend=backend)
    if isinstance(found, Missing):
        # a template kept in one locale only serves every target
        found = await directory.lookup(session, org, mtt.message_template, None, backend=backend)
    if isinstance(found, Missing):
        raise TemplateMissing(f"template {mtt.message_template!r} ({locale}) of org {org.name}")
    return found


@dataclass(frozen=True)
class Letter:
    message: Message
    content: MessageContent
    target: Target
    # the target's address the letter goes to (None for a test letter)
    target_email: str | None
    loaded: LoadedAction


def body_html(text: str) -> str:
    """Plain text as HTML paragraphs: blank lines part paragraphs, line breaks stay."""
    paragraphs = [p.strip("\n") for p in _PARAGRAPHS.split(text.replace("\r\n", "\n"))]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
        if p.strip()
    )


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def target_variables(target: Target) -> dict[str, Any]:
    return {
        "name": target.name,
        "externalId": target.external_id,
        "area": target.area,
        "locale": target.locale,
        "fields": {_camel(k): v for k, v in (target.fields or {}).items()},
    }


def supporter_address(loaded: LoadedAction) -> tuple[str | None, str | None]:
    supporter = loaded.supporter
    if supporter is None or not supporter.email:
        return None, None
    name = " ".join(n for n in (supporter.first_name, supporter.last_name) if n) or None
    return name, supporter.email


async def compose(
    letter: Letter,
    mtt: Mtt,
    org: Org,
    backend: OrgEmailBackend,
    base_variables: Mapping[str, Any],
    template: TemplateText | ProviderTemplate | None,
    *,
    srs_key: str,
    srs_prefix: str,
) -> EmailMessage:
    """The letter's email, rendered by `template` (the campaign's, for the target's locale)
    when there is one. Raises NothingToSend (empty subject or body, no address)."""
    content, target, loaded = letter.content, letter.target, letter.loaded
    if not content.subject.strip():
        raise NothingToSend("empty subject")
    if not content.body.strip():
        raise NothingToSend("empty body")
    name, address = supporter_address(loaded)
    if address is None:
        raise NothingToSend("the supporter has no email address")
    testing = loaded.action.testing
    variables: dict[str, Any] = {
        **base_variables,
        "target": target_variables(target),
        # the names of the letter's files (attached by the sender: mtt/attachments.py)
        "files": [key.rpartition("/")[2] for key in letter.message.files or []],
    }
    subject = " ".join(render_mustache(content.subject, variables, html=False).split())
    body = render_mustache(content.body, variables, html=False)
    message = EmailMessage(
        to="",
        sender=format_address(name, address),
        subject=subject,
        text=body,
        html=body_html(body),
        custom_id=format_custom_id("mtt", letter.message.id),
    )
    if template is not None:
        variables["subject"] = subject
        variables["body"] = body_html(body)
        message = templated_message(
            template,
            variables,
            to="",
            custom_id=message.custom_id,
            sender=message.sender,
            provider_subject=subject,
        )
    cc = [c for c in (mtt.cc_contacts or []) if c]
    if testing:
        to = format_address(name, address)
        cc = [mtt.test_email] if mtt.test_email else []
        subject = TEST_PREFIX + message.subject
    else:
        if letter.target_email is None:
            raise NothingToSend("the target has no usable email address")
        to = format_address(target.name, letter.target_email)
        if mtt.cc_sender:
            cc.append(address)
        subject = message.subject
    composed = EmailMessage(
        to=to,
        sender=message.sender,
        subject=subject,
        html=message.html,
        text=message.text,
        cc=tuple(dict.fromkeys(cc)),
        custom_id=message.custom_id,
        template_ref=message.template_ref,
        variables=message.variables,
    )
    settled = apply_sender(
        composed, backend.sender_rules(org), srs_key=srs_key, srs_prefix=srs_prefix
    )
    if settled is None:
        raise NothingToSend("no sender address")
    return settled
