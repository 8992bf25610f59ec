"""Mailjet delivery (service `mailjet`): Send API v3.1, up to 25 messages a call.

`POST {base}/v3.1/send`, HTTP Basic with the service's `user` (API key) and `password`
(secret key), body `{"Messages": [...]}`, one entry per message:

| message               | Mailjet                                                     |
| --------------------- | ----------------------------------------------------------- |
| sender                | `From {Email, Name}`                                        |
| to                    | `To [{Email, Name}]`                                        |
| cc                    | `Cc [{Email, Name}]` (absent when empty)                    |
| subject / text / html | `Subject` / `TextPart` / `HTMLPart`                         |
| reply_to              | `ReplyTo {Email, Name}`                                     |
| headers               | `Headers` (extra headers only)                              |
| custom_id             | `CustomID` (echoed in Mailjet's event webhooks)             |
| template_ref          | `TemplateID` (a number) with `TemplateLanguage: true`       |
| variables             | `Variables`                                                 |
| attachments           | `Attachments [{ContentType, Filename, Base64Content}]`; an  |
|                       | inline one in `InlinedAttachments`, with its `ContentID`    |

The answer lists one `{Status: "success" | "error", Errors: [...]}` per message, in order, both
with HTTP 200 and 400. An error whose `ErrorRelatedTo` names a recipient field (`To[0].Email`,
`Cc[1].Email`…) cannot succeed on a retry: the message fails, not retryable, marked as a
refused recipient (the supporter email worker then drops it as done; a letter to a target is
failed and counted, even when only a Cc address was refused). Other errors fail their message.
A call refused as a whole (bad keys: 401 with `ErrorMessage`) fails the batch. Mailjet quotes a
refused address in its error message: errors are logged and reported with every recipient
address blanked out.

`list_templates` reads the account's templates for the template directory (email/directory.py)."""

from __future__ import annotations

import base64
import logging
import re
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
    retryable_status,
    scrub,
    template_number,
)
from proca_server.email.message import EmailMessage, loggable_custom_id, split_address

log = logging.getLogger("proca_server.email.mailjet")

BASE_URL = "https://api.mailjet.com"
RECIPIENT_FIELD = re.compile(r"(^|\.)(To|Cc|Bcc)(\[\d+\])?(\.|$)")


def _contact(value: str) -> dict[str, str]:
    name, address = split_address(value)
    return {"Email": address, "Name": name} if name else {"Email": address}


def mailjet_message(message: EmailMessage) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "From": _contact(message.sender),
        "To": [_contact(message.to)],
    }
    if message.cc:
        entry["Cc"] = [_contact(c) for c in message.cc]
    template = template_number(message)
    if message.template_ref is not None and template is None:
        raise ValueError("a Mailjet template id is a number")
    if template is not None:
        entry["TemplateID"] = template
        entry["TemplateLanguage"] = True
        entry["Variables"] = dict(message.variables)
        if message.subject:
            entry["Subject"] = message.subject
    else:
        entry["Subject"] = message.subject
        if message.text is not None:
            entry["TextPart"] = message.text
        if message.html is not None:
            entry["HTMLPart"] = message.html
    reply_to = reply_to_of(message)
    if reply_to:
        entry["ReplyTo"] = _contact(reply_to)
    headers = extra_headers(message)
    if headers:
        entry["Headers"] = headers
    if message.custom_id:
        entry["CustomID"] = message.custom_id
    for attachment in message.attachments:
        item = {
            "ContentType": attachment.content_type,
            "Filename": attachment.filename,
            "Base64Content": base64.b64encode(attachment.content).decode("ascii"),
        }
        if attachment.inline and attachment.content_id:
            item["ContentID"] = attachment.content_id
            entry.setdefault("InlinedAttachments", []).append(item)
        else:
            entry.setdefault("Attachments", []).append(item)
    return entry


