"""Services: an org's external APIs (email providers, webhooks, SQS, …) and their
credentials (stored encrypted: docs/configuration.md, "Encryption at rest")."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.errors import BadArgument, NotFound
from proca_server.kit import extras
from proca_server.models import Org, Service
from proca_server.org.repository import latest_service

# services that talk to AWS through the `aws` extra's libraries
AWS_SERVICES = frozenset({"ses", "sqs"})
# donations through Stripe, with the `stripe` extra's library (donation/stripe.py)
STRIPE_SERVICES = frozenset({"stripe", "test_stripe"})

FIELDS = ("host", "user", "password", "path", "sending_from", "transactional_email_budget")


async def upsert_service(
    session: AsyncSession, org: Org, service_id: int | None, name: str, attrs: dict[str, Any]
) -> Service:
    """With an id, update that service (its name cannot change); without, update the org's
    latest service of that name or create one."""
    if name == "system":
        raise BadArgument("SYSTEM is not a service of its own", field="name")
    if name in AWS_SERVICES and not extras.installed("aws"):
        raise BadArgument(str(extras.MissingExtra(f"the {name} service", "aws")), field="name")
    if name in STRIPE_SERVICES and not extras.installed("stripe"):
        raise BadArgument(str(extras.MissingExtra(f"the {name} service", "stripe")), field="name")
    if service_id is not None:
        service = await session.get(Service, service_id)
        if service is None or service.org_id != org.id:
            raise NotFound(f"Cannot find service with {service_id}")
        if service.name != name:
            raise BadArgument("cannot be changed", field="name")
    else:
        service = await latest_service(session, org.id, name)
        if service is None:
            service = Service(name=name, org_id=org.id)
            session.add(service)
    for field in FIELDS:
        if field in attrs and attrs[field] is not None:
            setattr(service, field, attrs[field])
    budget = service.transactional_email_budget
    if budget is not None and budget < 0:
        raise BadArgument("must be positive", field="transactionalEmailBudget")
    await session.flush()
    return service
