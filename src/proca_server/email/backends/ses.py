"""Amazon SES delivery (service `ses`): one API call per email, batches of 50 sent a few at a
time.

Service fields: `host` is the AWS region, `user` the access key id, `password` the secret key.

A message is sent as raw MIME (`SendRawEmail`, Source = its From, Destinations = its To and Cc
addresses): the text and HTML alternatives, the Cc header, Reply-To, extra headers, and the
custom id in the `X-Proca-Custom-Id` header (SES replaces the Message-Id with its own;
notifications configured to include the original headers carry it back). A message with a
`template_ref` is sent with `SendTemplatedEmail` (Destination = ToAddresses and, when there are
any, CcAddresses; Template = the SES template name, TemplateData = its variables as JSON,
ReplyToAddresses); SES gives such a call no place for the custom id, nor for attachments: a
templated message with attachments fails, for good. Errors are reported without the
recipients' addresses.

`MessageRejected`, an unverified sender and invalid parameters fail their message for good;
throttling, SES-side faults and refused credentials may pass on a retry.

`list_templates` reads the account's templates with `ListTemplates`, page by page (ref = the
template name), for the template directory (email/directory.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from proca_server.email.backends.base import (
    DeliveryFailure,
    EmailDeliveryError,
    RemoteTemplate,
    TemplateListError,
    build_mime,
    envelope_recipients,
    failed_messages,
    mime_bytes,
    reply_to_of,
    scrub,
)
from proca_server.email.message import EmailMessage, loggable_custom_id

log = logging.getLogger("proca_server.email.ses")

CONCURRENCY = 8
LIST_PAGE_SIZE = 100
MAX_PAGES = 200
PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerified",
        "MailFromDomainNotVerifiedException",
        "InvalidParameterValue",
        "TemplateDoesNotExist",
        "ConfigurationSetDoesNotExist",
    }
)


class SesBackend:
    name = "ses"
    batch_size = 50

    def __init__(
        self,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        *,
        endpoint_url: str | None = None,
    ) -> None:
        self.region = region
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self.endpoint_url = endpoint_url

    def __repr__(self) -> str:
        return f"SesBackend({self.region}, access_key_id={self.access_key_id!r})"

    def _reason(self, exc: Exception) -> tuple[str, bool]:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Error"))
            text = f"{code}: {error.get('Message', '')}".rstrip(": ")
            return scrub(text, [self._secret]), code not in PERMANENT_CODES
        return scrub(f"{type(exc).__name__}: {exc}", [self._secret]), True

    def _client(self) -> Any:
        config = AioConfig(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2})
        return get_session().create_client(
            "ses",
            region_name=self.region or None,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self._secret,
            config=config,
        )

    async def list_templates(self) -> list[RemoteTemplate]:
        found: list[RemoteTemplate] = []
        try:
            async with self._client() as client:
                token: str | None = None
                for _ in range(MAX_PAGES):
                    params: dict[str, Any] = {"MaxItems": LIST_PAGE_SIZE}
                    if token:
                        params["NextToken"] = token
                    answer = await client.list_templates(**params)
                    for entry in answer.get("TemplatesMetadata") or []:
                        if entry.get("Name"):
                            found.append(RemoteTemplate(entry["Name"], entry["Name"]))
                    token = answer.get("NextToken")
                    if not token:
                        break
        except (ClientError, BotoCoreError) as exc:
            raise TemplateListError(f"{self.name}: {self._reason(exc)[0]}") from None
        return found

    async def deliver(self, messages: Sequence[EmailMessage]) -> None:
        if not messages:
            return
        limit = asyncio.Semaphore(CONCURRENCY)
        try:
            async with self._client() as client:

                async def send(index: int, message: EmailMessage) -> DeliveryFailure | None:
                    async with limit:
                        return await self._send(client, index, message)

                results = await asyncio.gather(*(send(i, m) for i, m in enumerate(messages)))
        except BotoCoreError as exc:  # no region, a malformed endpoint…
            raise EmailDeliveryError(self.name, self._reason(exc)[0]) from None
        failures = [f for f in results if f is not None]
        if failures:
            raise failed_messages(self.name, failures, len(messages))

    async def _send(self, client: Any, index: int, message: EmailMessage) -> DeliveryFailure | None:
        recipients = envelope_recipients(message)
        destination: dict[str, list[str]] = {"ToAddresses": [message.to]}
        if message.cc:
            destination["CcAddresses"] = list(message.cc)
        if message.template_ref and message.attachments:
            reason = "an SES template cannot carry attachments"
            return DeliveryFailure(index, message.custom_id, reason, retryable=False)
        try:
            if message.template_ref:
                answer = await client.send_templated_email(
                    Source=message.sender,
                    Destination=destination,
                    ReplyToAddresses=[reply_to] if (reply_to := reply_to_of(message)) else [],
                    Template=message.template_ref,
                    TemplateData=json.dumps(dict(message.variables), default=str),
                )
            else:
                mime = build_mime(message)
                answer = await client.send_raw_email(
                    Source=message.sender,
                    Destinations=recipients,
                    RawMessage={"Data": mime_bytes(mime)},
                )
        except (ClientError, BotoCoreError) as exc:
            reason, retryable = self._reason(exc)
            return DeliveryFailure(index, message.custom_id, scrub(reason, recipients), retryable)
        log.info(
            "sent %s through SES as %s",
            loggable_custom_id(message.custom_id),
            answer.get("MessageId"),
        )
        return None
