"""A tiny HTML kit: every dynamic value goes through `e()`; `Html` marks text that is already
safe markup, so helpers can tell the two apart."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from fastapi.responses import HTMLResponse

# Pages never need scripts; email previews are framed with srcdoc under a sandbox.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src * data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.5; }
nav { display: flex; gap: 1rem; align-items: center; border-bottom: 1px solid #ddd;
      padding-bottom: .5rem; margin-bottom: 1.5rem; }
nav .me { margin-left: auto; color: #555; }
nav form { display: inline; margin: 0; }
label { display: block; margin-top: .8rem; font-weight: 600; }
input[type=email], input[type=password], input[type=text] { width: 100%; padding: .4rem;
      box-sizing: border-box; }
button, .button { margin-top: 1rem; padding: .4rem 1rem; }
nav button { margin: 0; padding: 0; border: 0; background: none; color: #06c;
             text-decoration: underline; cursor: pointer; font: inherit; }
.flash { padding: .6rem 1rem; border-radius: 4px; margin-bottom: 1rem; }
.info { background: #e6f4ea; } .error { background: #fde8e8; }
.field-error { color: #b00; font-size: .9rem; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eee; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 1rem; }
iframe { width: 100%; height: 32rem; border: 1px solid #ddd; }
"""


class Html(str):
    """Markup that is safe as it is."""


def e(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[str]) -> Html:
    return Html("".join(e(p) for p in parts))


def link(href: str, text: str) -> Html:
    return Html(f'<a href="{e(href)}">{e(text)}</a>')


def hidden(name: str, value: str) -> Html:
    return Html(f'<input type="hidden" name="{e(name)}" value="{e(value)}">')


def input_field(
    name: str,
    label: str,
    *,
    kind: str = "text",
    value: str = "",
    errors: Sequence[str] = (),
    autocomplete: str | None = None,
    required: bool = True,
) -> Html:
    attrs = [f'type="{e(kind)}"', f'name="{e(name)}"', f'id="{e(name)}"']
    if kind != "password" and value:
        attrs.append(f'value="{e(value)}"')
    if autocomplete:
        attrs.append(f'autocomplete="{e(autocomplete)}"')
    if required:
        attrs.append("required")
    problems = "".join(f'<div class="field-error">{e(p)}</div>' for p in errors)
    return Html(f'<label for="{e(name)}">{e(label)}</label><input {" ".join(attrs)}>{problems}')


def checkbox(name: str, label: str) -> Html:
    return Html(f'<label><input type="checkbox" name="{e(name)}" value="true"> {e(label)}</label>')


def form(
    action: str,
    csrf_token: str,
    fields: Iterable[str],
    submit: str,
    *,
    method: str | None = None,
    form_id: str | None = None,
) -> Html:
    """A POST form; `method` (put, delete) goes in `_method` as browsers only send GET/POST."""
    extra = [hidden("_csrf_token", csrf_token)]
    if method:
        extra.append(hidden("_method", method))
    ident = f' id="{e(form_id)}"' if form_id else ""
    return Html(
        f'<form action="{e(action)}" method="post"{ident}>'
        + join([*extra, *fields])
        + f'<button type="submit">{e(submit)}</button></form>'
    )


def layout(
    title: str,
    body: str,
    *,
    user_email: str | None = None,
    csrf_token: str | None = None,
    flashes: Sequence[tuple[str, str]] = (),
) -> Html:
    if user_email is not None and csrf_token is not None:
        logout = form("/users/log_out", csrf_token, [], "Log out", method="delete")
        account = Html(
            f'<span class="me">{e(user_email)}</span>'
            + link("/users/settings", "Settings")
            + logout
        )
    else:
        account = Html(
            '<span class="me"></span>'
            + link("/users/register", "Register")
            + link("/users/log_in", "Log in")
        )
    notes = "".join(
        f'<p class="flash {e(kind)}" role="alert">{e(text)}</p>' for kind, text in flashes
    )
    return Html(
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · Proca</title><style>{STYLE}</style></head><body>"
        f'<nav><a href="/"><strong>Proca</strong></a>{account}</nav>'
        f"<main>{notes}<h1>{e(title)}</h1>{e(body)}</main></body></html>"
    )


def html_response(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=dict(SECURITY_HEADERS))
