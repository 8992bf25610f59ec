"""Choosing an org's email backend: its own service, the instance org's borrowed through
SYSTEM, the transactional backend within its budget, and the preview mailbox."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.email.backend import (
    get_instance_email_backend,
    get_org_email_backend,
    get_transactional_backend,
)
from proca_server.email.backends import (
    BrevoBackend,
    EmailConfigError,
    HubspotBackend,
    MailjetBackend,
    PreviewBackend,
    SmtpBackend,
)
from proca_server.email.backends.ses import SesBackend
from proca_server.email.message import EmailMessage
from proca_server.email.preview import list_preview_emails
from proca_server.models import Org, Service
from proca_server.org.service import ensure_instance_org
from proca_server.service import budget
from tests.factories import make_org, make_world
from tests.graphql_helpers import data, gql


async def add_service(session: AsyncSession, org: Org, name: str, **fields: object) -> Service:
    service = Service(name=name, org_id=org.id, **fields)
    session.add(service)
    await session.flush()
    return service


async def test_an_org_without_email_backend_has_none(session: AsyncSession) -> None:
    org = await make_org(session)
    assert await get_org_email_backend(session, org) is None
    assert await get_transactional_backend(session, org) is None


@pytest.mark.parametrize(
    ("name", "fields", "kind", "batch"),
    [
        ("smtp", {"host": "tls://smtp.example.org:587"}, SmtpBackend, 1),
        ("mailjet", {"user": "key", "password": "secret"}, MailjetBackend, 25),
        ("ses", {"host": "eu-west-1", "user": "AKIA", "password": "secret"}, SesBackend, 50),
        ("brevo", {"password": "xkeysib"}, BrevoBackend, 1),
        ("hubspot", {"password": "Bearer pat"}, HubspotBackend, 1),
        ("preview", {}, PreviewBackend, 100),
    ],
)
async def test_the_org_own_service_makes_its_backend(
    session: AsyncSession, name: str, fields: dict[str, str], kind: type, batch: int
) -> None:
    org = await make_org(session, email_from="hello@trees.example")
    service = await add_service(session, org, name, **fields)
    org.email_backend_id = service.id
    await session.flush()

    selected = await get_org_email_backend(session, org)
    assert selected is not None
    assert isinstance(selected.backend, kind)
    assert selected.name == name and selected.batch_size == batch
    assert selected.service is service and not selected.borrowed_by(org)


async def test_service_fields_reach_the_backend(session: AsyncSession) -> None:
    org = await make_org(session)
    smtp = await add_service(
        session, org, "smtp", host="ssl://mail.example.org", user="me", password="pw"
    )
    org.email_backend_id = smtp.id
    ses = await add_service(session, org, "ses", host="eu-central-1", user="AKIA1", password="s")
    org.transactional_email_backend_id = ses.id
    await session.flush()

    own = await get_org_email_backend(session, org)
    assert own is not None and isinstance(own.backend, SmtpBackend)
    assert (own.backend.endpoint.hostname, own.backend.endpoint.port) == ("mail.example.org", 465)
    assert own.backend.endpoint.implicit_tls and own.backend.user == "me"
    transactional = await get_transactional_backend(session, org)
    assert transactional is not None and isinstance(transactional.backend, SesBackend)
    assert (transactional.backend.region, transactional.backend.access_key_id) == (
        "eu-central-1",
        "AKIA1",
    )
    assert "pw" not in repr(own.backend) and "'s'" not in repr(transactional.backend)


async def test_a_service_that_sends_no_email_gives_no_backend(session: AsyncSession) -> None:
    org = await make_org(session)
    webhook = await add_service(session, org, "webhook", host="https://example.org/hook")
    org.email_backend_id = webhook.id
    await session.flush()
    assert await get_org_email_backend(session, org) is None


async def test_a_malformed_smtp_host_is_a_config_error(session: AsyncSession) -> None:
    org = await make_org(session)
    smtp = await add_service(session, org, "smtp", host="smtp.example.org")
    org.email_backend_id = smtp.id
    await session.flush()
    with pytest.raises(EmailConfigError):
        await get_org_email_backend(session, org)


async def test_system_lends_the_instance_backend_and_its_sender(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    instance = (await ensure_instance_org(session, settings.org_name)).org
    instance.email_from = "info@instance.example"
    shared = await add_service(
        session,
        instance,
        "mailjet",
        user="key",
        password="secret",
        sending_from="mailer@proca.example",
    )
    instance.email_backend_id = shared.id
    world = await make_world(session)  # commits
    doc = (
        "mutation($n: String!) { updateOrgProcessing(name: $n, emailBackend: SYSTEM)"
        " { processing { emailBackend } } }"
    )
    result = data(await gql(client, doc, {"n": world.org.name}, token=world.tokens["owner"]))
    assert result["updateOrgProcessing"]["processing"]["emailBackend"] == "MAILJET"
    await session.rollback()
    org = await session.get(Org, world.org.id, populate_existing=True)
    assert org is not None
    org.email_from = None

    selected = await get_org_email_backend(session, org)
    assert selected is not None and isinstance(selected.backend, MailjetBackend)
    assert selected.borrowed_by(org) and selected.owner is not None
    assert selected.owner.id == instance.id
    rules = selected.sender_rules(org)
    assert (rules.email_from, rules.owner_email_from, rules.sending_address) == (
        None,
        "info@instance.example",
        "mailer@proca.example",
    )


async def test_transactional_backend_within_budget_then_fallback(session: AsyncSession) -> None:
    org = await make_org(session)
    mailjet = await add_service(session, org, "mailjet", user="k", password="s")
    brevo = await add_service(session, org, "brevo", password="b", transactional_email_budget=3)
    org.email_backend_id = mailjet.id
    org.transactional_email_backend_id = brevo.id
    await session.flush()

    first = await get_transactional_backend(session, org, 2)
    assert first is not None and first.name == "brevo" and first.transactional
    # 2 sent + 2 more > 3: this batch falls back, and is not counted
    second = await get_transactional_backend(session, org, 2)
    assert second is not None and second.name == "mailjet" and not second.transactional
    third = await get_transactional_backend(session, org, 1)
    assert third is not None and third.name == "brevo"
    assert await budget.used(session, org.id) == 3
    # the ordinary backend is used for MTT emails whatever the budget says
    plain = await get_org_email_backend(session, org)
    assert plain is not None and plain.name == "mailjet"

    await budget.reset(session, org.id)
    again = await get_transactional_backend(session, org, 3)
    assert again is not None and again.name == "brevo"


async def test_transactional_backend_without_budget_is_unlimited(session: AsyncSession) -> None:
    org = await make_org(session)
    ses = await add_service(session, org, "ses", host="eu-west-1")
    org.transactional_email_backend_id = ses.id
    await session.flush()
    for _ in range(3):
        selected = await get_transactional_backend(session, org, 1000)
        assert selected is not None and selected.name == "ses"


async def test_instance_emails_go_to_the_preview_mailbox_until_it_has_a_backend(
    session: AsyncSession, settings: Settings
) -> None:
    default = await get_instance_email_backend(session, settings)
    assert isinstance(default.backend, PreviewBackend) and default.service is None
    message = EmailMessage(to="ann@example.com", sender="Proca <info@x.example>", subject="Hi")
    await default.deliver([message])
    stored = await list_preview_emails(session)
    assert [(e.to_address, e.subject) for e in stored] == [("ann@example.com", "Hi")]

    instance = (await ensure_instance_org(session, settings.org_name)).org
    still = await get_instance_email_backend(session, settings)
    assert isinstance(still.backend, PreviewBackend)
    assert still.owner is not None and still.owner.id == instance.id
    smtp = await add_service(session, instance, "smtp", host="tls://smtp.example.org")
    instance.email_backend_id = smtp.id
    await session.flush()
    chosen = await get_instance_email_backend(session, settings)
    assert isinstance(chosen.backend, SmtpBackend)
