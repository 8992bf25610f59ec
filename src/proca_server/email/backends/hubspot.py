"""HubSpot delivery (service `hubspot`): the transactional single-send API, one email a call.

`POST {base}/marketing/transactional/2026-03/single-email/send`, with the service's `password`
as the whole `Authorization` header (e.g. `Bearer <token>`). HubSpot only sends its own
templates, so a message without a numeric `template_ref` is refused here, as is one with
attachments (the single-send API takes none).

| message      | HubSpot                                              |
| ------------ | ---------------------------------------------------- |
| template_ref | `emailId` (a number)                                 |
| to           | `message.to` (the address)                           |
| cc           | `message.cc [address…]` (`[]` without Cc)            |
| sender       | `message.from` (`Name <address>`)                    |
| custom_id    | `message.sendId`                                     |
| reply_to     | `message.replyTo [address]`                          |
| —            | `message.bcc []`, `contactProperties {}`             |
| variables    | `customProperties`                                   |

HubSpot answers with the send's `status` (and, once known, a `sendResult` such as `SENT`,
`QUEUED` or a refusal like `INVALID_TO_ADDRESS`); an error is 4xx/5xx `{"status": "error",
"message", "category"}`, quoted without the recipients' addresses. Subject, bodies and extra
headers come from the HubSpot template."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from proca_server.email.backends.base import (
    DeliveryFailure,
    EmailDeliveryError,
    envelope_recipients,
    failed_messages,
    http_client,
    post_json,
    reply_to_of,
    template_number,
)
from proca_server.email.message import EmailMessage, loggable_custom_id, split_address

log = logging.getLogger("proca_server.email.hubspot")

BASE_URL = "https://api.hubapi.com"
SEND_PATH = "/marketing/transactional/2026-03/single-email/send"
ACCEPTED_RESULTS = frozenset({"SENT", "QUEUED"})


def hubspot_email(message: EmailMessage) -> dict[str, Any]:
    if message.attachments:
        raise ValueError("HubSpot's single-send API cannot carry attachments")
    email_id = template_number(message)
    if email_id is None:
        raise ValueError("HubSpot sends its own templates only: a numeric email id is required")
    reply_to = reply_to_of(message)
    envelope: dict[str, Any] = {
        "to": split_address(message.to)[1],
        "from": message.sender,
        "cc": [split_address(c)[1] for c in message.cc],
        "bcc": [],
        "replyTo": [split_address(reply_to)[1]] if reply_to else [],
    }
    if message.custom_id:
        envelope["sendId"] = message.custom_id
    return {
        "emailId": email_id,
        "message": envelope,
        "contactProperties": {},
        "customProperties": dict(message.variables),
    }


class HubspotBackend:
    name = "hubspot"
    batch_size = 1

    def __init__(
        self,
        authorization: str,
        *,
        base_url: str = BASE_URL,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._authorization = authorization
        self.base_url = base_url.rstrip("/")
        self._client = client

    def __repr__(self) -> str:
        return f"HubspotBackend({self.base_url})"

    async def deliver(self, messages: Sequence[EmailMessage]) -> None:
        failures: list[DeliveryFailure] = []
        async with http_client(self._client) as client:
            for index, message in enumerate(messages):
                failure = await self._send(client, index, message)
                if failure is not None:
                    failures.append(failure)
        if failures:
            raise failed_messages(self.name, failures, len(messages))

    async def _send(
        self, client: httpx.AsyncClient, index: int, message: EmailMessage
    ) -> DeliveryFailure | None:
        try:
            body = hubspot_email(message)
        except ValueError as exc:
            return DeliveryFailure(index, message.custom_id, str(exc), retryable=False)
        # the token may be given with or without its scheme: hide both spellings
        secrets = [
            self._authorization,
            self._authorization.partition(" ")[2],
            *envelope_recipients(message),
        ]
        try:
            response = await post_json(
                client,
                self.name,
                f"{self.base_url}{SEND_PATH}",
                body,
                headers={"Authorization": self._authorization},
                secrets=secrets,
            )
        except EmailDeliveryError as exc:
            return DeliveryFailure(index, message.custom_id, exc.reason, exc.retryable)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        result = answer.get("sendResult") if isinstance(answer, dict) else None
        if isinstance(result, str) and result not in ACCEPTED_RESULTS:
            return DeliveryFailure(index, message.custom_id, result, retryable=False)
        log.info("sent %s through HubSpot", loggable_custom_id(message.custom_id))
        return None
