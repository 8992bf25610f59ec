"""Notification emails about a new confirm.

They are sent from the instance org with its local template named after the operation
(`launch_page`, `add_partner`, `add_staffer`, `confirm_action`, `join_campaign`); when the
instance org has no such template a short built-in one is used, so that an invitation still
carries its links. Messages are composed inside the transaction that created the confirm and
delivered after it commits."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.permissions import role_of
from proca_server.config import Settings
from proca_server.email import EmailMessage, format_address
from proca_server.email.templates import TemplateText, get_local_template, render_template
from proca_server.models import ActionPage, Campaign, Confirm, Org, Staffer, User
from proca_server.models.enums import ConfirmOperation
from proca_server.org.repository import get_org_by_name
from proca_server.web.urls import is_local_domain, public_url

# Roles of the lead org's staff who are asked to approve a partner's page.
LAUNCH_APPROVER_ROLES = ("owner", "campaigner")

_FOOTER_TEXT = (
    "{{#message}}\nMessage from {{creator.email}}:\n{{message}}\n{{/message}}\n"
    "Accept: {{acceptLink}}\n"
    "Reject: {{rejectLink}}\n\n"
    "Or use the code {{code}}.\n"
)
_FOOTER_HTML = (
    "{{#message}}<p>Message from {{creator.email}}:</p><blockquote>{{message}}</blockquote>"
    "{{/message}}"
    '<p><a href="{{acceptLink}}">Accept</a> &middot; <a href="{{rejectLink}}">Reject</a></p>'
    "<p>Or use the code <b>{{code}}</b>.</p>"
)


def _default(subject: str, intro: str) -> TemplateText:
    return TemplateText(
        subject=subject,
        text=f"{intro}\n\n{_FOOTER_TEXT}",
        html=f"<p>{intro}</p>{_FOOTER_HTML}",
    )


DEFAULT_TEMPLATES: dict[ConfirmOperation, TemplateText] = {
    ConfirmOperation.LAUNCH_PAGE: _default(
        "{{org.title}} asks to launch an action page in {{campaign.title}}",
        "{{creator.email}} of {{org.title}} asks to launch an action page in your campaign "
        "{{campaign.title}}.",
    ),
    ConfirmOperation.ADD_STAFFER: _default(
        "You are invited to join {{org.title}}",
        "{{creator.email}} invites you to join the team of {{org.title}}.",
    ),
    ConfirmOperation.ADD_PARTNER: _default(
        "You are invited to join the campaign {{campaign.title}}",
        "{{creator.email}} invites your organisation to join the campaign {{campaign.title}}.",
    ),
    ConfirmOperation.JOIN_CAMPAIGN: _default(
        "{{org.title}} asks to join {{campaign.title}}",
        "{{org.title}} asks to join your campaign {{campaign.title}}.",
    ),
    ConfirmOperation.CONFIRM_ACTION: _default(
        "Please confirm", "Please confirm or reject this request."
    ),
}


def template_name(operation: ConfirmOperation) -> str:
    return operation.name.lower()


def confirm_link(settings: Settings, confirm: Confirm, verb: str) -> str:
    """`/link/<accept|reject>/<code>` with what the lookup needs: the email, else the object."""
    query: dict[str, str] = {}
    if confirm.email:
        query["email"] = confirm.email
    elif confirm.object_id is not None:
        query["id"] = str(confirm.object_id)
    path = f"/link/{verb}/{confirm.code}"
    return public_url(settings, f"{path}?{urlencode(query)}" if query else path)


def _named(row: Org | Campaign | None) -> dict[str, Any]:
    return {} if row is None else {"name": row.name, "title": row.title}


def _twitter(org: Org) -> dict[str, Any]:
    twitter = (org.config or {}).get("twitter")
    if not isinstance(twitter, dict):
        return {}
    keys = {
        "name": "name",
        "screen_name": "screenName",
        "picture": "picture",
        "description": "description",
        "url": "url",
        "followers_count": "followersCount",
    }
    return {out: twitter[key] for key, out in keys.items() if twitter.get(key) is not None}


async def _operation_fields(session: AsyncSession, confirm: Confirm) -> dict[str, Any]:
    op = confirm.operation
    if op is ConfirmOperation.ADD_STAFFER:
        return {"org": _named(await session.get(Org, confirm.subject_id))}
    if op is ConfirmOperation.LAUNCH_PAGE:
        campaign = await session.get(Campaign, confirm.subject_id)
        page = (
            await session.get(ActionPage, confirm.object_id)
            if confirm.object_id is not None
            else None
        )
        org = await session.get(Org, page.org_id) if page is not None else None
        org_fields = _named(org)
        if org is not None:
            org_fields["twitter"] = _twitter(org)
        return {"campaign": _named(campaign), "org": org_fields}
    if op is ConfirmOperation.ADD_PARTNER:
        template_page = await session.get(ActionPage, confirm.subject_id)
        campaign = await session.get(Campaign, template_page.campaign_id) if template_page else None
        return {"campaign": _named(campaign)}
    if op is ConfirmOperation.JOIN_CAMPAIGN:
        campaign = (
            await session.get(Campaign, confirm.object_id)
            if confirm.object_id is not None
            else None
        )
        return {
            "org": _named(await session.get(Org, confirm.subject_id)),
            "campaign": _named(campaign),
        }
    return {}


async def merge_fields(
    session: AsyncSession, settings: Settings, confirm: Confirm
) -> dict[str, Any]:
    creator = await session.get(User, confirm.creator_id) if confirm.creator_id else None
    fields: dict[str, Any] = {
        "operation": template_name(confirm.operation),
        "email": confirm.email or "",
        "message": confirm.message or "",
        "subjectId": confirm.subject_id,
        "objectId": "" if confirm.object_id is None else confirm.object_id,
        "code": confirm.code,
        "creator": {"email": creator.email, "jobTitle": creator.job_title} if creator else {},
        "acceptLink": confirm_link(settings, confirm, "accept"),
        "rejectLink": confirm_link(settings, confirm, "reject"),
    }
    fields.update(await _operation_fields(session, confirm))
    return fields


async def launch_approvers(session: AsyncSession, campaign: Campaign | None) -> list[str]:
    """Emails of the lead org's owners and campaigners."""
    if campaign is None or campaign.org_id is None:
        return []
    rows = await session.execute(
        select(User.email, Staffer.perms)
        .join(Staffer, Staffer.user_id == User.id)
        .where(Staffer.org_id == campaign.org_id)
        .order_by(User.id)
    )
    return [email for email, perms in rows.all() if role_of(perms) in LAUNCH_APPROVER_ROLES]


