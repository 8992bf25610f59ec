"""The template directory: provider template lists (local Mailjet and Brevo
stand-ins, moto for SES), the lookup order and cache, and `processing.emailTemplates`."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from proca_server.config import Settings
from proca_server.email.backend import OrgEmailBackend
from proca_server.email.backends import BrevoBackend, MailjetBackend
from proca_server.email.backends.base import TemplateListError
from proca_server.email.backends.ses import SesBackend
from proca_server.email.directory import (
    Missing,
    TemplateDirectory,
    TemplateLister,
    check_template_name,
    directory,
)
from proca_server.email.supporter import compose_email, due_email
from proca_server.email.templates import ProviderTemplate, TemplateText
from proca_server.errors import BadArgument
from proca_server.models import EmailTemplate, Org, Service
from tests.email.providers import BREVO_KEY, MAILJET_KEY, MAILJET_SECRET, mailjet_app
from tests.email.worker_world import smtp_site
from tests.factories import make_org, make_world
from tests.graphql_helpers import data, gql
from tests.local_http import free_port, serve
from tests.processing.helpers import action_ids, load, sign

MAILJET_AUTH = "Basic " + base64.b64encode(f"{MAILJET_KEY}:{MAILJET_SECRET}".encode()).decode()


@dataclass
class Provider:
    """A provider's template list; `pages` counts the list requests it answered."""

    templates: list[tuple[int, str]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)

    def add(self, count: int, start: int = 1) -> None:
        self.templates += [(start + n, f"template {start + n}") for n in range(count)]

    def page(self, request: Request) -> list[tuple[int, str]]:
        self.queries.append(dict(request.query_params))
        limit = int(request.query_params.get("limit", "10"))
        offset = int(request.query_params.get("offset", "0"))
        return self.templates[offset : offset + limit]


def mailjet_templates(provider: Provider) -> Starlette:
    """`GET /v3/REST/template` with Basic auth, answering `{Count, Data, Total}`."""

    async def listing(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != MAILJET_AUTH:
            return JSONResponse({"ErrorMessage": "API key authentication failure."}, 401)
        page = provider.page(request)
        return JSONResponse(
            {
                "Count": len(page),
                "Data": [{"ID": i, "Name": name, "OwnerType": "user"} for i, name in page],
                "Total": len(page),
            }
        )

    return Starlette(routes=[Route("/v3/REST/template", listing)])


def brevo_templates(provider: Provider) -> Starlette:
    """`GET /v3/smtp/templates` with the `api-key` header; no `templates` key when empty."""

    async def listing(request: Request) -> JSONResponse:
        if request.headers.get("api-key") != BREVO_KEY:
            return JSONResponse({"code": "unauthorized", "message": "Key not found"}, 401)
        page = provider.page(request)
        body: dict[str, object] = {"count": len(provider.templates)}
        if page:
            body["templates"] = [
                {"id": i, "name": name, "subject": "Hi", "isActive": True} for i, name in page
            ]
        return JSONResponse(body)

    return Starlette(routes=[Route("/v3/smtp/templates", listing)])


@pytest.fixture(autouse=True)
def fresh_directory() -> Iterator[None]:
    """The shared directory keeps no provider list from one test to the next (their service
    ids repeat)."""
    directory.clear()
    yield
    directory.clear()


@pytest.fixture
async def mailjet() -> AsyncIterator[tuple[str, Provider]]:
    provider = Provider()
    async with serve(mailjet_templates(provider)) as base:
        yield base, provider


# --- provider lists -------------------------------------------------------------------------------


async def test_mailjet_lists_all_pages_with_numeric_refs(
    mailjet: tuple[str, Provider],
) -> None:
    base, provider = mailjet
    provider.add(120)

    found = await MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base).list_templates()

    assert len(found) == 120
    assert (found[0].name, found[0].ref) == ("template 1", "1")
    assert (found[-1].name, found[-1].ref) == ("template 120", "120")
    assert provider.queries == [
        {"limit": "50", "offset": "0"},
        {"limit": "50", "offset": "50"},
        {"limit": "50", "offset": "100"},
    ]


