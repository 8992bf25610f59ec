"""Password hashing (bcrypt), policy, and generated strong passwords.

Users imported from the original server may still carry hashes of its former Pow library:
`$pbkdf2-<digest>$<iterations>$<salt>$<hash>`, PBKDF2-HMAC with a 64-byte derived key (Pow's
defaults: sha512, 100 000 iterations, 16-byte salt). Pow writes salt and hash in standard
base64 with padding; its early releases delegated to Comeonin, whose hashes have the same
layout in "adapted" base64 (`.` for `+`, no padding). The two alphabets cannot be confused,
so both are read. These hashes are verified, never produced, and replaced by bcrypt at the
next successful log-in.

bcrypt takes a quarter of a second on purpose: request handlers call the `*_in_thread`
variants, which run it in a worker thread (bcrypt releases the GIL) instead of stalling every
other request of the event loop."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import string
from functools import lru_cache

import bcrypt

MIN_LENGTH = 12
MAX_LENGTH = 80
SYMBOLS = "!?@#$%^&*_"
POW_KEY_LENGTH = 64
POW_DIGESTS = frozenset({"sha", "sha224", "sha256", "sha384", "sha512"})
# A stored hash decides the work done to check it; refuse absurd counts rather than stall.
POW_MAX_ITERATIONS = 10_000_000
# bcrypt's cost (log2 of its rounds) for new hashes; the test suite lowers it for speed
# (tests/conftest.py), nothing else changes it
WORK_FACTOR = 12


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(WORK_FACTOR)).decode()


def verify_password(password: str, hashed: str | None) -> bool:
    if not hashed:
        return False
    if hashed.startswith("$pbkdf2-"):
        return _verify_pow_pbkdf2(password, hashed)
    if not hashed.startswith("$2"):
        return False
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


async def hash_password_in_thread(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def check_password_in_thread(password: str, hashed: str | None) -> bool:
    """`verify_password` in a worker thread, as slow for a user without a usable hash (or
    with no user: pass None) as for a wrong password, so that the time taken does not tell
    which emails have an account."""
    if not _checkable(hashed):
        await asyncio.to_thread(verify_password, password, await _dummy_hash())
        return False
    return await asyncio.to_thread(verify_password, password, hashed)


def _checkable(hashed: str | None) -> bool:
    return hashed is not None and hashed.startswith(("$2", "$pbkdf2-"))


@lru_cache(maxsize=1)
def _dummy_hash_sync() -> str:
    # same cost as the hashes hash_password makes
    return hash_password(secrets.token_urlsafe(16))


async def _dummy_hash() -> str:
    return await asyncio.to_thread(_dummy_hash_sync)


def _verify_pow_pbkdf2(password: str, hashed: str) -> bool:
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] != "":
        return False
    _, scheme, iterations_text, salt_text, hash_text = parts
    digest = scheme.removeprefix("pbkdf2-")
    if digest not in POW_DIGESTS or not iterations_text.isdigit():
        return False
    iterations = int(iterations_text)
    if not 0 < iterations <= POW_MAX_ITERATIONS:
        return False
    try:
        salt = _pow_b64decode(salt_text)
        expected = _pow_b64decode(hash_text)
    except (binascii.Error, ValueError):
        return False
    if len(expected) != POW_KEY_LENGTH:
        return False
    # Erlang's :sha is SHA-1
    name = "sha1" if digest == "sha" else digest
    derived = hashlib.pbkdf2_hmac(name, password.encode(), salt, iterations, POW_KEY_LENGTH)
    return hmac.compare_digest(derived, expected)


def password_problems(password: str) -> list[str]:
    """What the password policy finds wrong (12 to 80 characters, a lower-case and an
    upper-case letter, a digit or a symbol); empty when the password is fine."""
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"should be {MIN_LENGTH} to {MAX_LENGTH} characters")
    if not any(c.islower() for c in password):
        problems.append("at least one lower case character")
    if not any(c.isupper() for c in password):
        problems.append("at least one upper case character")
    if not any(c.isdigit() or c in SYMBOLS for c in password):
        problems.append("at least one digit or punctuation character")
    return problems


def generate_password() -> str:
    """16 letters, 4 digits and 2 symbols, shuffled."""
    chars = (
        [secrets.choice(string.ascii_letters) for _ in range(14)]
        + [secrets.choice(string.ascii_lowercase), secrets.choice(string.ascii_uppercase)]
        + [secrets.choice(string.digits) for _ in range(4)]
        + [secrets.choice(SYMBOLS) for _ in range(2)]
    )
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def _pow_b64decode(text: str) -> bytes:
    if "." in text:  # Comeonin's adapted base64
        text = text.replace(".", "+")
        text += "=" * (-len(text) % 4)
    return base64.b64decode(text, validate=True)


def needs_rehash(hashed: str) -> bool:
    """A legacy hash that should be replaced by bcrypt once the password is known."""
    return not hashed.startswith("$2")
