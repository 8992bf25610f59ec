"""Email backends made from an org's service: SMTP, Mailjet, SES, Brevo, HubSpot,
and the preview mailbox.

| service  | host                       | user          | password                 | batch |
| -------- | -------------------------- | ------------- | ------------------------ | ----- |
| smtp     | ssl:// smtps:// tls:// URL | user name     | password                 | 1     |
| mailjet  | —                          | API key       | secret key               | 25    |
| ses      | AWS region                 | access key id | secret access key        | 50    |
| brevo    | —                          | —             | API key                  | 1     |
| hubspot  | —                          | —             | `Authorization` value    | 1     |
| preview  | —                          | —             | —                        | 100   |

`testmail`, the Proca server's test-double service, stores to the preview mailbox too."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.email.backends.base import (
    DeliveryFailure,
    EmailConfigError,
    EmailDeliveryError,
)
from proca_server.email.backends.brevo import BrevoBackend
from proca_server.email.backends.hubspot import HubspotBackend
from proca_server.email.backends.mailjet import MailjetBackend
from proca_server.email.backends.smtp import SmtpBackend
from proca_server.email.message import EmailMessage
from proca_server.email.preview import PreviewBackend
from proca_server.kit import extras
from proca_server.models import Service
from proca_server.models.enums import ExternalService

if TYPE_CHECKING:
    # the AWS stack is an extra (`proca-server[aws]`): imported when an SES service is used
    from proca_server.email.backends.ses import SesBackend

AnyBackend: TypeAlias = (
    "SmtpBackend | MailjetBackend | SesBackend | BrevoBackend | HubspotBackend | PreviewBackend"
)

BATCH_SIZES: dict[str, int] = {
    ExternalService.SMTP: SmtpBackend.batch_size,
    ExternalService.MAILJET: MailjetBackend.batch_size,
    ExternalService.SES: 50,  # SesBackend.batch_size, without importing the AWS stack
    ExternalService.BREVO: BrevoBackend.batch_size,
    ExternalService.HUBSPOT: HubspotBackend.batch_size,
    ExternalService.PREVIEW: 100,
    ExternalService.TESTMAIL: 100,
}

EMAIL_SERVICES = frozenset(BATCH_SIZES)


def batch_size(service_name: str) -> int:
    """How many messages the worker hands to one `deliver` call of this backend."""
    return BATCH_SIZES.get(service_name, 1)


def backend_for_service(
    service: Service, sessionmaker: async_sessionmaker[AsyncSession]
) -> AnyBackend:
    """The backend that sends through `service`; raises EmailConfigError for a service that
    is no email backend, or whose fields cannot make one."""
    match service.name:
        case ExternalService.SMTP:
            return SmtpBackend(service.host, service.user, service.password)
        case ExternalService.MAILJET:
            return MailjetBackend(service.user, service.password)
        case ExternalService.SES:
            try:
                extras.require("aws", "the ses email backend")
            except extras.MissingExtra as exc:
                raise EmailConfigError(str(exc)) from None
            from proca_server.email.backends.ses import SesBackend

            return SesBackend(service.host, service.user, service.password)
        case ExternalService.BREVO:
            return BrevoBackend(service.password)
        case ExternalService.HUBSPOT:
            return HubspotBackend(service.password)
        case ExternalService.PREVIEW | ExternalService.TESTMAIL:
            return PreviewBackend(sessionmaker)
    raise EmailConfigError(f"a {service.name} service cannot send email")


__all__ = [
    "BATCH_SIZES",
    "EMAIL_SERVICES",
    "AnyBackend",
    "BrevoBackend",
    "DeliveryFailure",
    "EmailConfigError",
    "EmailDeliveryError",
    "EmailMessage",
    "HubspotBackend",
    "MailjetBackend",
    "PreviewBackend",
    "SmtpBackend",
    "backend_for_service",
    "batch_size",
]
