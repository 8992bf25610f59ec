"""Brevo delivery (service `brevo`): one transactional email per call.

`POST {base}/v3/smtp/email` with the service's `password` in the `api-key` header:

| message               | Brevo                                                        |
| --------------------- | ------------------------------------------------------------ |
| sender                | `sender {name, email}`                                       |
| to                    | `to [{email, name}]`                                         |
| cc                    | `cc [{email, name}]`, absent when empty (Brevo refuses `[]`) |
| subject / text / html | `subject` / `textContent` / `htmlContent`                    |
| reply_to              | `replyTo {email, name}`                                      |
| headers               | `headers` (extra headers only)                               |
| custom_id             | `tags [custom id]` (webhook events give it back in `tags[0]`) |
|                       | and the `X-Mailin-custom` header (also echoed in events)     |
| template_ref          | `templateId` (a number)                                      |
| variables             | `params` (with a template)                                   |
| attachments           | `attachment [{name, content}]` (base64; Brevo has no inline  |
|                       | parts and takes the type from the name's extension)          |

Brevo answers 201 `{"messageId": …}`; an error is 4xx/5xx `{"code", "message"}`, quoted
without the recipients' addresses.

`list_templates` reads the active templates for the template directory (email/directory.py):
`GET {base}/v3/smtp/templates?templateStatus=true&limit=50&offset=n`, answer
`{"count", "templates": [{"id", "name", …}]}`."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from proca_server.email.backends.base import (
    DeliveryFailure,
    EmailDeliveryError,
    RemoteTemplate,
    TemplateListError,
    envelope_recipients,
    extra_headers,
    failed_messages,
    get_json,
    http_client,
    list_paged_templates,
    post_json,
    reply_to_of,
    template_number,
)
from proca_server.email.message import EmailMessage, loggable_custom_id, split_address

log = logging.getLogger("proca_server.email.brevo")

BASE_URL = "https://api.brevo.com"


def _contact(value: str) -> dict[str, str]:
    name, address = split_address(value)
    return {"email": address, "name": name} if name else {"email": address}


def brevo_email(message: EmailMessage) -> dict[str, Any]:
    body: dict[str, Any] = {"sender": _contact(message.sender), "to": [_contact(message.to)]}
    if message.cc:
        body["cc"] = [_contact(c) for c in message.cc]
    template = template_number(message)
    if message.template_ref is not None and template is None:
        raise ValueError("a Brevo template id is a number")
    if template is not None:
        body["templateId"] = template
        if message.variables:
            body["params"] = dict(message.variables)
    else:
        body["subject"] = message.subject
        # Brevo needs an HTML body when no template is given
        body["htmlContent"] = message.html if message.html is not None else message.text or ""
        if message.text is not None:
            body["textContent"] = message.text
    reply_to = reply_to_of(message)
    if reply_to:
        body["replyTo"] = _contact(reply_to)
    headers = extra_headers(message)
    if message.custom_id:
        body["tags"] = [message.custom_id]
        headers["X-Mailin-custom"] = message.custom_id
    if headers:
        body["headers"] = headers
    if message.attachments:
        body["attachment"] = [
            {"name": a.filename, "content": base64.b64encode(a.content).decode("ascii")}
            for a in message.attachments
        ]
    return body


class BrevoBackend:
    name = "brevo"
    batch_size = 1

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = BASE_URL,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._client = client

    def __repr__(self) -> str:
        return f"BrevoBackend({self.base_url})"

    async def list_templates(self) -> list[RemoteTemplate]:
        """The account's active templates: ref = the id as a string."""
        async with http_client(self._client) as client:

            async def page(limit: int, offset: int) -> list[Any]:
                answer = await get_json(
                    client,
                    self.name,
                    f"{self.base_url}/v3/smtp/templates",
                    {"templateStatus": "true", "limit": limit, "offset": offset},
                    headers={"api-key": self._api_key, "accept": "application/json"},
                    secrets=[self._api_key],
                )
                if not isinstance(answer, dict):
                    raise TemplateListError("brevo: unexpected template list")
                # an account without templates answers without the key
                templates = answer.get("templates") or []
                if not isinstance(templates, list):
                    raise TemplateListError("brevo: unexpected template list")
                return templates

            return await list_paged_templates(page, "name", "id")

    async def deliver(self, messages: Sequence[EmailMessage]) -> None:
        failures: list[DeliveryFailure] = []
        async with http_client(self._client) as client:
            for index, message in enumerate(messages):
                try:
                    body = brevo_email(message)
                except ValueError as exc:
                    failures.append(
                        DeliveryFailure(index, message.custom_id, str(exc), retryable=False)
                    )
                    continue
                try:
                    await post_json(
                        client,
                        self.name,
                        f"{self.base_url}/v3/smtp/email",
                        body,
                        headers={"api-key": self._api_key, "accept": "application/json"},
                        secrets=[self._api_key, *envelope_recipients(message)],
                    )
                except EmailDeliveryError as exc:
                    failures.append(
                        DeliveryFailure(index, message.custom_id, exc.reason, exc.retryable)
                    )
                    continue
                log.info("sent %s through Brevo", loggable_custom_id(message.custom_id))
        if failures:
            raise failed_messages(self.name, failures, len(messages))
