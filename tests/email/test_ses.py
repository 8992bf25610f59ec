"""The SES backend against a local moto server; what SES accepted is read back from moto's own
introspection endpoint (/moto-api/data.json)."""

from __future__ import annotations

import json
from email import message_from_string, policy
from email.message import EmailMessage as MimeMessage

import pytest

from proca_server.email.backends import EmailDeliveryError
from proca_server.email.backends.ses import SesBackend
from proca_server.email.message import Attachment, EmailMessage, format_address
from tests.email.ses_world import ACCESS_KEY, REGION, SECRET_KEY, SENDER, moto_url, sent, ses

__all__ = ["moto_url", "ses"]  # the fixtures, from tests/email/ses_world.py


def email(n: int = 1, **fields: object) -> EmailMessage:
    values: dict[str, object] = {
        "to": format_address("Ann Signer", f"ann{n}@example.com"),
        "sender": format_address("Save Trees", SENDER),
        "subject": "Thank you",
        "html": "<p>Thanks</p>",
        "text": "Thanks",
        "reply_to": "campaigner@trees.example",
        "custom_id": f"action:{n}",
        "headers": {"X-Campaign": "trees"},
    }
    values.update(fields)
    return EmailMessage(**values)  # type: ignore[arg-type]


def backend(moto_url: str, secret: str = SECRET_KEY) -> SesBackend:
    return SesBackend(REGION, ACCESS_KEY, secret, endpoint_url=moto_url)


async def test_ses_sends_raw_mime_with_the_custom_id_header(ses: str) -> None:
    await backend(ses).deliver([email(5)])

    [raw] = await sent(ses)
    assert raw["source"] == "Save Trees <hello@trees.example>"
    assert "ann5@example.com" in raw["destinations"]
    mime = message_from_string(raw["raw_data"], policy=policy.default)
    assert isinstance(mime, MimeMessage)
    assert mime["X-Proca-Custom-Id"] == "action:5"
    assert mime["Reply-To"] == "campaigner@trees.example"
    assert mime["X-Campaign"] == "trees"
    assert mime["Subject"] == "Thank you"
    html = mime.get_body(("html",))
    assert html is not None and html.get_content().strip() == "<p>Thanks</p>"


async def test_ses_sends_a_whole_batch(ses: str) -> None:
    await backend(ses).deliver([email(n) for n in range(SesBackend.batch_size)])

    raws = await sent(ses)
    ids = {message_from_string(r["raw_data"])["X-Proca-Custom-Id"] for r in raws}
    assert ids == {f"action:{n}" for n in range(50)}


async def test_ses_template_gets_the_variables(ses: str) -> None:
    message = email(template_ref="thank-you", variables={"firstName": "Ann"})
    await backend(ses).deliver([message])

    [templated] = await sent(ses, "TemplateMessage")
    assert templated["template"] == "thank-you"
    assert json.loads(templated["template_data"]) == {"firstName": "Ann"}
    assert templated["destinations"]["ToAddresses"] == ["Ann Signer <ann1@example.com>"]


async def test_ses_rejection_fails_only_that_message(ses: str) -> None:
    stranger = email(2, sender="Other <someone@unverified.example>")
    with pytest.raises(EmailDeliveryError) as caught:
        await backend(ses, secret="ses-Other-secret-999").deliver([email(1), stranger])

    [failure] = caught.value.failures
    assert (failure.index, failure.custom_id, failure.retryable) == (1, "action:2", False)
    assert failure.reason.startswith("MessageRejected: Did not have authority")
    assert "ses-Other-secret-999" not in str(caught.value)
    assert len(await sent(ses)) == 1


async def test_ses_sends_attachments_in_the_raw_message_but_refuses_them_with_a_template(
    ses: str,
) -> None:
    photo = Attachment(
        "photo.png", b"\x89PNG\r\n\x00", "image/png", content_id="file1", inline=True
    )
    await backend(ses).deliver([email(3, attachments=(photo,))])
    [raw] = await sent(ses)
    mime = message_from_string(raw["raw_data"], policy=policy.default)
    assert isinstance(mime, MimeMessage)
    (part,) = mime.iter_attachments()
    assert (part.get_filename(), part["Content-ID"]) == ("photo.png", "<file1>")
    assert part.get_payload(decode=True) == photo.content

    templated = email(4, template_ref="thank-you", attachments=(photo,))
    with pytest.raises(EmailDeliveryError) as caught:
        await backend(ses).deliver([templated])
    (failure,) = caught.value.failures
    assert "cannot carry attachments" in failure.reason and not failure.retryable
    assert await sent(ses, "TemplateMessage") == []
