"""Mustache templates: an org's `email_templates` rows, rendered locally."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pystache
from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

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
class RenderedEmail:
    subject: str
    html: str
    text: str | None


def render_mustache(template: str, variables: Mapping[str, Any], *, html: bool) -> str:
    """`{{x}}` is HTML-escaped in HTML parts only; subject and text get values as they are."""
    renderer = _html_renderer if html else _plain_renderer
    return str(renderer.render(template, dict(variables)))


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
    query = select(EmailTemplate).where(
        EmailTemplate.org_id == org_id,
        EmailTemplate.name == name,
        EmailTemplate.external_id.is_(None),
    )
    if locale is not None:
        query = query.where(EmailTemplate.locale == locale)
    else:
        query = query.order_by(case((EmailTemplate.locale == "en", 0), else_=1), EmailTemplate.id)
    row = (await session.execute(query.limit(1))).scalar_one_or_none()
    if row is None:
        return None
    return TemplateText(subject=row.subject, html=row.html, text=row.text)
