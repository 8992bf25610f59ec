"""A local moto server standing in for SES, with a fresh account whose sender is verified; what SES
accepted is read back from moto's introspection endpoint (/moto-api/data.json)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from tests.local_http import free_port

REGION = "eu-west-1"


ACCESS_KEY = "AKIAPROCATEST"


SECRET_KEY = "ses-Secret-key-0123456789"


SENDER = "hello@trees.example"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
async def ses(moto_url: str) -> AsyncIterator[str]:
    """A fresh moto with the sender verified."""
    async with httpx.AsyncClient() as client:
        (await client.post(f"{moto_url}/moto-api/reset")).raise_for_status()
    async with get_session().create_client(
        "ses",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        await client.verify_email_identity(EmailAddress=SENDER)
        await client.create_template(
            Template={
                "TemplateName": "thank-you",
                "SubjectPart": "Thanks {{firstName}}",
                "HtmlPart": "<p>Thanks {{firstName}}</p>",
                "TextPart": "Thanks {{firstName}}",
            }
        )
    yield moto_url


async def sent(moto_url: str, kind: str = "RawMessage") -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        data = (await client.get(f"{moto_url}/moto-api/data.json")).json()
    return list(data["ses"][kind])
