"""JWT bearer tokens through the real /api endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.auth import jwt as proca_jwt
from proca_server.auth.passwords import verify_password
from proca_server.config import Settings
from proca_server.models import User
from tests.account_helpers import app_settings, see_committed
from tests.factories import PASSWORD, make_user

SECRET = "a-shared-secret-of-at-least-32-bytes!"
QUERY = {"query": "{ currentUser { email } }"}


@pytest.fixture(autouse=True)
def fresh_key_sets(app: FastAPI) -> Iterator[None]:
    key_sets = state_of(app).key_sets
    key_sets.clear()
    yield
    key_sets.clear()


@pytest.fixture
def jwt_app(app: FastAPI, tmp_path: Path) -> Iterator[Settings]:
    with app_settings(
        app, jwt_secret=SECRET, jwks_url=(tmp_path / "jwks.json").as_uri()
    ) as settings:
        yield settings


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "user-123",
        "email": "sso.user@example.org",
        "user_metadata": {"email_verified": True},
        "exp": int(time.time()) + 300,
        "aud": "authenticated",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


async def call(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api", json=QUERY, headers={"Authorization": f"Bearer {token}"})


def rejected(response: httpx.Response, message: str) -> bool:
    assert response.status_code == 401, response.text
    assert response.json() == {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": "unauthorized"}}],
    }
    return True


class Issuer:
    """An identity provider with rotating keys, publishing its key set in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: dict[str, Any] = {}

    def add_rsa(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def add_ec(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())

    def publish(self, *kids: str, alg: bool = True) -> None:
        entries = []
        for kid in kids:
            key = self.keys[kid]
            if isinstance(key, rsa.RSAPrivateKey):
                entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
                entry.update({"alg": "RS256"} if alg else {})
            else:
                entry = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
                entry.update({"alg": "ES256"} if alg else {})
            entry.update({"kid": kid, "use": "sig"})
            entries.append(entry)
        self.path.write_text(json.dumps({"keys": entries}))

    def token(self, kid: str, alg: str = "RS256", **overrides: Any) -> str:
        return jwt.encode(claims(**overrides), self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture
def issuer(jwt_app: Settings) -> Issuer:
    assert jwt_app.jwks_url
    return Issuer(Path(jwt_app.jwks_url.removeprefix("file://")))


# --- HS256 -------------------------------------------------------------------------------------


async def test_hs256_token_registers_the_user(
    client: httpx.AsyncClient, session: AsyncSession, jwt_app: Settings
) -> None:
    response = await call(client, hs256())

    assert response.status_code == 200
    assert response.json() == {"data": {"currentUser": {"email": "sso.user@example.org"}}}
    await see_committed(session)
    user = await session.scalar(select(User).where(User.external_id == "user-123"))
    assert user is not None and user.email == "sso.user@example.org"
    assert user.hashed_password.startswith("$2")  # a random strong password
    assert not verify_password(PASSWORD, user.hashed_password)

    # the same subject is the same user, whatever email the token now carries
    again = await call(client, hs256(email="renamed@example.org"))
    assert again.json()["data"]["currentUser"]["email"] == "sso.user@example.org"
    await see_committed(session)
    assert await session.scalar(select(func.count()).select_from(User)) == 1


async def test_an_existing_user_is_matched_by_email_and_linked(
    client: httpx.AsyncClient, session: AsyncSession, jwt_app: Settings
) -> None:
    user = await make_user(session, "Local.User@example.org")
    await session.commit()

    response = await call(client, hs256(email="local.user@example.org", sub="kratos|42"))

    assert response.json()["data"]["currentUser"]["email"] == "Local.User@example.org"
    await see_committed(session)
    await session.refresh(user)
    assert user.external_id == "kratos|42"
    await see_committed(session)
    assert await session.scalar(select(func.count()).select_from(User)) == 1


async def test_an_email_linked_to_another_identity_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, jwt_app: Settings
) -> None:
    user = await make_user(session)
    user.external_id = "first-identity"
    await session.commit()
    response = await call(client, hs256(email=user.email, sub="second-identity"))
    assert rejected(response, "User email is linked to another identity")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: hs256(exp=int(time.time()) - 1), "JWT has expired"),
        (lambda: hs256(exp=None), "JWT has no expiry"),
        (lambda: hs256(user_metadata={"email_verified": False}), "JWT email is not verified"),
        (lambda: hs256(user_metadata=None), "JWT email is not verified"),
        (lambda: hs256(email=None), "JWT has no email"),
        (lambda: hs256(sub=None), "JWT has no subject"),
        (lambda: hs256(email="not an email"), "JWT email is not valid"),
        (
            lambda: jwt.encode(claims(), "another-secret-of-at-least-32-bytes", algorithm="HS256"),
            "JWT signature is not valid",
        ),
        (lambda: jwt.encode(claims(), None, algorithm="none"), "JWT algorithm is not supported"),
        (lambda: "eyJhbGciOi.garbage", "Cannot decode JWT"),
    ],
)
async def test_bad_tokens_are_401_with_a_reason(
    client: httpx.AsyncClient, session: AsyncSession, jwt_app: Settings, token: Any, message: str
) -> None:
    assert rejected(await call(client, token()), message)
    await see_committed(session)
    assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_unverified_emails_pass_when_allowed(
    client: httpx.AsyncClient, app: FastAPI, jwt_app: Settings, session: AsyncSession
) -> None:
    with app_settings(app, allow_unverified_email=True):
        response = await call(client, hs256(user_metadata={"email_verified": False}))
    assert response.json()["data"]["currentUser"]["email"] == "sso.user@example.org"


