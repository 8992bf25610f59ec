from __future__ import annotations

import hashlib
import importlib.util
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth import passwords, tokens
from proca_server.kit import base64url
from proca_server.kit.time import utcnow
from proca_server.models import UserToken
from proca_server.user.service import get_user_by_api_token, reset_api_token
from tests.factories import make_user


def test_api_token_format() -> None:
    token, stored = tokens.generate_api_token()
    assert token.startswith("API-")
    raw = base64url.decode(token)
    assert raw[:3] == b"\x00\xf2\x3e" and len(raw) == 35
    assert "=" not in token
    assert stored == hashlib.sha256(raw).digest()
    assert tokens.decode_api_token(token) == stored
    assert tokens.decode_api_token("API-short") is None
    assert tokens.decode_api_token("eyJhbGciOi") is None


async def test_tokens_are_stored_hashed_and_expire_after_30_days(session: AsyncSession) -> None:
    user = await make_user(session)
    token = await reset_api_token(session, user)
    await session.commit()
    row = (
        await session.execute(select(UserToken).where(UserToken.user_id == user.id))
    ).scalar_one()
    assert row.context == "api"
    assert token.encode() not in row.token and len(row.token) == 32

    found = await get_user_by_api_token(session, token)
    assert found is not None and found.id == user.id

    await session.execute(
        update(UserToken)
        .where(UserToken.id == row.id)
        .values(inserted_at=utcnow() - timedelta(days=30, seconds=1))
    )
    assert await get_user_by_api_token(session, token) is None


async def test_use_slides_the_expiry(session: AsyncSession) -> None:
    user = await make_user(session)
    user_id = user.id
    token = await reset_api_token(session, user)
    old = utcnow() - timedelta(days=29)
    await session.execute(
        update(UserToken).where(UserToken.user_id == user_id).values(inserted_at=old)
    )
    assert await get_user_by_api_token(session, token) is not None
    await session.commit()
    session.expire_all()
    row = (
        await session.execute(select(UserToken).where(UserToken.user_id == user_id))
    ).scalar_one()
    assert row.inserted_at > utcnow() - timedelta(minutes=1)


def test_password_policy() -> None:
    assert passwords.password_problems("Abcdefghijk1") == []
    assert passwords.password_problems("Abcdefghijk!") == []
    assert passwords.password_problems("abcdefghijk1")  # no upper case
    assert passwords.password_problems("Abc1")  # too short
    assert passwords.password_problems("A" * 81 + "a1")  # too long
    assert passwords.password_problems("Abcdefghijkl")  # no digit or symbol


def test_generated_passwords_pass_the_policy_and_differ() -> None:
    generated = {passwords.generate_password() for _ in range(20)}
    assert len(generated) == 20
    for pw in generated:
        assert len(pw) == 22
        assert passwords.password_problems(pw) == []
        assert sum(c.isdigit() for c in pw) >= 4


def test_bcrypt_round_trip() -> None:
    hashed = passwords.hash_password("Correct-horse-1")
    assert hashed.startswith("$2")
    assert passwords.verify_password("Correct-horse-1", hashed)
    assert not passwords.verify_password("wrong", hashed)
    assert not passwords.verify_password("x", None)


def test_new_hashes_cost_the_work_factor_which_is_12_outside_the_tests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passwords, "WORK_FACTOR", 5)
    assert passwords.hash_password("Correct-horse-1").startswith("$2b$05$")
    # tests/conftest.py lowers it for the suite; the module as the server loads it
    spec = importlib.util.spec_from_file_location("server_passwords", passwords.__file__)
    assert spec is not None and spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    assert server.WORK_FACTOR == 12
