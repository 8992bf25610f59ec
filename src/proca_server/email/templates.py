"""Mustache templates: an org's `email_templates` rows, rendered locally, and the template
directory of the supporter emails (email/directory.py).

A template is found by (org, name, locale): a local row without `external_id` is rendered
here; a row with `external_id` names a provider template, which the provider renders with
the variables flattened to one level (`campaign.title` → `campaignTitle`, null → "").
Parsed templates are cached by their source text, so an edited row is never served stale."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pystache
from pystache.parsed import ParsedTemplate
from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.email.message import EmailMessage
from proca_server.models import EmailTemplate

# Partials are never loaded: a template must not read files from the server's disk.
_html_renderer = pystache.Renderer(partials={}, missing_tags="ignore")
_plain_renderer = pystache.Renderer(partials={}, missing_tags="ignore", escape=lambda s: s)


@dataclass(frozen=True)
class TemplateText:
    subject: str
    html: str
    text: str | None = None


@dataclass(frozen=True)
class ProviderTemplate:
    """A template kept by the org's email provider: its id there."""

    ref: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str | None


@functools.lru_cache(maxsize=512)
def _parsed(template: str) -> ParsedTemplate:
    return pystache.parse(template)


def render_mustache(template: str, variables: Mapping[str, Any], *, html: bool) -> str:
    """`{{x}}` is HTML-escaped in HTML parts only; subject and text get values as they are."""
    renderer = _html_renderer if html else _plain_renderer
    return str(renderer.render(_parsed(template), dict(variables)))


def render_template(template: TemplateText, variables: Mapping[str, Any]) -> RenderedEmail:
    subject = render_mustache(template.subject, variables, html=False)
    return RenderedEmail(
        # a header: no line breaks
        subject=" ".join(subject.split()),
        html=render_mustache(template.html, variables, html=True),
        text=render_mustache(template.text, variables, html=False) if template.text else None,
    )


async def get_local_template(
    session: AsyncSession, org_id: int, name: str, locale: str | None = None
) -> TemplateText | None:
    """The org's local template by name; without a locale any one of its locales
    (English first, for a stable choice). Provider templates (external_id) are not local."""
    found = await find_template(session, org_id, name, locale)
    return found if isinstance(found, TemplateText) else None


async def find_template(
    session: AsyncSession, org_id: int, name: str, locale: str | None = None
) -> TemplateText | ProviderTemplate | None:
    """The org's template `name` for `locale` (without a locale any one of its locales,
    English first): local text, or the provider's reference; None when there is none."""
    query = select(EmailTemplate).where(EmailTemplate.org_id == org_id, EmailTemplate.name == name)
    if locale is not None:
        query = query.where(EmailTemplate.locale == locale)
    else:
        query = query.order_by(case((EmailTemplate.locale == "en", 0), else_=1), EmailTemplate.id)
    row = (await session.execute(query.limit(1))).scalar_one_or_none()
    if row is None:
        return None
    if row.external_id:
        return ProviderTemplate(row.external_id)
    return TemplateText(subject=row.subject, html=row.html, text=row.text)


def flatten_variables(variables: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """One level, for provider templates: nested keys joined in camelCase, nulls as ""."""
    flat: dict[str, Any] = {}
    for key, value in variables.items():
        name = f"{prefix}{key[:1].upper()}{key[1:]}" if prefix else key
        if isinstance(value, Mapping):
            flat.update(flatten_variables(value, name))
        else:
            flat[name] = "" if value is None else value
    return flat


def templated_message(
    template: TemplateText | ProviderTemplate,
    variables: Mapping[str, Any],
    *,
    to: str,
    custom_id: str | None,
    sender: str = "",
    provider_subject: str = "",
) -> EmailMessage:
    """An email from `template`: rendered here, or (a provider's template) handed to the
    provider with the flattened variables and `provider_subject`."""
    if isinstance(template, ProviderTemplate):
        return EmailMessage(
            to=to,
            sender=sender,
            subject=provider_subject,
            custom_id=custom_id,
            template_ref=template.ref,
            variables=flatten_variables(variables),
        )
    rendered = render_template(template, variables)
    return EmailMessage(
        to=to,
        sender=sender,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        custom_id=custom_id,
    )
