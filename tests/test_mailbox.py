"""The preview backend and the /mailbox pages; templates and links of emails."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email import EmailMessage, format_address, get_backend
from proca_server.email.templates import TemplateText, render_template
from proca_server.models import PreviewEmail
from proca_server.web.urls import public_url
from tests.account_helpers import app_settings, log_in, see_committed
from tests.factories import PASSWORD, make_user

EVIL_HTML = (
    '<p>Hello</p><script>alert("x")</script>'
    '<a href="https://example.org/a?b=1&c=2">link</a>"></iframe><b>after</b>'
)


def message(subject: str, **fields: str) -> EmailMessage:
    return EmailMessage(
        to=fields.get("to", "someone@example.org"),
        sender=format_address("Org, Inc.", "org@example.org"),
        subject=subject,
        html=fields.get("html", "<p>hi</p>"),
        text=fields.get("text"),
        headers={"Auto-Submitted": "auto-generated"},
    )


async def test_preview_backend_stores_messages(
    sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    backend = get_backend(sessionmaker)
    assert backend.name == "preview"
    await backend.deliver([message("One", text="plain"), message("Two")])
    await backend.deliver([])

    await see_committed(session)
    rows = (await session.execute(select(PreviewEmail).order_by(PreviewEmail.id))).scalars()
    stored = [(r.subject, r.from_address, r.text, r.headers) for r in rows]
    assert stored == [
        ("One", '"Org, Inc." <org@example.org>', "plain", {"Auto-Submitted": "auto-generated"}),
        ("Two", '"Org, Inc." <org@example.org>', None, {"Auto-Submitted": "auto-generated"}),
    ]


async def test_mailbox_lists_newest_first_and_escapes(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    backend = get_backend(sessionmaker)
    await backend.deliver([message("First")])
    await backend.deliver([message("<b>Second</b> & more", to="<x>@example.org")])

    page = await client.get("/mailbox")

    assert page.status_code == 200
    assert page.text.index("&lt;b&gt;Second&lt;/b&gt; &amp; more") < page.text.index("First")
    assert "&lt;x&gt;@example.org" in page.text
    assert "<b>Second</b>" not in page.text


async def test_mailbox_message_frames_html_in_a_sandbox(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    text = "Confirm at https://proca.example/users/confirm/abc?x=1&y=<2> now"
    await get_backend(sessionmaker).deliver([message("Hi", html=EVIL_HTML, text=text)])
    await see_committed(session)
    row = await session.scalar(select(PreviewEmail))
    assert row is not None

    page = await client.get(f"/mailbox/{row.id}")

    assert page.status_code == 200
    body = page.text
    # the HTML part only exists inside the srcdoc attribute, escaped
    assert "<script>" not in body and "<b>after</b>" not in body
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in body
    assert 'srcdoc="&lt;base target=&quot;_blank&quot;&gt;&lt;p&gt;Hello' in body
    assert "&amp;lt;" not in body.split("srcdoc=")[0]
    # the text part is escaped, its links clickable
    assert '<a href="https://proca.example/users/confirm/abc?x=1&amp;y=">' in body
    assert "&lt;2&gt; now" in body
    assert "Auto-Submitted" in body and "&quot;Org, Inc.&quot; &lt;org@example.org&gt;" in body
    assert "script-src 'none'" in page.headers["content-security-policy"]

    assert (await client.get("/mailbox/999999")).status_code == 404
    assert (await client.get("/mailbox/abc")).status_code == 422


async def test_mailbox_is_for_admins_on_a_public_server(
    app: FastAPI, session: AsyncSession
) -> None:
    admin = await make_user(session, admin=True)
    member = await make_user(session)
    await session.commit()
    transport = httpx.ASGITransport(app=app)
    with app_settings(app, domain="proca.example.org"):
        # cookies are Secure there: the browser speaks https
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            assert (await client.get("/mailbox")).status_code == 404
            await log_in(client, member.email, PASSWORD)
            assert (await client.get("/mailbox")).status_code == 404
            client.cookies.clear()
            response = await log_in(client, admin.email, PASSWORD)
            assert "Secure" in response.headers["set-cookie"]
            assert (await client.get("/mailbox")).status_code == 200
            assert 'href="/mailbox"' in (await client.get("/")).text
    with app_settings(app, env="prod"):
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/mailbox")).status_code == 404


def test_templates_escape_html_parts_only() -> None:
    template = TemplateText(
        subject="Hello {{name}}\r\n and welcome",
        html="<p>{{name}} {{{raw}}} {{missing}}</p>",
        text="Hi {{name}}: {{link}}",
    )
    rendered = render_template(
        template, {"name": "Tom & <Jerry>", "raw": "<i>ok</i>", "link": "https://x/?a=1&b=2"}
    )
    assert rendered.subject == "Hello Tom & <Jerry> and welcome"
    assert rendered.html == "<p>Tom &amp; &lt;Jerry&gt; <i>ok</i> </p>"
    assert rendered.text == "Hi Tom & <Jerry>: https://x/?a=1&b=2"


def test_templates_never_read_partials_from_disk() -> None:
    template = TemplateText(subject="s", html="[{{> /etc/passwd}}][{{>../../pyproject}}]")
    assert render_template(template, {}).html == "[][]"


@pytest.mark.parametrize(
    ("domain", "port", "url"),
    [
        ("localhost", 4000, "http://localhost:4000/users/confirm/t"),
        ("127.0.0.1", 8080, "http://127.0.0.1:8080/users/confirm/t"),
        ("::1", 4000, "http://[::1]:4000/users/confirm/t"),
        ("dev.localhost", 4000, "http://dev.localhost:4000/users/confirm/t"),
        ("proca.example.org", 4000, "https://proca.example.org/users/confirm/t"),
    ],
)
def test_public_links(domain: str, port: int, url: str) -> None:
    assert public_url(Settings(DOMAIN=domain, PORT=port), "/users/confirm/t") == url
