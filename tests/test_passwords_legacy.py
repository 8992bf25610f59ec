"""Hashes from the original's former Pow library still log users in."""

from __future__ import annotations

import base64
import hashlib
import os

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.passwords import needs_rehash, verify_password
from proca_server.models import User
from tests.account_helpers import log_in, see_committed
from tests.factories import PASSWORD, make_user

# Comeonin-era hash of "ma password" (adapted base64), as published in a third-party test
# suite: an external check of the derivation and of the decoding.
COMEONIN_HASH = (
    "$pbkdf2-sha512$100000$od8q.7wWyoUzThxnm7mnHQ$kW4PEzo9l/f.emd5khI3EhpjQaLMKecCTl3YrPNglhY"
    "NzCtyfmaggCtHWDpM7MS/Kv4eewwl12HbcHiMn3nnPg"
)


def pow_hash(
    password: str, *, digest: str = "sha512", iterations: int = 100_000, salt: bytes | None = None
) -> str:
    """A hash laid out as Pow.Ecto.Schema.Password.pbkdf2_hash writes it: PBKDF2-HMAC, 64-byte
    key, 16-byte salt, salt and key in standard base64 with padding."""
    salt = salt if salt is not None else os.urandom(16)
    name = "sha1" if digest == "sha" else digest
    key = hashlib.pbkdf2_hmac(name, password.encode(), salt, iterations, 64)
    salt_b64, key_b64 = base64.b64encode(salt).decode(), base64.b64encode(key).decode()
    return f"$pbkdf2-{digest}${iterations}${salt_b64}${key_b64}"


def test_pow_default_hash_verifies() -> None:
    hashed = pow_hash("Correct-Horse-9")
    assert hashed.startswith("$pbkdf2-sha512$100000$")
    assert hashed.endswith("==")  # 64 bytes in padded base64
    assert verify_password("Correct-Horse-9", hashed)
    assert not verify_password("Correct-Horse-8", hashed)
    assert not verify_password("", hashed)


@pytest.mark.parametrize("digest", ["sha", "sha256", "sha512"])
def test_other_digests_and_iteration_counts(digest: str) -> None:
    hashed = pow_hash("pässwörd ünïcode", digest=digest, iterations=1)
    assert verify_password("pässwörd ünïcode", hashed)
    assert not verify_password("passwörd ünïcode", hashed)


def test_comeonin_hash_verifies() -> None:
    assert verify_password("ma password", COMEONIN_HASH)
    assert not verify_password("ma passworD", COMEONIN_HASH)


@pytest.mark.parametrize(
    "hashed",
    [
        "$pbkdf2-sha512$100000$bm90IGJhc2U2NA$",
        "$pbkdf2-md5$1$c2FsdA==$aGFzaA==",
        "$pbkdf2-sha512$0$c2FsdA==$aGFzaA==",
        "$pbkdf2-sha512$-5$c2FsdA==$aGFzaA==",
        "$pbkdf2-sha512$99999999999$c2FsdA==$aGFzaA==",
        "$pbkdf2-sha512$1$c2FsdA==$aGFzaA==",  # a key shorter than 64 bytes
        "$pbkdf2-sha512$1$***$aGFzaA==",
        "$pbkdf2-sha512$1$c2FsdA==",
        "pbkdf2-sha512$1$c2FsdA==$aGFzaA==$",
    ],
)
def test_malformed_legacy_hashes_fail_closed(hashed: str) -> None:
    assert not verify_password("anything", hashed)


def test_only_legacy_hashes_need_rehash() -> None:
    assert needs_rehash(pow_hash("x", iterations=1))
    assert not needs_rehash("$2b$12$" + "a" * 53)


async def test_basic_auth_with_a_pow_hash_logs_in_and_upgrades_to_bcrypt(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    user.hashed_password = pow_hash(PASSWORD, iterations=1000)
    await session.commit()
    credentials = base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()

    response = await client.post(
        "/api",
        json={"query": "{ currentUser { email } }"},
        headers={"Authorization": f"Basic {credentials}"},
    )

    assert response.json() == {"data": {"currentUser": {"email": user.email}}}
    await see_committed(session)
    await session.refresh(user)
    assert user.hashed_password.startswith("$2")
    assert verify_password(PASSWORD, user.hashed_password)


async def test_web_log_in_with_a_pow_hash(client: httpx.AsyncClient, session: AsyncSession) -> None:
    user = await make_user(session)
    user.hashed_password = pow_hash(PASSWORD, iterations=1000)
    await session.commit()

    response = await log_in(client, user.email, PASSWORD)

    assert response.status_code == 303
    await see_committed(session)
    fresh = await session.get(User, user.id, populate_existing=True)
    assert fresh is not None and fresh.hashed_password.startswith("$2")
