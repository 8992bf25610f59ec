"""Mailjet, Brevo and HubSpot backends against local servers speaking their APIs."""

from __future__ import annotations

import base64

import pytest

from proca_server.email.backends import (
    BrevoBackend,
    EmailDeliveryError,
    HubspotBackend,
    MailjetBackend,
)
from proca_server.email.message import Attachment, EmailMessage, format_address
from tests.email.providers import (
    BREVO_KEY,
    HUBSPOT_AUTH,
    MAILJET_KEY,
    MAILJET_SECRET,
    brevo_app,
    hubspot_app,
    mailjet_app,
)
from tests.local_http import serve


def email(n: int = 1, **fields: object) -> EmailMessage:
    values: dict[str, object] = {
        "to": format_address("Ann Signer", f"ann{n}@example.com"),
        "sender": format_address("Save Trees", "hello@trees.example"),
        "subject": "Thank you",
        "html": "<p>Thanks</p>",
        "text": "Thanks",
        "reply_to": "campaigner@trees.example",
        "custom_id": f"action:{n}",
        "headers": {"X-Campaign": "trees"},
    }
    values.update(fields)
    return EmailMessage(**values)  # type: ignore[arg-type]


# --- Mailjet --------------------------------------------------------------------------------------


async def test_mailjet_sends_batches_of_25_with_custom_ids() -> None:
    app, seen = mailjet_app()
    async with serve(app) as base:
        backend = MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base)
        await backend.deliver([email(n) for n in range(30)])

    assert [len(b["Messages"]) for b in seen.bodies] == [25, 5]
    first = seen.bodies[0]["Messages"][0]
    assert first == {
        "From": {"Email": "hello@trees.example", "Name": "Save Trees"},
        "To": [{"Email": "ann0@example.com", "Name": "Ann Signer"}],
        "Subject": "Thank you",
        "TextPart": "Thanks",
        "HTMLPart": "<p>Thanks</p>",
        "ReplyTo": {"Email": "campaigner@trees.example"},
        "Headers": {"X-Campaign": "trees"},
        "CustomID": "action:0",
    }
    assert seen.bodies[1]["Messages"][4]["CustomID"] == "action:29"


async def test_mailjet_template_carries_variables() -> None:
    app, seen = mailjet_app()
    message = email(template_ref="4711", variables={"firstName": "Ann", "campaignTitle": "Trees"})
    async with serve(app) as base:
        await MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base).deliver([message])

    [sent] = seen.bodies[0]["Messages"]
    assert sent["TemplateID"] == 4711 and sent["TemplateLanguage"] is True
    assert sent["Variables"] == {"firstName": "Ann", "campaignTitle": "Trees"}
    assert "HTMLPart" not in sent and "TextPart" not in sent


async def test_a_reply_to_header_becomes_the_provider_field() -> None:
    app, seen = mailjet_app()
    message = email(reply_to=None, headers={"Reply-To": "Team <team@trees.example>"})
    async with serve(app) as base:
        await MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base).deliver([message])

    [sent] = seen.bodies[0]["Messages"]
    assert sent["ReplyTo"] == {"Email": "team@trees.example", "Name": "Team"}
    assert "Headers" not in sent


async def test_mailjet_drops_bad_recipients_and_fails_other_errors_per_message() -> None:
    app, seen = mailjet_app()
    messages = [
        email(1),
        email(2, to="bad@invalid.example"),
        email(3, sender="Trees <hello@unverified.example>"),
        email(4),
    ]
    async with serve(app) as base:
        with pytest.raises(EmailDeliveryError) as caught:
            await MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base).deliver(messages)

    assert len(seen.requests) == 1
    refused, failure = caught.value.failures  # neither is retried
    assert (refused.index, refused.custom_id, refused.retryable) == (1, "action:2", False)
    assert refused.recipient and not failure.recipient
    assert (failure.index, failure.custom_id, failure.retryable) == (2, "action:3", False)
    assert "From: send-0008 From is not an authorized sender" in failure.reason
    assert not caught.value.retryable


async def test_mailjet_refused_keys_fail_the_batch_without_the_secret() -> None:
    app, seen = mailjet_app()
    async with serve(app) as base:
        backend = MailjetBackend(MAILJET_KEY, "Wrong-secret-456", base_url=base)
        with pytest.raises(EmailDeliveryError) as caught:
            await backend.deliver([email(1), email(2)])

    error = caught.value
    assert "HTTP 401" in str(error) and "authentication/authorization failure" in str(error)
    assert "Wrong-secret-456" not in str(error)
    assert error.retryable and error.failures == ()
    assert seen.requests[0][0]["authorization"].startswith("Basic ")


async def test_unreachable_provider_is_a_retryable_error() -> None:
    app, _ = mailjet_app()
    async with serve(app) as base:
        pass  # the server is gone: nothing listens on its port any more
    with pytest.raises(EmailDeliveryError) as caught:
        await MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base).deliver([email()])
    assert caught.value.retryable and "ConnectError" in str(caught.value)


# --- Brevo ----------------------------------------------------------------------------------------


async def test_brevo_sends_one_email_a_call_with_tag_and_header() -> None:
    app, seen = brevo_app()
    async with serve(app) as base:
        await BrevoBackend(BREVO_KEY, base_url=base).deliver([email(1), email(2)])

    assert len(seen.requests) == 2
    headers, body = seen.requests[0]
    assert headers["api-key"] == BREVO_KEY
    assert body == {
        "sender": {"email": "hello@trees.example", "name": "Save Trees"},
        "to": [{"email": "ann1@example.com", "name": "Ann Signer"}],
        "subject": "Thank you",
        "htmlContent": "<p>Thanks</p>",
        "textContent": "Thanks",
        "replyTo": {"email": "campaigner@trees.example"},
        "tags": ["action:1"],
        "headers": {"X-Campaign": "trees", "X-Mailin-custom": "action:1"},
    }


