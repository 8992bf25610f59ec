"""Contact encryption: NaCl box as `@proca/crypto` opens it, random nonces, the plaintext
fallback and the key cache. The cross-implementation test installs npm `@proca/crypto` once
into PROCA_CLIENTS_CACHE; without npm or the registry it is skipped, except under CI=true."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.exceptions
import pytest
from nacl.public import Box, PrivateKey
from nacl.public import PublicKey as NaclPublicKey
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from proca_server.contact.crypto import (
    KeyRing,
    SealedContact,
    encode_payload,
    encrypt,
    seal_for_org,
)
from proca_server.key.service import activate_key, deactivate_all_keys
from proca_server.kit import base64url
from proca_server.models import Org, PublicKey
from tests.clients.harness import (
    IN_CI,
    ClientUnavailable,
    _first_error_line,
    _locked,
    cache_dir,
)
from tests.factories import make_key, make_org, unique

PROCA_CRYPTO_VERSION = "3.4.0"
DECRYPT_SCRIPT = Path(__file__).with_name("proca_crypto_decrypt.js")

CONTACT = {
    "firstName": "Zoë",
    "lastName": "Ñandú 🐦",
    "email": "zoe@example.org",
    "address": {"country": "PL", "postcode": "00-001"},
    "phone": None,
    "nationality": {"country": "de", "documentType": "passport"},
    "dupeRank": 0,
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """SQL statements sent to the database during the test."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def make_instance(session: AsyncSession) -> tuple[Org, PublicKey, PrivateKey]:
    org = await make_org(session, unique("instance"))
    key, private = await make_key(session, org, keep_private=True)
    return org, key, private


def open_sealed(sealed: SealedContact, org_private: PrivateKey, sign_key: PublicKey) -> Any:
    assert sealed.crypto_nonce is not None
    box = Box(org_private, NaclPublicKey(sign_key.public))
    return json.loads(box.decrypt(sealed.payload, sealed.crypto_nonce))


# -- the box itself ----------------------------------------------------------------------------


def test_encrypt_round_trips_with_pynacl_and_stores_no_nonce_prefix() -> None:
    sender, recipient = PrivateKey.generate(), PrivateKey.generate()
    payload = encode_payload(CONTACT)

    ciphertext, nonce = encrypt(payload, bytes(recipient.public_key), bytes(sender))

    assert len(nonce) == 24
    assert len(ciphertext) == len(payload) + 16  # the MAC only, no nonce in front
    opened = Box(recipient, sender.public_key).decrypt(ciphertext, nonce)
    assert json.loads(opened) == CONTACT


def test_ciphertext_does_not_open_with_another_sign_key() -> None:
    sender, recipient, stranger = (PrivateKey.generate() for _ in range(3))
    ciphertext, nonce = encrypt(b"{}", bytes(recipient.public_key), bytes(sender))

    with pytest.raises(nacl.exceptions.CryptoError):
        Box(recipient, stranger.public_key).decrypt(ciphertext, nonce)


def test_nonces_never_repeat_and_the_same_payload_encrypts_differently() -> None:
    sender, recipient = PrivateKey.generate(), PrivateKey.generate()
    results = [
        encrypt(b'{"a":1}', bytes(recipient.public_key), bytes(sender)) for _ in range(20_000)
    ]

    assert len({nonce for _, nonce in results}) == len(results)
    assert len({ciphertext for ciphertext, _ in results}) == len(results)


def test_payload_is_compact_utf8_json() -> None:
    assert encode_payload({"firstName": "Zoë", "n": [1, None]}) == (
        '{"firstName":"Zoë","n":[1,null]}'.encode()
    )


# -- sealing a contact for an org ---------------------------------------------------------------


async def test_contact_is_sealed_for_the_org_key_by_the_instance_sign_key(
    session: AsyncSession,
) -> None:
    instance, sign_key, _ = await make_instance(session)
    org = await make_org(session)
    org_key, org_private = await make_key(session, org)
    keyring = KeyRing(instance.name)

    sealed = await seal_for_org(keyring, session, org.id, CONTACT)

    assert sealed.encrypted
    assert (sealed.public_key_id, sealed.sign_key_id) == (org_key.id, sign_key.id)
    assert encode_payload(CONTACT) not in sealed.payload
    assert open_sealed(sealed, org_private, sign_key) == CONTACT


async def test_newest_active_key_of_the_org_is_the_recipient(session: AsyncSession) -> None:
    instance, sign_key, _ = await make_instance(session)
    org = await make_org(session)
    await make_key(session, org)
    newest, newest_private = await make_key(session, org)

    sealed = await seal_for_org(KeyRing(instance.name), session, org.id, CONTACT)

    assert sealed.public_key_id == newest.id
    assert open_sealed(sealed, newest_private, sign_key) == CONTACT


