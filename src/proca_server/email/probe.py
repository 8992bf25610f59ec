"""A test email through an org's email backend (`proca-server email test`).

It takes the backend the org's supporter emails take (its transactional backend while its
budget allows, else its email backend; for the instance org, the backend of its own emails,
else the preview mailbox), the org's sender address by the same rules, and either a short
text or one of the org's templates rendered with sample merge tags. Its custom id is
`test:<random>`, which also makes its Message-Id, so the operator can find it at the other
end."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email.backend import (
    OrgEmailBackend,
    get_instance_email_backend,
    get_transactional_backend,
)
from proca_server.email.backends.base import EmailConfigError, message_id_for
from proca_server.email.directory import Missing, directory
from proca_server.email.message import EmailMessage, apply_sender, format_custom_id
from proca_server.email.templates import (
    templated_message,
)
from proca_server.errors import BadArgument
from proca_server.models import Org
from proca_server.org.service import EMAIL_RE


@dataclass(frozen=True)
class Probe:
    """A composed test email and the backend that will deliver it."""

    message: EmailMessage
    backend: OrgEmailBackend

    @property
    def message_id(self) -> str:
        return message_id_for(self.message)


def sample_variables(org: Org, to: str, locale: str | None) -> dict[str, Any]:
    """Merge tags with made-up values, named as in a supporter email."""
    return {
        "firstName": "Test",
        "lastName": "Recipient",
        "email": to,
        "ref": "test",
        "actionId": 0,
        "actionType": "test",
        "isActionType": {"test": True},
        "org": {"name": org.name, "title": org.title},
        "campaign": {"name": "test", "title": "Test campaign", "stats": {"supporterCount": 0}},
        "actionPage": {"name": f"{org.name}/test", "locale": locale or "en"},
        "test": True,
    }


async def _backend(
    session: AsyncSession,
    settings: Settings,
    org: Org,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> OrgEmailBackend:
    try:
        if org.name == settings.org_name:
            return await get_instance_email_backend(session, settings, sessionmaker=sessionmaker)
        backend = await get_transactional_backend(session, org, sessionmaker=sessionmaker)
    except EmailConfigError as exc:
        raise BadArgument(f"org {org.name}: its email backend is unusable: {exc}") from None
    if backend is None:
        raise BadArgument(
            f"org {org.name} has no email backend: set its emailBackend (updateOrg) to an "
            "email service of the org, or to SYSTEM"
        )
    return backend


async def compose_probe(
    session: AsyncSession,
    settings: Settings,
    org: Org,
    to: str,
    *,
    template: str | None = None,
    locale: str | None = None,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Probe:
    """The test email, From settled; deliver it after the transaction commits (a
    transactional budget counts it). Raises BadArgument naming what the org lacks."""
    if not EMAIL_RE.match(to):
        raise BadArgument("must be an email address", field="to")
    backend = await _backend(session, settings, org, sessionmaker)
    custom_id = format_custom_id("test", secrets.token_hex(6))
    if template is None:
        message = EmailMessage(
            to=to,
            sender="",
            subject=f"Test email of {org.title}",
            text=(
                f"This is a test email of the org {org.name}, sent through its "
                f"{backend.name} email backend by proca-server.\n"
            ),
            custom_id=custom_id,
        )
    else:
        found = await directory.lookup(session, org, template, locale, backend=backend)
        if isinstance(found, Missing):
            where = f" in locale {locale}" if locale else ""
            raise BadArgument(f"org {org.name} has no template {template}{where}")
        variables = sample_variables(org, to, locale)
        message = templated_message(found, variables, to=to, custom_id=custom_id)
    # no From yet: the sender rules take the org's address, no sender rewriting (no SRS key)
    sent_as = apply_sender(message, backend.sender_rules(org), srs_key="")
    if sent_as is None:
        raise BadArgument(f"org {org.name} has no sender address: set its emailFrom (updateOrg)")
    return Probe(sent_as, backend)