async def test_mailjet_refused_keys_raise_without_the_secret(
    mailjet: tuple[str, Provider],
) -> None:
    base, _ = mailjet
    backend = MailjetBackend(MAILJET_KEY, "Wrong-secret-456", base_url=base)

    with pytest.raises(TemplateListError) as failed:
        await backend.list_templates()

    assert "401" in str(failed.value)
    assert "Wrong-secret-456" not in str(failed.value)


async def test_brevo_lists_active_templates_page_by_page() -> None:
    provider = Provider()
    provider.add(50)
    async with serve(brevo_templates(provider)) as base:
        found = await BrevoBackend(BREVO_KEY, base_url=base).list_templates()
        assert [t.ref for t in found] == [str(n) for n in range(1, 51)]
        assert found[4].name == "template 5"
        # a full page asks for the next one, which is empty
        assert provider.queries == [
            {"templateStatus": "true", "limit": "50", "offset": "0"},
            {"templateStatus": "true", "limit": "50", "offset": "50"},
        ]

        with pytest.raises(TemplateListError) as failed:
            await BrevoBackend("xkeysib-Wrong-789", base_url=base).list_templates()
        assert "xkeysib-Wrong-789" not in str(failed.value)


SES_REGION, SES_KEY, SES_SECRET = "eu-west-1", "AKIAPROCATEST", "ses-Secret-key-0123456789"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_ses_lists_templates_by_name(moto_url: str) -> None:
    async with httpx.AsyncClient() as client:
        (await client.post(f"{moto_url}/moto-api/reset")).raise_for_status()
    async with get_session().create_client(
        "ses",
        region_name=SES_REGION,
        endpoint_url=moto_url,
        aws_access_key_id=SES_KEY,
        aws_secret_access_key=SES_SECRET,
    ) as client:
        for name in ("thank-you", "confirm"):
            await client.create_template(
                Template={"TemplateName": name, "SubjectPart": "Hi", "HtmlPart": "<p>Hi</p>"}
            )

    backend = SesBackend(SES_REGION, SES_KEY, SES_SECRET, endpoint_url=moto_url)
    found = await backend.list_templates()

    assert sorted((t.name, t.ref) for t in found) == [
        ("confirm", "confirm"),
        ("thank-you", "thank-you"),
    ]