def _error_text(error: dict[str, Any]) -> str:
    related = ", ".join(str(r) for r in error.get("ErrorRelatedTo") or [])
    text = f"{error.get('ErrorCode', '')} {error.get('ErrorMessage', '')}".strip()
    return f"{related}: {text}" if related else text


def _names_recipient(error: dict[str, Any]) -> bool:
    return any(RECIPIENT_FIELD.search(str(r)) for r in error.get("ErrorRelatedTo") or [])


class MailjetBackend:
    name = "mailjet"
    batch_size = 25

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        base_url: str = BASE_URL,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.api_key = api_key
        self._secret = secret_key
        self.base_url = base_url.rstrip("/")
        self._client = client

    def __repr__(self) -> str:
        return f"MailjetBackend({self.base_url}, api_key={self.api_key!r})"

    async def list_templates(self) -> list[RemoteTemplate]:
        """The account's templates (`GET /v3/REST/template`, 50 a page): ref = numeric ID."""
        async with http_client(self._client) as client:

            async def page(limit: int, offset: int) -> list[Any]:
                answer = await get_json(
                    client,
                    self.name,
                    f"{self.base_url}/v3/REST/template",
                    {"limit": limit, "offset": offset},
                    auth=httpx.BasicAuth(self.api_key, self._secret),
                    secrets=[self._secret],
                )
                data = answer.get("Data") if isinstance(answer, dict) else None
                if not isinstance(data, list):
                    raise TemplateListError("mailjet: unexpected template list")
                return data

            return await list_paged_templates(page, "Name", "ID")

    async def deliver(self, messages: Sequence[EmailMessage]) -> None:
        failures: list[DeliveryFailure] = []
        async with http_client(self._client) as client:
            for start in range(0, len(messages), self.batch_size):
                chunk = messages[start : start + self.batch_size]
                failures += await self._send(client, start, chunk)
        if failures:
            raise failed_messages(self.name, failures, len(messages))

    async def _send(
        self, client: httpx.AsyncClient, start: int, chunk: Sequence[EmailMessage]
    ) -> list[DeliveryFailure]:
        failures: list[DeliveryFailure] = []
        body: list[dict[str, Any]] = []
        sent: list[int] = []
        for offset, message in enumerate(chunk):
            try:
                body.append(mailjet_message(message))
                sent.append(start + offset)
            except ValueError as exc:
                failures.append(
                    DeliveryFailure(start + offset, message.custom_id, str(exc), retryable=False)
                )
        if not body:
            return failures
        secrets = [self._secret, *(a for m in chunk for a in envelope_recipients(m))]
        response = await post_json(
            client,
            self.name,
            f"{self.base_url}/v3.1/send",
            {"Messages": body},
            auth=httpx.BasicAuth(self.api_key, self._secret),
            secrets=secrets,
            accept=(400,),
        )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        results = answer.get("Messages") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(body):
            reason = f"HTTP {response.status_code}: unexpected answer {response.text[:300]!r}"
            raise EmailDeliveryError(
                self.name,
                scrub(reason, secrets),
                retryable=retryable_status(response.status_code),
            )
        for index, result in zip(sent, results, strict=True):
            custom_id = chunk[index - start].custom_id
            if not isinstance(result, dict) or result.get("Status") == "success":
                continue
            errors = [e for e in result.get("Errors") or [] if isinstance(e, dict)]
            text = scrub("; ".join(_error_text(e) for e in errors) or "error", secrets)
            if any(_names_recipient(e) for e in errors):
                log.warning(
                    "Mailjet refused a recipient of %s: %s", loggable_custom_id(custom_id), text
                )
                failures.append(
                    DeliveryFailure(index, custom_id, text, retryable=False, recipient=True)
                )
                continue
            retryable = any(retryable_status(int(e.get("StatusCode") or 400)) for e in errors)
            failures.append(DeliveryFailure(index, custom_id, text, retryable=retryable))
        return failures
