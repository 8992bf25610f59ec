"""Logging never carries a message body (supporters' personal data)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from proca_server.kit.logs import JsonFormatter, WithholdBodies


@dataclass
class _Returned:
    body: bytes


def test_a_message_logged_by_a_library_is_reduced_to_its_size() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(WithholdBodies())
    logger = logging.getLogger("aiormq.channel.test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        body = b'{"contact":{"email":"ann@example.org"}}'
        logger.error("Unhandled message %r returning", _Returned(body))
        logger.error("plain %s and %d", "text", 3)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "ann@example.org" not in out
    assert f"<message of {len(body)} bytes, withheld>" in out
    assert "plain text and 3" in out