async def test_brevo_template_and_per_message_errors() -> None:
    app, seen = brevo_app()
    messages = [
        email(1, template_ref="12", variables={"firstName": "Ann"}),
        email(2, template_ref="welcome"),
        email(3, to="bad@invalid.example"),
    ]
    async with serve(app) as base:
        with pytest.raises(EmailDeliveryError) as caught:
            await BrevoBackend(BREVO_KEY, base_url=base).deliver(messages)

    first = seen.bodies[0]
    assert first["templateId"] == 12 and first["params"] == {"firstName": "Ann"}
    assert "htmlContent" not in first
    assert len(seen.requests) == 2  # the non-numeric template is not sent
    template, recipient = caught.value.failures
    assert (template.index, template.retryable) == (1, False)
    assert "template id is a number" in template.reason
    assert (recipient.index, recipient.custom_id, recipient.retryable) == (2, "action:3", False)
    assert "HTTP 400: email is not valid" in recipient.reason


async def test_brevo_wrong_key_is_retryable_and_hidden() -> None:
    app, _ = brevo_app()
    async with serve(app) as base:
        with pytest.raises(EmailDeliveryError) as caught:
            await BrevoBackend("xkeysib-Wrong-789", base_url=base).deliver([email()])
    assert "HTTP 401: Key not found" in str(caught.value)
    assert "xkeysib-Wrong-789" not in str(caught.value)
    assert caught.value.retryable


# --- HubSpot --------------------------------------------------------------------------------------


async def test_hubspot_single_send_maps_fields() -> None:
    app, seen = hubspot_app()
    message = email(7, template_ref="555", variables={"firstName": "Ann"})
    async with serve(app) as base:
        await HubspotBackend(HUBSPOT_AUTH, base_url=base).deliver([message])

    [(headers, body)] = seen.requests
    assert headers["authorization"] == HUBSPOT_AUTH
    assert body == {
        "emailId": 555,
        "message": {
            "to": "ann7@example.com",
            "from": "Save Trees <hello@trees.example>",
            "sendId": "action:7",
            "replyTo": ["campaigner@trees.example"],
            "cc": [],
            "bcc": [],
        },
        "contactProperties": {},
        "customProperties": {"firstName": "Ann"},
    }


async def test_hubspot_refuses_missing_template_and_reports_send_results() -> None:
    app, seen = hubspot_app()
    messages = [email(1), email(2, template_ref="555", to="x@invalid.example")]
    async with serve(app) as base:
        with pytest.raises(EmailDeliveryError) as caught:
            await HubspotBackend(HUBSPOT_AUTH, base_url=base).deliver(messages)

    assert len(seen.requests) == 1
    missing, invalid = caught.value.failures
    assert missing.index == 0 and "numeric email id is required" in missing.reason
    assert (invalid.index, invalid.reason, invalid.retryable) == (1, "INVALID_TO_ADDRESS", False)


async def test_hubspot_wrong_token_is_hidden() -> None:
    app, _ = hubspot_app()
    async with serve(app) as base:
        backend = HubspotBackend("Bearer pat-Wrong-000", base_url=base)
        with pytest.raises(EmailDeliveryError) as caught:
            await backend.deliver([email(template_ref="1")])
    assert "Authentication credentials not found" in str(caught.value)
    assert "pat-Wrong-000" not in str(caught.value)
    assert caught.value.retryable


# --- attachments ----------------------------------------------------------------------------------

PHOTO = Attachment("photo.png", b"\x89PNG\r\n", "image/png", content_id="file1", inline=True)
REPORT = Attachment("report.pdf", b"%PDF-1.4 \x00\xff", "application/pdf", content_id="file2")


async def test_mailjet_and_brevo_carry_attachments_and_hubspot_refuses_them() -> None:
    message = email(attachments=(PHOTO, REPORT))
    app, seen = mailjet_app()
    async with serve(app) as base:
        await MailjetBackend(MAILJET_KEY, MAILJET_SECRET, base_url=base).deliver([message])
    [sent] = seen.bodies[0]["Messages"]
    assert sent["InlinedAttachments"] == [
        {"ContentType": "image/png", "Filename": "photo.png", "ContentID": "file1",
         "Base64Content": base64.b64encode(PHOTO.content).decode()},
    ]  # fmt: skip
    assert sent["Attachments"] == [
        {"ContentType": "application/pdf", "Filename": "report.pdf",
         "Base64Content": base64.b64encode(REPORT.content).decode()},
    ]  # fmt: skip

    app, brevo_seen = brevo_app()
    async with serve(app) as base:
        await BrevoBackend(BREVO_KEY, base_url=base).deliver([message])
    assert brevo_seen.bodies[0]["attachment"] == [
        {"name": a.filename, "content": base64.b64encode(a.content).decode()}
        for a in (PHOTO, REPORT)
    ]

    app, hubspot_seen = hubspot_app()
    async with serve(app) as base:
        with pytest.raises(EmailDeliveryError) as caught:
            await HubspotBackend(HUBSPOT_AUTH, base_url=base).deliver(
                [email(template_ref="555", attachments=(REPORT,))]
            )
    assert hubspot_seen.requests == []
    (failure,) = caught.value.failures
    assert "cannot carry attachments" in failure.reason and not failure.retryable
