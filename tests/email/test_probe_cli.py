"""`proca-server email test`: a test email through the org's backend, received by a real
local SMTP server or kept in the preview mailbox."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import warnings

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import EmailTemplate, Org, PreviewEmail, Service
from tests.cli_helpers import env, fresh, one_line_error, run_operator
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, TlsFiles
from tests.factories import make_org
from tests.local_http import free_port

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py

# aiosmtpd itself sets its deprecated Session.login_data on every AUTH
pytestmark = pytest.mark.filterwarnings(
    "ignore:Session.login_data is deprecated:DeprecationWarning"
)

TO = "ann.tester@example.com"
SENT = re.compile(r"^sent through (.*), message id (<test\.[0-9a-f]{12}@[^>]+>)\n$")


async def smtp_org(
    session: AsyncSession, url: str, *, email_from: str | None = "hello@trees.example"
) -> tuple[Org, int]:
    org = await make_org(session, "trees", title="Save Trees", email_from=email_from)
    service = Service(name="smtp", org_id=org.id, host=url, user=SMTP_USER, password=SMTP_PASSWORD)
    session.add(service)
    await session.flush()
    org.email_backend_id = service.id
    await session.commit()
    return org, service.id


async def email_test(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`proca-server email test ARGS` in this process. A TLS connection ends with a closing
    handshake that the command's event loop, gone once the command returns, may not finish:
    the process of a command run by an operator closes that socket as it exits; here the
    garbage collector closes it now, rather than warning during some later test."""

    def run() -> tuple[int, str, str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                return run_operator(("email", "test", *args), env)
            finally:
                gc.collect()

    return await asyncio.to_thread(run)


@pytest.fixture
def tls_env(env: dict[str, str], tls_files: TlsFiles) -> dict[str, str]:
    # the backend made from the service verifies the server with the default trust store
    return {**env, "SSL_CERT_FILE": str(tls_files.ca)}


async def test_sends_through_the_orgs_smtp_backend_from_its_address(
    tls_env: dict[str, str],
    session: AsyncSession,
    smtps_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, service_id = await smtp_org(session, smtps_server.url)
    caplog.set_level(logging.DEBUG)

    rc, out, err = await email_test("trees", "--to", TO, env=tls_env)
    assert rc == 0, err
    sent = SENT.match(out)
    assert sent is not None, out
    assert sent[1] == f"the smtp email backend (service {service_id})"
    [got] = smtps_server.handler.received
    assert got.rcpt_tos == [TO] and got.login == SMTP_USER
    mime = got.message
    assert mime["Message-Id"] == sent[2]
    assert mime["X-Proca-Custom-Id"].startswith("test:")
    assert mime["From"] == "Save Trees <hello@trees.example>"
    assert mime["Subject"] == "Test email of Save Trees"
    body = mime.get_body(("plain",))
    assert body is not None and "smtp email backend" in body.get_content()
    # the server's own log (aiosmtpd's) aside, no line names the address
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("proca_server")]
    assert any("test:" in line for line in ours)
    assert not [line for line in ours if "ann.tester" in line]


async def test_sends_an_orgs_template_with_sample_merge_tags(
    tls_env: dict[str, str], session: AsyncSession, starttls_server: SmtpServer
) -> None:
    org, _ = await smtp_org(session, starttls_server.url)
    session.add(
        EmailTemplate(
            org_id=org.id,
            name="thanks",
            locale="de",
            subject="Danke {{firstName}}, {{org.title}}",
            html="<p>{{campaign.title}}</p>",
        )
    )
    await session.commit()

    rc, _, err = await email_test(
        "trees", "--to", TO, "--template", "thanks", "--locale", "de", env=tls_env
    )
    assert rc == 0, err
    [got] = starttls_server.handler.received
    assert got.tls
    assert got.message["Subject"] == "Danke Test, Save Trees"
    html = got.message.get_body(("html",))
    assert html is not None and "<p>Test campaign</p>" in html.get_content()

    rc, _, err = await email_test(
        "trees", "--to", TO, "--template", "thanks", "--locale", "fr", env=tls_env
    )
    one_line_error(rc, err, "org trees has no template thanks in locale fr")
    assert len(starttls_server.handler.received) == 1


async def test_the_instance_org_without_backend_fills_the_preview_mailbox(
    env: dict[str, str], session: AsyncSession
) -> None:
    await make_org(session, env["ORG_NAME"], title="Our Instance", email_from="admin@proca.test")
    await session.commit()

    rc, out, err = await email_test(env["ORG_NAME"], "--to", TO, env=env)
    assert rc == 0, err
    sent = SENT.match(out)
    assert sent is not None and sent[1] == "the preview mailbox (/mailbox)", out
    await fresh(session)
    [stored] = (await session.scalars(select(PreviewEmail))).all()
    assert stored.to_address == TO
    assert stored.from_address == "Our Instance <admin@proca.test>"
    assert sent[2] == f"<{stored.headers['X-Proca-Custom-Id'].replace(':', '.')}@proca.test>"


async def test_what_the_org_lacks_is_a_one_line_error(
    tls_env: dict[str, str], session: AsyncSession
) -> None:
    await make_org(session, "bare", email_from="hi@bare.example")
    await smtp_org(session, f"ssl://127.0.0.1:{free_port()}", email_from=None)
    await session.commit()
    cases = [
        (("bare",), ["org bare has no email backend", "emailBackend"]),
        (("trees",), ["org trees has no sender address", "emailFrom"]),
        (("nobody",), ["no org named nobody"]),
    ]
    for org, words in cases:
        rc, _, err = await email_test(*org, "--to", TO, env=tls_env)
        one_line_error(rc, err, *words)
    rc, _, err = await email_test("bare", "--to", "not an address", env=tls_env)
    one_line_error(rc, err, "to: must be an email address")


async def test_a_failed_delivery_is_a_one_line_error(
    tls_env: dict[str, str], session: AsyncSession
) -> None:
    port = free_port()  # nothing listens there
    await smtp_org(session, f"ssl://127.0.0.1:{port}")
    rc, out, err = await email_test("trees", "--to", TO, env=tls_env)
    one_line_error(rc, err, "not sent: smtp: cannot connect", f"127.0.0.1:{port}")
    assert out == "" and TO not in err


async def test_takes_the_transactional_backend_while_its_budget_lasts(
    env: dict[str, str], session: AsyncSession
) -> None:
    org = await make_org(session, "trees", email_from="hello@trees.example")
    bulk = Service(name="preview", org_id=org.id)
    transactional = Service(name="preview", org_id=org.id, transactional_email_budget=1)
    session.add_all([bulk, transactional])
    await session.flush()
    org.email_backend_id = bulk.id
    org.transactional_email_backend_id = transactional.id
    await session.commit()

    said = []
    for _ in range(2):
        rc, out, err = await email_test("trees", "--to", TO, env=env)
        assert rc == 0, err
        sent = SENT.match(out)
        assert sent is not None, out
        said.append(sent[1])
    assert said == [
        f"the preview transactional backend (service {transactional.id})",
        f"the preview email backend (service {bulk.id})",
    ]
    await fresh(session)
    assert len((await session.scalars(select(PreviewEmail))).all()) == 2
