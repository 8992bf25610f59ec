"""URL-safe base64 without padding, as the original encodes tokens, keys and refs."""

from __future__ import annotations

import base64
import binascii
import re


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_ALPHABET = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


def decode(text: str) -> bytes:
    """Decode with or without padding; raise ValueError on anything else."""
    if not isinstance(text, str) or not _ALPHABET.match(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
