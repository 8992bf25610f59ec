"""URL-safe base64 without padding, as the original encodes tokens, keys and refs."""

from __future__ import annotations

import base64
import binascii


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """Decode with or without padding; raise ValueError on anything else."""
    if not isinstance(text, str) or any(c in text for c in "+/ \n"):
        raise ValueError("not base64url")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not base64url") from exc
