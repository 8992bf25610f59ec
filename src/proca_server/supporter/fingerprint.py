"""Supporter fingerprints (contactRef, spec §4.1): SHA-256 of the seed and an identity."""

from __future__ import annotations

import hashlib


def fingerprint(seed: str, identity: str) -> bytes:
    return hashlib.sha256(seed.encode() + identity.encode()).digest()


def email_fingerprint(seed: str, email: str) -> bytes:
    """The basic schema's fingerprint: the email, trimmed and lower-cased."""
    return fingerprint(seed, email.strip().lower())
