"""The homepage: the logged-in user's organisations, or the way to log in."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from proca_server.auth.permissions import is_admin, role_of
from proca_server.metrics import metrics_port
from proca_server.org.repository import user_memberships
from proca_server.web.html import Html, e, link
from proca_server.web.mailbox import mailbox_allowed
from proca_server.web.pages import Page, PageRoute, page_context

router = APIRouter(route_class=PageRoute)


def tools(page: Page) -> Html:
    """What this server offers a newcomer: the API explorer, the preview mailbox (when this
    user may read it), the health and metrics routes, the documentation."""
    items = [link("/graphiql", "GraphiQL") + " — the API explorer"]
    if mailbox_allowed(page.settings, page.user):
        items.append(link("/mailbox", "Preview mailbox") + " — emails the preview backend kept")
    items.append(link("/health", "/health") + " — is the server and its database up")
    if metrics_port() is None:
        items.append(link("/metrics", "/metrics") + " — Prometheus metrics")
    if page.settings.docs_url:
        items.append(link(page.settings.docs_url, "Documentation"))
    else:
        items.append(
            "Documentation: <code>README.md</code> and <code>docs/</code> in the source "
            "(set <code>DOCS_URL</code> to link them here)"
        )
    return Html("<h2>This server</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")


@router.get("/")
async def home(page: Page = Depends(page_context)) -> Response:
    if page.user is None:
        if page.settings.sso_home_url and not page.settings.local_auth_enable:
            return page.redirect(page.settings.sso_home_url)
        body = Html(
            "<p>This is a Proca server: the backend of online campaigns. Its API is at "
            + link("/api", "/api")
            + ".</p><p>"
            + link("/users/log_in", "Log in")
            + " or "
            + link("/users/register", "register")
            + " to manage your organisations.</p>"
        )
        if page.settings.sso_home_url:
            body = Html(body + "<p>" + link(page.settings.sso_home_url, "Log in with SSO") + "</p>")
        return page.render("Proca", Html(body + tools(page)))
    memberships = await user_memberships(page.session, page.user.id)
    orgs = [
        f"<tr><td>{e(org.name)}</td><td>{e(org.title)}</td><td>{e(role_of(staffer.perms))}</td></tr>"
        for staffer, org in sorted(memberships, key=lambda m: m[1].name.lower())
    ]
    if orgs:
        listing = (
            "<table><thead><tr><th>Organisation</th><th>Title</th><th>Role</th></tr></thead>"
            f"<tbody>{''.join(orgs)}</tbody></table>"
        )
    else:
        listing = "<p>You are not a member of any organisation yet.</p>"
    extra = []
    if is_admin(page.user.perms):
        extra.append("<p>You are an administrator of this instance.</p>")
    return page.render("Your organisations", Html(listing + "".join(extra) + tools(page)))
