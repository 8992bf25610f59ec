"""Email templates kept by an org (local mustache templates or provider references)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.email.directory import directory
from proca_server.errors import BadArgument
from proca_server.models import EmailTemplate, Org

NAME_RE = re.compile(r"^[\w -]+$")
_TAG = re.compile(r"{{([{#^/&!>]?)\s*([^}]*?)\s*}?}}")


def check_mustache(text: str, field: str) -> None:
    """Refuse a template whose tags do not balance (unclosed tag or section)."""
    stack: list[str] = []
    rest = _TAG.sub(lambda m: _track(m, stack, field), text)
    if "{{" in rest or "}}" in rest:
        raise BadArgument("has an unclosed mustache tag", field=field)
    if stack:
        raise BadArgument(f"section {stack[-1]} is not closed", field=field)


def _track(match: re.Match[str], stack: list[str], field: str) -> str:
    kind, name = match.group(1), match.group(2)
    if kind in ("#", "^"):
        stack.append(name)
    elif kind == "/" and (not stack or stack.pop() != name):
        raise BadArgument(f"section {name} closed without being opened", field=field)
    return ""


async def upsert_template(session: AsyncSession, org: Org, attrs: dict[str, Any]) -> EmailTemplate:
    name = attrs.get("name") or ""
    if not NAME_RE.match(name):
        raise BadArgument("has invalid format", field="name")
    locale = attrs.get("locale") or ""
    template = await session.scalar(
        select(EmailTemplate).where(
            EmailTemplate.org_id == org.id,
            EmailTemplate.name == name,
            EmailTemplate.locale == locale,
        )
    )
    if template is None:
        template = EmailTemplate(org_id=org.id, name=name, locale=locale, subject="", html="")
        session.add(template)
    if attrs.get("external_id") is not None:
        template.external_id = attrs["external_id"]
    for field in ("subject", "html", "text"):
        value = attrs.get(field)
        if value is None:
            continue
        if field == "subject":
            value = " ".join(value.splitlines())
        check_mustache(value, field)
        setattr(template, field, value)
    if not template.external_id:
        for field in ("subject", "html"):
            if not getattr(template, field):
                raise BadArgument("can't be blank", field=field)
    await session.flush()
    directory.forget_org(org)
    return template