async def test_claim_paths_are_configurable(
    client: httpx.AsyncClient, app: FastAPI, jwt_app: Settings, session: AsyncSession
) -> None:
    kratos = {
        "session": {
            "identity": {
                "traits": {"email": "kratos@example.org"},
                "verifiable_addresses": [
                    {"value": "other@example.org"},
                    {"value": "kratos@example.org", "verified": True},
                ],
            }
        }
    }
    with app_settings(
        app,
        jwt_email="email,session.identity.traits.email",
        jwt_email_verified="session.identity.verifiable_addresses[].verified",
    ):
        response = await call(client, hs256(email=None, user_metadata=None, **kratos))
    assert response.json()["data"]["currentUser"]["email"] == "kratos@example.org"


def test_claim_path_lookup() -> None:
    data = {"a": {"b": [{"c": None}, {"c": 0}, {"c": 1}]}, "l": [[1, 2], [3]], "s": "x"}
    assert proca_jwt.claim_at(data, ["a", "b", "[]", "c"]) == 0
    assert proca_jwt.claim_at(data, ["l", "[]", "[]"]) == 1
    assert proca_jwt.claim_at(data, ["s", "t"]) is None
    assert proca_jwt.claim_at(data, ["a", "[]"]) is None
    assert proca_jwt.parse_paths(" email , a.b[].c ,, l[].[]") == [
        ["email"],
        ["a", "b", "[]", "c"],
        ["l", "[]", "[]"],
    ]
    assert proca_jwt.first_claim(data, "missing, s") == "x"


async def test_jwt_without_configuration_is_refused(
    client: httpx.AsyncClient, app: FastAPI, session: AsyncSession
) -> None:
    assert rejected(await call(client, hs256()), "JWT with a shared secret is not configured")


# --- key sets ----------------------------------------------------------------------------------


async def test_rs256_token_verified_with_the_key_set(
    client: httpx.AsyncClient, session: AsyncSession, issuer: Issuer
) -> None:
    issuer.add_rsa("k1")
    issuer.publish("k1")

    response = await call(client, issuer.token("k1"))

    assert response.json() == {"data": {"currentUser": {"email": "sso.user@example.org"}}}


async def test_es256_token_and_keys_without_alg(
    client: httpx.AsyncClient, session: AsyncSession, issuer: Issuer
) -> None:
    issuer.add_ec("ec1")
    issuer.add_rsa("rsa1")
    issuer.publish("ec1", "rsa1", alg=False)

    assert (await call(client, issuer.token("ec1", "ES256"))).status_code == 200
    assert (await call(client, issuer.token("rsa1", "RS384"))).status_code == 200
    # a header may not pick a key made for another algorithm family
    forged = jwt.encode(claims(), issuer.keys["rsa1"], algorithm="PS256", headers={"kid": "ec1"})
    assert rejected(await call(client, forged), "JWT signing key does not fit its algorithm")


async def test_an_unknown_kid_refetches_the_key_set_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    issuer: Issuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetches = 0
    real_fetch = proca_jwt.fetch_key_set

    async def counting_fetch(url: str) -> list[proca_jwt.SigningKey]:
        nonlocal fetches
        fetches += 1
        return await real_fetch(url)

    monkeypatch.setattr(proca_jwt, "fetch_key_set", counting_fetch)
    issuer.add_rsa("old")
    issuer.add_rsa("new")
    issuer.add_rsa("newer")
    issuer.publish("old")
    assert (await call(client, issuer.token("old"))).status_code == 200
    assert (await call(client, issuer.token("old"))).status_code == 200
    assert fetches == 1  # cached

    # the provider rotates its keys: the unknown kid triggers one refetch
    issuer.publish("old", "new")
    assert (await call(client, issuer.token("new"))).status_code == 200
    assert fetches == 2

    # right after, another unknown kid does not refetch (made-up kids cannot hammer the IdP)
    issuer.publish("old", "new", "newer")
    assert rejected(await call(client, issuer.token("newer")), "JWT signing key is not known")
    assert fetches == 2
    monkeypatch.setattr(proca_jwt, "REFETCH_INTERVAL", 0.0)
    assert (await call(client, issuer.token("newer"))).status_code == 200
    assert fetches == 3

    # a kid the provider never had: refused after the refetch
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stray = jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "stray"})
    assert rejected(await call(client, stray), "JWT signing key is not known")


async def test_a_token_signed_by_another_key_with_a_known_kid_fails(
    client: httpx.AsyncClient, session: AsyncSession, issuer: Issuer
) -> None:
    issuer.add_rsa("k1")
    issuer.publish("k1")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "k1"})
    assert rejected(await call(client, forged), "JWT signature is not valid")


async def test_the_public_key_as_an_hmac_secret_is_refused(
    client: httpx.AsyncClient, app: FastAPI, session: AsyncSession, issuer: Issuer
) -> None:
    issuer.add_rsa("k1")
    issuer.publish("k1")
    pem = (
        issuer.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims()).encode())
    signature = hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()
    token = b".".join([header, payload, jwt.utils.base64url_encode(signature)]).decode()
    assert rejected(await call(client, token), "JWT signature is not valid")
    with app_settings(app, jwt_secret=None):
        assert rejected(await call(client, token), "JWT with a shared secret is not configured")


async def test_a_missing_key_set_is_a_401(
    client: httpx.AsyncClient, session: AsyncSession, issuer: Issuer, app: FastAPI
) -> None:
    issuer.add_rsa("k1")
    token = issuer.token("k1")
    assert rejected(await call(client, token), "Cannot load the JWT key set")
    with app_settings(app, jwks_url="http://idp.example/jwks.json"):
        assert rejected(await call(client, token), "JWKS_URL must be an https:// or file:// URL")
