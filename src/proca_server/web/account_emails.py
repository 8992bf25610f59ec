"""The account emails (confirm, reset password, change email), sent from the instance org.

The instance org's local templates `user_confirm_email`, `user_reset_password` and
`user_change_email` are used when it has them (merge tags `confirmLink` and `email`); else a
built-in plain message, so that a new server's first users still get a working link."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.email import EmailMessage, format_address
from proca_server.email.templates import TemplateText, get_local_template, render_template
from proca_server.models import Org
from proca_server.org.repository import get_org_by_name
from proca_server.web.urls import is_local_domain

log = logging.getLogger("proca_server.web.account_emails")

CONFIRM_TEMPLATE = "user_confirm_email"
RESET_TEMPLATE = "user_reset_password"
CHANGE_EMAIL_TEMPLATE = "user_change_email"


def _default(subject: str, intro: str, action: str, outro: str) -> TemplateText:
    return TemplateText(
        subject=subject,
        text=f"Hi {{{{email}}}},\n\n{intro}\n\n{{{{confirmLink}}}}\n\n{outro}\n",
        html=(
            f"<p>Hi {{{{email}}}},</p><p>{intro}</p>"
            f'<p><a href="{{{{confirmLink}}}}">{action}</a></p>'
            f"<p>Or copy this link into your browser:<br>{{{{confirmLink}}}}</p>"
            f"<p>{outro}</p>"
        ),
    )


DEFAULTS = {
    CONFIRM_TEMPLATE: _default(
        "Confirm your account",
        "You can confirm your account by visiting the link below.",
        "Confirm my account",
        "If you didn't create an account with us, please ignore this.",
    ),
    RESET_TEMPLATE: _default(
        "Reset your password",
        "You can reset your password by visiting the link below.",
        "Reset my password",
        "If you didn't request this change, please ignore this.",
    ),
    CHANGE_EMAIL_TEMPLATE: _default(
        "Confirm your new email address",
        "You can change your email by visiting the link below.",
        "Change my email",
        "If you didn't request this change, please ignore this.",
    ),
}


def _sender(settings: Settings, org: Org | None) -> str:
    if org is not None and org.email_from:
        return format_address(org.title, org.email_from)
    domain = settings.domain.strip("[]")
    host = "localhost" if is_local_domain(domain) else domain
    return format_address(org.title if org else "Proca", f"noreply@{host}")


async def compose_account_email(
    session: AsyncSession, settings: Settings, template_name: str, to: str, confirm_link: str
) -> EmailMessage:
    org = await get_org_by_name(session, settings.org_name)
    template = None
    if org is not None:
        template = await get_local_template(session, org.id, template_name)
    variables = {"confirmLink": confirm_link, "email": to}
    rendered = None
    if template is not None:
        try:
            rendered = render_template(template, variables)
        except Exception:
            # a broken template must not lock users out: they get the built-in email
            log.warning("the instance org's %s template does not render", template_name)
    if rendered is None:
        rendered = render_template(DEFAULTS[template_name], variables)
    return EmailMessage(
        to=to,
        sender=_sender(settings, org),
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        headers={"Auto-Submitted": "auto-generated"},
    )