async def test_ses_list_failure_raises_without_the_secret() -> None:
    # nothing listens on this port
    backend = SesBackend(
        SES_REGION, SES_KEY, SES_SECRET, endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(TemplateListError) as failed:
        await backend.list_templates()
    assert SES_SECRET not in str(failed.value)


# --- the directory --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def local_mailjet(base: str) -> TemplateDirectory:
    """A directory whose Mailjet services are served by the local stand-in."""

    def lister_for(backend: OrgEmailBackend) -> TemplateLister | None:
        service = backend.service
        if service is None or service.name != "mailjet":
            return None
        return MailjetBackend(service.user, service.password, base_url=base)

    return TemplateDirectory(ttl=300, miss_reload_interval=10, clock=Clock(), lister_for=lister_for)


async def org_with_backend(session: AsyncSession, name: str = "mailjet") -> Org:
    org = await make_org(session)
    host = "tls://smtp.example.org:587" if name == "smtp" else ""
    service = Service(
        name=name, host=host, user=MAILJET_KEY, password=MAILJET_SECRET, org_id=org.id
    )
    session.add(service)
    await session.flush()
    org.email_backend_id = service.id
    await session.commit()
    return org


def local(org: Org, name: str, locale: str, **fields: str) -> EmailTemplate:
    return EmailTemplate(
        org_id=org.id,
        name=name,
        locale=locale,
        subject=fields.get("subject", "Hi"),
        html=fields.get("html", "<p>Hi</p>"),
        external_id=fields.get("external_id"),
    )


async def test_local_templates_come_first_then_the_provider(
    session: AsyncSession, mailjet: tuple[str, Provider]
) -> None:
    base, provider = mailjet
    provider.templates = [(7, "thanks"), (8, "remote only")]
    org = await org_with_backend(session)
    session.add_all(
        [
            local(org, "thanks", "fr", subject="Merci"),
            local(org, "thanks", "en", subject="Thanks"),
            local(org, "kept there", "en", external_id="4242"),
        ]
    )
    await session.commit()
    templates = local_mailjet(base)

    assert await templates.lookup(session, org, "thanks", "fr") == TemplateText(
        "Merci", "<p>Hi</p>"
    )
    # without a locale: any one of the name, English first
    assert await templates.lookup(session, org, "thanks") == TemplateText("Thanks", "<p>Hi</p>")
    assert await templates.lookup(session, org, "kept there", "en") == ProviderTemplate("4242")
    # no local row for this locale: the provider's template of that name
    assert await templates.lookup(session, org, "thanks", "de") == ProviderTemplate("7")
    assert await templates.lookup(session, org, "remote only", "en") == ProviderTemplate("8")
    assert await templates.lookup(session, org, "nowhere", "en") is Missing.NOT_FOUND


async def test_without_an_email_backend_the_directory_is_not_configured(
    session: AsyncSession, mailjet: tuple[str, Provider]
) -> None:
    base, _ = mailjet
    org = await make_org(session)
    session.add(local(org, "thanks", "en"))
    await session.commit()
    templates = local_mailjet(base)

    assert isinstance(await templates.lookup(session, org, "thanks", "en"), TemplateText)
    assert await templates.lookup(session, org, "other", "en") is Missing.NOT_CONFIGURED
    assert await templates.has_template(session, org, "other") is None


async def test_an_smtp_backend_has_only_local_templates(
    session: AsyncSession, mailjet: tuple[str, Provider]
) -> None:
    base, provider = mailjet
    provider.templates = [(1, "thanks")]
    org = await org_with_backend(session, "smtp")
    templates = local_mailjet(base)

    assert await templates.lookup(session, org, "thanks", "en") is Missing.NOT_FOUND
    assert await templates.has_template(session, org, "thanks") is False
    assert provider.queries == []


async def test_a_miss_reloads_the_list_once_and_the_list_expires(
    session: AsyncSession, mailjet: tuple[str, Provider]
) -> None:
    base, provider = mailjet
    provider.templates = [(1, "thanks")]
    org = await org_with_backend(session)
    templates = local_mailjet(base)
    clock = templates._clock
    assert isinstance(clock, Clock)

    assert await templates.lookup(session, org, "thanks", "en") == ProviderTemplate("1")
    assert len(provider.queries) == 1
    assert await templates.lookup(session, org, "thanks", "en") == ProviderTemplate("1")
    assert len(provider.queries) == 1  # cached

    # a template added at the provider: a miss right after a load does not call again…
    provider.templates.append((2, "confirm"))
    assert await templates.lookup(session, org, "confirm", "en") is Missing.NOT_FOUND
    assert len(provider.queries) == 1
    # …a later miss reloads the list once
    clock.now += 11
    assert await templates.lookup(session, org, "confirm", "en") == ProviderTemplate("2")
    assert len(provider.queries) == 2

    # a template renamed at the provider: the old name is served until the list expires
    provider.templates = [(1, "thank you"), (2, "confirm")]
    assert await templates.lookup(session, org, "thanks", "en") == ProviderTemplate("1")
    clock.now += 300
    assert await templates.lookup(session, org, "thanks", "en") is Missing.NOT_FOUND
    assert await templates.has_template(session, org, "thank you") is True


async def test_an_unreadable_list_is_logged_without_secrets_and_not_found(
    session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    org = await org_with_backend(session)
    templates = local_mailjet(f"http://127.0.0.1:{free_port()}")

    with caplog.at_level(logging.WARNING, "proca_server.email.directory"):
        assert await templates.lookup(session, org, "thanks", "en") is Missing.NOT_FOUND

    assert "could not be listed" in caplog.text
    assert MAILJET_SECRET not in caplog.text


async def test_upsert_template_forgets_the_provider_list(
    session: AsyncSession, mailjet: tuple[str, Provider]
) -> None:
    base, provider = mailjet
    provider.templates = [(1, "thanks")]
    org = await org_with_backend(session)
    templates = local_mailjet(base)
    await templates.names(session, org)
    assert templates.holds(org.email_backend_id)

    templates.forget_org(org)

    assert not templates.holds(org.email_backend_id)


async def test_email_templates_lists_local_and_provider_names(
    client: httpx.AsyncClient,
    session: AsyncSession,
    mailjet: tuple[str, Provider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, provider = mailjet
    provider.templates = [(11, "remote thanks")]
    world = await make_world(session)
    org = world.org
    service = Service(name="mailjet", user=MAILJET_KEY, password=MAILJET_SECRET, org_id=org.id)
    session.add(service)
    await session.flush()
    org.email_backend_id = service.id
    session.add(local(org, "thanks", "en"))
    await session.commit()
    # the shared directory, reading this test's stand-in instead of api.mailjet.com
    monkeypatch.setattr(directory, "_lister_for", local_mailjet(base)._lister_for)
    query = "query($o: String!) { org(name: $o) { processing { emailTemplates } } }"

    async def names() -> list[str]:
        body = await gql(client, query, {"o": org.name}, token=world.tokens["owner"])
        result: list[str] = data(body)["org"]["processing"]["emailTemplates"]
        return result

    assert await names() == ["thanks@en", "remote thanks"]

    # cached: a template added at the provider appears once a template is saved here
    provider.templates.append((12, "another"))
    assert await names() == ["thanks@en", "remote thanks"]
    upsert = (
        "mutation($o: String!, $i: EmailTemplateInput!) { upsertTemplate(orgName: $o, input: $i) }"
    )
    saved = await gql(
        client,
        upsert,
        {"o": org.name, "i": {"name": "confirm", "locale": "de", "subject": "S", "html": "H"}},
        token=world.tokens["owner"],
    )
    assert data(saved)["upsertTemplate"] == "SUCCESS"
    assert await names() == ["confirm@de", "thanks@en", "another", "remote thanks"]


async def test_a_page_naming_a_provider_template_sends_that_template(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = Provider(templates=[(4711, "mj thanks")])
    send, seen = mailjet_app()
    app = Starlette(routes=[*send.routes, *mailjet_templates(provider).routes])
    site = await smtp_site(session, None, page_fields={"thank_you_template": "mj thanks"})
    await sign(client, site.page_id)
    [loaded] = await load(session, (await action_ids(session))[-1:])
    service = Service(
        name="mailjet", user=MAILJET_KEY, password=MAILJET_SECRET, org_id=loaded.org.id
    )
    session.add(service)
    await session.flush()
    due = due_email(loaded, "deliver")
    assert due is not None and due.template == "mj thanks"

    async with serve(app) as base:
        backend = OrgEmailBackend(
            MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base), service, loaded.org
        )
        message = await compose_email(session, settings, loaded, due, backend)
        assert message is not None
        await backend.deliver([message])

    [body] = seen.bodies
    [entry] = body["Messages"]
    assert entry["TemplateID"] == 4711
    assert entry["TemplateLanguage"] is True
    assert entry["Variables"]["firstName"] == "Ann"
    assert entry["Variables"]["orgName"] == site.org_name
    assert entry["From"] == {"Email": "hello@trees.example", "Name": "Save Trees"}


async def test_template_names_are_checked_only_with_an_email_backend(
    session: AsyncSession, mailjet: tuple[str, Provider], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, provider = mailjet
    provider.templates = [(3, "remote thanks")]
    monkeypatch.setattr(directory, "_lister_for", local_mailjet(base)._lister_for)
    org = await org_with_backend(session)
    session.add(local(org, "thanks", "de"))
    await session.commit()

    await check_template_name(session, org, "thanks", "thankYouTemplate")
    await check_template_name(session, org, "remote thanks", "thankYouTemplate")
    await check_template_name(session, org, None, "thankYouTemplate")
    with pytest.raises(BadArgument) as refused:
        await check_template_name(session, org, "nowhere", "thankYouTemplate")
    assert refused.value.field == ["thankYouTemplate"]
    assert refused.value.message == "Template not found"

    without = await make_org(session)
    await session.commit()
    await check_template_name(session, without, "nowhere", "supporterConfirmTemplate")