async def recipients(session: AsyncSession, confirm: Confirm) -> list[str]:
    if confirm.operation is ConfirmOperation.LAUNCH_PAGE:
        return await launch_approvers(session, await session.get(Campaign, confirm.subject_id))
    return [confirm.email] if confirm.email else []


def _sender(settings: Settings, instance: Org | None) -> str:
    if instance is not None and instance.email_from:
        return format_address(instance.title, instance.email_from)
    host = "localhost" if is_local_domain(settings.domain) else settings.domain.strip("[]")
    return format_address(instance.title if instance else "Proca", f"noreply@{host}")


async def compose_notifications(
    session: AsyncSession, settings: Settings, confirm: Confirm
) -> list[EmailMessage]:
    """One message per recipient, from the instance org; none when nobody is to be told."""
    to = await recipients(session, confirm)
    if not to:
        return []
    instance = await get_org_by_name(session, settings.org_name)
    template = None
    if instance is not None:
        template = await get_local_template(session, instance.id, template_name(confirm.operation))
    template = template or DEFAULT_TEMPLATES[confirm.operation]
    rendered = render_template(template, await merge_fields(session, settings, confirm))
    sender = _sender(settings, instance)
    # The recipient's name is the local part of the address, as the original names them.
    return [
        EmailMessage(
            to=format_address(address.split("@", 1)[0], address),
            sender=sender,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            headers={"Auto-Submitted": "auto-generated"},
        )
        for address in to
    ]
