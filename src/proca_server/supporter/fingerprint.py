"""Supporter fingerprints (contactRef): SHA-256 of the seed and an identity, raw 32 bytes
(base64url without padding in the API and messages)."""

from __future__ import annotations

import hashlib


def fingerprint(seed: str, identity: str) -> bytes:
    return hashlib.sha256(seed.encode() + identity.encode()).digest()


def email_fingerprint(seed: str, email: str) -> bytes:
    """The basic schema's fingerprint: the email, trimmed and lower-cased."""
    return fingerprint(seed, email.strip().lower())