async def test_org_without_active_key_gets_cleartext_json(session: AsyncSession) -> None:
    instance, _, _ = await make_instance(session)
    org = await make_org(session)
    await make_key(session, org, active=False)

    sealed = await seal_for_org(KeyRing(instance.name), session, org.id, CONTACT)

    assert sealed == SealedContact(encode_payload(CONTACT), None, None, None)
    assert not sealed.encrypted
    assert "zoe@example.org" not in repr(sealed)  # a logged SealedContact shows no personal data


async def test_cleartext_when_the_instance_key_has_no_private_part(session: AsyncSession) -> None:
    instance = await make_org(session, unique("instance"))
    await make_key(session, instance, keep_private=False)
    org = await make_org(session)
    await make_key(session, org)

    sealed = await seal_for_org(KeyRing(instance.name), session, org.id, CONTACT)

    assert sealed == SealedContact(encode_payload(CONTACT), None, None, None)


async def test_cleartext_when_the_instance_org_is_missing(session: AsyncSession) -> None:
    org = await make_org(session)
    await make_key(session, org)

    sealed = await seal_for_org(KeyRing(unique("no-such-org")), session, org.id, CONTACT)

    assert sealed == SealedContact(encode_payload(CONTACT), None, None, None)


async def test_concurrent_seals_share_the_ring_and_never_reuse_a_nonce(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    instance, sign_key, _ = await make_instance(session)
    org = await make_org(session)
    _, org_private = await make_key(session, org)
    await session.commit()
    keyring = KeyRing(instance.name)

    async def seal(n: int) -> SealedContact:
        async with sessionmaker() as own:
            return await seal_for_org(keyring, own, org.id, {**CONTACT, "n": n})

    sealed = await asyncio.gather(*(seal(n) for n in range(30)))

    assert len({s.crypto_nonce for s in sealed}) == 30
    assert [open_sealed(s, org_private, sign_key)["n"] for s in sealed] == list(range(30))


# -- the key ring -------------------------------------------------------------------------------


async def test_cached_keys_are_not_queried_again_until_they_are_stale(
    session: AsyncSession, statements: list[str]
) -> None:
    instance, _, _ = await make_instance(session)
    org = await make_org(session)
    clock = FakeClock()
    keyring = KeyRing(instance.name, max_age=5.0, clock=clock)
    assert await keyring.org_key(session, org.id) is None
    assert await keyring.sign_key(session) is not None

    key, _ = await make_key(session, org)
    statements.clear()
    clock.now += 4.9
    assert await keyring.org_key(session, org.id) is None  # still the cached "no key"
    assert await keyring.sign_key(session) is not None
    assert statements == []

    clock.now += 0.2
    found = await keyring.org_key(session, org.id)
    assert found is not None and found.id == key.id
    assert len(statements) == 1


async def test_activate_key_is_seen_at_once_after_invalidate(session: AsyncSession) -> None:
    instance, _, _ = await make_instance(session)
    org = await make_org(session)
    old, _ = await make_key(session, org)
    new, _ = await make_key(session, org, active=False)
    keyring = KeyRing(instance.name, clock=FakeClock())
    assert (await seal_for_org(keyring, session, org.id, CONTACT)).public_key_id == old.id

    await activate_key(session, org, new.id)
    await session.commit()
    assert (await seal_for_org(keyring, session, org.id, CONTACT)).public_key_id == old.id
    keyring.invalidate(org.id)

    assert (await seal_for_org(keyring, session, org.id, CONTACT)).public_key_id == new.id


async def test_deactivate_all_keys_then_invalidate_falls_back_to_cleartext(
    session: AsyncSession,
) -> None:
    instance, _, _ = await make_instance(session)
    org = await make_org(session)
    await make_key(session, org)
    keyring = KeyRing(instance.name, clock=FakeClock())
    assert (await seal_for_org(keyring, session, org.id, CONTACT)).encrypted

    await deactivate_all_keys(session, org)
    await session.commit()
    keyring.invalidate(org.id)

    sealed = await seal_for_org(keyring, session, org.id, CONTACT)
    assert sealed == SealedContact(encode_payload(CONTACT), None, None, None)


async def test_invalidating_the_instance_org_reloads_the_sign_key(session: AsyncSession) -> None:
    instance, old_sign, _ = await make_instance(session)
    other = await make_org(session)
    keyring = KeyRing(instance.name, clock=FakeClock())
    cached = await keyring.sign_key(session)
    assert cached is not None and cached.id == old_sign.id
    assert repr(cached.private) not in repr(cached)

    new_sign, _ = await make_key(session, instance, active=False, keep_private=True)
    await activate_key(session, instance, new_sign.id)
    keyring.invalidate(other.id)
    still = await keyring.sign_key(session)
    assert still is not None and still.id == old_sign.id  # another org's change keeps it

    keyring.invalidate(instance.id)
    reloaded = await keyring.sign_key(session)
    assert reloaded is not None and reloaded.id == new_sign.id


async def test_a_load_that_overlaps_invalidate_is_not_cached(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, _, _ = await make_instance(session)
    org = await make_org(session)
    keyring = KeyRing(instance.name, clock=FakeClock())
    load = keyring._load_org_key

    async def load_then_key_changes(s: AsyncSession, org_id: int) -> Any:
        # the SELECT saw "no key"; meanwhile another request activates one and invalidates
        result = await load(s, org_id)
        await make_key(session, org)
        keyring.invalidate(org_id)
        return result

    monkeypatch.setattr(keyring, "_load_org_key", load_then_key_changes)
    assert await keyring.org_key(session, org.id) is None
    monkeypatch.undo()

    assert await keyring.org_key(session, org.id) is not None


# -- @proca/crypto opens what we seal ------------------------------------------------------------


def install_proca_crypto() -> Path:
    """node_modules holding npm @proca/crypto, installed once into the clients cache."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise ClientUnavailable("npm (and node) are needed to test against npm @proca/crypto")
    prefix = cache_dir() / f"node-proca-crypto-{PROCA_CRYPTO_VERSION}"
    package = prefix / "node_modules" / "@proca" / "crypto" / "package.json"
    spec = f"@proca/crypto@{PROCA_CRYPTO_VERSION}"
    with _locked(cache_dir()):
        installed = (
            package.exists()
            and json.loads(package.read_text()).get("version") == PROCA_CRYPTO_VERSION
        )
        if not installed:
            env = {
                **os.environ,
                "npm_config_fetch_retries": "1",
                "npm_config_update_notifier": "false",
            }
            argv = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), spec]
            try:
                result = subprocess.run(
                    argv, env=env, capture_output=True, text=True, timeout=600, check=False
                )
            except subprocess.TimeoutExpired:
                raise ClientUnavailable(
                    f"npm install {spec} timed out (registry unreachable?)"
                ) from None
            if result.returncode != 0 or not package.exists():
                reason = _first_error_line(result.stderr + result.stdout)
                raise ClientUnavailable(
                    f"npm install {spec} failed (registry unreachable?): {reason}"
                )
    return prefix / "node_modules"


@pytest.fixture(scope="session")
def proca_crypto() -> Path:
    try:
        return install_proca_crypto()
    except ClientUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.mark.slow  # @proca/crypto under Node (installed from npm once)
async def test_proca_crypto_decrypts_what_the_server_seals(
    session: AsyncSession, proca_crypto: Path
) -> None:
    instance, sign_key, _ = await make_instance(session)
    org = await make_org(session)
    org_key, org_private = await make_key(session, org)
    payloads: list[dict[str, Any]] = [
        CONTACT,
        {},
        {"email": "a@b.c", "note": 'quote " slash \\ \n tab \t \u2028'},
    ]
    keyring = KeyRing(instance.name)
    sealed = [await seal_for_org(keyring, session, org.id, p) for p in payloads]
    assert all(s.encrypted for s in sealed)

    def personal_info(s: SealedContact) -> dict[str, Any]:
        assert s.crypto_nonce is not None
        return {
            "payload": base64url.encode(s.payload),
            "nonce": base64url.encode(s.crypto_nonce),
            "encryptKey": {"id": s.public_key_id, "public": base64url.encode(org_key.public)},
            "signKey": {"id": s.sign_key_id, "public": base64url.encode(sign_key.public)},
        }

    stdin = json.dumps(
        {
            "keys": {
                base64url.encode(org_key.public): {"private": base64url.encode(bytes(org_private))}
            },
            "contacts": [personal_info(s) for s in sealed],
        }
    )
    result = await asyncio.to_thread(
        subprocess.run,
        ["node", str(DECRYPT_SCRIPT)],
        input=stdin,
        env={**os.environ, "NODE_PATH": str(proca_crypto)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    opened = json.loads(result.stdout)
    assert [o["parsed"] for o in opened] == payloads
    assert [o["text"].encode() for o in opened] == [encode_payload(p) for p in payloads]
