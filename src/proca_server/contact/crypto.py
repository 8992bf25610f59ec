"""Encryption of personal data: the only module that handles contact ciphertext.

Map (docs/export.md shows an org opening its exported contacts):

- A contact's payload is the compact UTF-8 JSON of its data. It is sealed with NaCl
  `crypto_box` (Curve25519 + XSalsa20-Poly1305): the sender is the instance org's active key
  (the "sign key", the only key whose private part the server keeps), the recipient is the
  receiving org's newest active key.
- Stored: the ciphertext *without* the nonce prefix PyNaCl puts in front of it (payload), the
  24-byte nonce (crypto_nonce), and the ids of both keys. On the wire all of these travel as
  base64url without padding; recipients open them with `@proca/crypto`
  (`nacl.box.open(payload, nonce, signKey.public, encryptKey.private)`).
- Plaintext fallback (kept from the original; clients depend on it): an org without an active
  key, or an instance without a usable sign key, gets its contacts stored as cleartext JSON with
  null nonce and key ids. It is not silent: each such org is named (by id) in one WARNING per
  process, and with `REQUIRE_ENCRYPTION=true` the signature is refused instead (BadArgument,
  naming the org), before anything is written. `KeyRing.require_encryption` carries that
  setting; the signature lane's `cached_seal` never makes a cleartext copy unless it is known
  to be allowed, so such a signature always goes the general path, which refuses it.
- `KeyRing` caches the keys per process with a bounded staleness, so the hot path does not
  query them on every action; key administration calls `invalidate` after it commits.
- `ContactOpener` opens contacts for `proca-server export --key`, with private keys the org
  gives for that run; the server never stores them.

Nothing here logs or puts into an exception a payload or a key.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, Generic, TypeVar

from nacl.bindings import crypto_box_open_easy_afternm
from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey
from nacl.public import PublicKey as NaclPublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.errors import BadArgument
from proca_server.models import Org, PublicKey

log = logging.getLogger(__name__)

NONCE_BYTES: Final = 24
KEY_BYTES: Final = 32
DEFAULT_MAX_AGE: Final = 5.0
"""Seconds a cached key is trusted. Other processes (or a missed `invalidate`) see a key change
at most this late; the original pushed key changes into a single node's memory instead."""


def new_nonce() -> bytes:
    # The original kept one process-wide counter from a random start. With several API and
    # worker processes (and restarts) such counters can overlap, and a repeated nonce under the
    # same key pair leaks the XOR of two plaintexts and lets the MAC be forged. XSalsa20's
    # 192-bit nonce is long enough to be drawn at random: the chance of any repeat among 2^64
    # encryptions is below 2^-64, and random draws need no state shared between processes.
    return secrets.token_bytes(NONCE_BYTES)


def encrypt(payload: bytes, recipient_public: bytes, sender_private: bytes) -> tuple[bytes, bytes]:
    """Seal `payload` for `recipient_public` from `sender_private`: (ciphertext incl. the
    16-byte MAC and without the nonce prefix, nonce)."""
    nonce = new_nonce()
    return _box(recipient_public, sender_private).encrypt(payload, nonce).ciphertext, nonce


@lru_cache(maxsize=1024)
def _box(recipient_public: bytes, sender_private: bytes) -> Box:
    # A Box holds the precomputed shared key of the pair (a Curve25519 multiplication): keyed
    # by the keys themselves, so a rotated key simply makes a new entry.
    return Box(PrivateKey(sender_private), NaclPublicKey(recipient_public))


def encode_payload(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as the original's JSON encoder writes it (no ASCII escapes)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class OrgKey:
    """An org's active (recipient) key."""

    id: int
    org_id: int
    public: bytes


@dataclass(frozen=True, slots=True)
class SignKey:
    """The instance org's active key with its private part (the contacts' sender)."""

    id: int
    org_id: int
    public: bytes
    private: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SealedContact:
    """What a Contact row stores: ciphertext and key ids, or cleartext JSON and nulls."""

    payload: bytes = field(repr=False)
    crypto_nonce: bytes | None
    public_key_id: int | None
    sign_key_id: int | None

    @property
    def encrypted(self) -> bool:
        return self.crypto_nonce is not None


@dataclass(frozen=True, slots=True)
class _Entry(Generic[K]):
    value: K | None
    loaded_at: float


class KeyRing:
    """Per-process cache of the instance sign key and each org's newest active key.

    An entry (a key, or "this org has no active key") is reloaded once it is older than
    `max_age` seconds, so a key change made elsewhere shows up within that bound. Key
    administration in this process calls `invalidate(org_id)` after its transaction commits
    (invalidating before the commit would let a concurrent request re-cache the old key).

    Safe for concurrent coroutines without a lock: the cache is only read and written between
    awaits, and a load that overlapped an `invalidate` is returned to its caller but not cached
    (the epoch check), so an invalidation is never overwritten by an older read. Two coroutines
    that miss at once both query, which costs one extra small SELECT. Each load runs on the
    caller's own session, so no session is shared between tasks.
    """

    def __init__(
        self,
        org_name: str,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
        require_encryption: bool | None = None,
    ) -> None:
        self.org_name = org_name
        self.max_age = max_age
        # REQUIRE_ENCRYPTION; None until a caller with the settings says (keyring_for): until
        # then the general path stores in clear as the default does, the lane stores nothing
        self.require_encryption = require_encryption
        self._warned_keyless: set[int] = set()
        self._clock = clock
        self._sign: _Entry[SignKey] | None = None
        self._orgs: dict[int, _Entry[OrgKey]] = {}
        self._epoch = 0
        self._warned_no_sign_key = False

    async def sign_key(self, session: AsyncSession) -> SignKey | None:
        """The instance org's active key with a private part, or None when there is none."""
        entry = self._sign
        if entry is not None and self._fresh(entry):
            return entry.value
        epoch = self._epoch
        key = await self._load_sign_key(session)
        if epoch == self._epoch:
            self._sign = _Entry(key, self._clock())
        return key

    async def org_key(self, session: AsyncSession, org_id: int) -> OrgKey | None:
        """The org's newest active key, or None when the org has no active key."""
        entry = self._orgs.get(org_id)
        if entry is not None and self._fresh(entry):
            return entry.value
        epoch = self._epoch
        key = await self._load_org_key(session, org_id)
        if epoch == self._epoch:
            self._orgs[org_id] = _Entry(key, self._clock())
        return key

    def cached_seal(self, org_id: int, payload: dict[str, Any]) -> SealedContact | None:
        """`seal_for_org` from the cache alone: None when a key it needs is not cached or is
        stale, or when the copy would be cleartext and that is refused or not known to be
        allowed (the caller then takes the general path, which loads keys and refuses)."""
        if not self.holds(org_id):
            return None
        recipient = self._orgs[org_id].value
        sender = self._sign.value if recipient is not None and self._sign is not None else None
        if (recipient is None or sender is None) and self.require_encryption is not False:
            return None
        self._note(org_id, recipient)
        return seal(encode_payload(payload), recipient, sender)

    def _note(self, org_id: int, recipient: OrgKey | None) -> None:
        """Warn once per org and process while the org's contacts are stored in clear for
        want of its key (a missing sign key has its own warning, in `_load_sign_key`)."""
        if recipient is not None:
            if self._warned_keyless:
                self._warned_keyless.discard(org_id)  # warn again should it lose its key
            return
        if org_id in self._warned_keyless:
            return
        self._warned_keyless.add(org_id)
        log.warning(
            "org %d has no active encryption key: its supporters' contacts are stored unencrypted",
            org_id,
        )

    def holds(self, org_id: int) -> bool:
        """Whether the org's key (or its having none) and, for an org with a key, the sign
        key are cached and fresh: all `cached_seal` needs from the database."""
        entry = self._orgs.get(org_id)
        if entry is None or not self._fresh(entry):
            return False
        return entry.value is None or (self._sign is not None and self._fresh(self._sign))

    def ageing(self, org_id: int) -> bool:
        """True when the org's key or the sign key is cached but past half its life: time
        to `refresh` it before it expires."""
        half = self.max_age / 2
        now = self._clock()
        entry, sign = self._orgs.get(org_id), self._sign
        return (entry is not None and now - entry.loaded_at > half) or (
            sign is not None and now - sign.loaded_at > half
        )

    async def refresh(self, session: AsyncSession, org_id: int) -> None:
        """Load the org's key and the sign key again, whatever their age (an invalidation
        that overlaps the load wins, as in `org_key`)."""
        epoch = self._epoch
        org_key = await self._load_org_key(session, org_id)
        sign_key = await self._load_sign_key(session)
        if epoch == self._epoch:
            now = self._clock()
            self._orgs[org_id] = _Entry(org_key, now)
            self._sign = _Entry(sign_key, now)

    def invalidate(self, org_id: int | None = None) -> None:
        """Forget the org's key (every key when None), e.g. after activateKey or
        deactivateAllKeys; the sign key goes too when it may belong to that org."""
        self._epoch += 1
        if org_id is None:
            self._orgs.clear()
            self._sign = None
            return
        self._orgs.pop(org_id, None)
        sign = self._sign
        # a cached "no sign key" does not say which org is the instance org: drop it as well
        if sign is not None and (sign.value is None or sign.value.org_id == org_id):
            self._sign = None

    def _fresh(self, entry: _Entry[Any]) -> bool:
        return self._clock() - entry.loaded_at < self.max_age

    async def _load_org_key(self, session: AsyncSession, org_id: int) -> OrgKey | None:
        row = (
            await session.execute(
                select(PublicKey.id, PublicKey.public)
                .where(PublicKey.org_id == org_id, PublicKey.active.is_(True))
                .order_by(PublicKey.inserted_at.desc(), PublicKey.id.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        return OrgKey(id=row.id, org_id=org_id, public=bytes(row.public))

    async def _load_sign_key(self, session: AsyncSession) -> SignKey | None:
        row = (
            await session.execute(
                select(PublicKey.id, PublicKey.org_id, PublicKey.public, PublicKey.private)
                .join(Org, Org.id == PublicKey.org_id)
                .where(
                    Org.name == self.org_name,
                    PublicKey.active.is_(True),
                    PublicKey.private.is_not(None),
                )
                .order_by(PublicKey.inserted_at.desc(), PublicKey.id.desc())
                .limit(1)
            )
        ).first()
        usable = (
            row is not None
            and len(row.private or b"") == KEY_BYTES
            and len(row.public or b"") == KEY_BYTES
        )
        if row is None or not usable:
            if not self._warned_no_sign_key:
                self._warned_no_sign_key = True
                log.warning(
                    "no usable sign key (active, with a private part) for instance org %r: "
                    "contacts are stored unencrypted",
                    self.org_name,
                )
            return None
        self._warned_no_sign_key = False
        return SignKey(
            id=row.id, org_id=row.org_id, public=bytes(row.public), private=bytes(row.private)
        )


async def seal_for_org(
    keyring: KeyRing, session: AsyncSession, org_id: int, payload: dict[str, Any]
) -> SealedContact:
    """The org's copy of a contact: encrypted for its active key by the instance sign key, or
    cleartext JSON with null nonce and key ids when either key is missing (docs/security.md), which
    `keyring.require_encryption` refuses (BadArgument, naming the org, no personal data)."""
    recipient = await keyring.org_key(session, org_id)
    sender = None if recipient is None else await keyring.sign_key(session)
    if (recipient is None or sender is None) and keyring.require_encryption:
        raise BadArgument(await _refusal(keyring, session, org_id, recipient))
    keyring._note(org_id, recipient)
    return seal(encode_payload(payload), recipient, sender)


async def _refusal(
    keyring: KeyRing, session: AsyncSession, org_id: int, recipient: OrgKey | None
) -> str:
    if recipient is not None:
        return (
            f"instance org {keyring.org_name} has no usable sign key: contacts cannot be "
            "encrypted, and this server requires encryption"
        )
    name = await session.scalar(select(Org.name).where(Org.id == org_id))
    return (
        f"org {name or org_id} has no active encryption key, and this server requires "
        "encryption: its supporters' contacts cannot be stored"
    )


def seal(clear: bytes, recipient: OrgKey | None, sender: SignKey | None) -> SealedContact:
    """Encrypted for `recipient` by `sender`, or cleartext with null nonce and key ids when
    either key is missing."""
    if recipient is None or sender is None:
        return SealedContact(clear, None, None, None)
    ciphertext, nonce = encrypt(clear, recipient.public, sender.private)
    return SealedContact(ciphertext, nonce, recipient.id, sender.id)


class SealBroken(Exception):
    """A sealed contact that the key it names does not open (altered or damaged data)."""


def public_of(private: bytes) -> bytes:
    """The public part of a private key (ValueError when it is not 32 bytes)."""
    if len(private) != KEY_BYTES:
        raise ValueError("a private key is 32 bytes")
    return bytes(PrivateKey(private).public_key)


class ContactOpener:
    """Opens contacts with private keys an org holds (the file export, run by the org with
    its keys): one precomputed shared key per (recipient key, sign key) pair, so opening a
    contact costs one XSalsa20-Poly1305 pass. The private keys live only in this object."""

    def __init__(self, private_keys: dict[int, bytes]) -> None:
        # recipient key id -> its private part
        self._private = dict(private_keys)
        self._shared: dict[tuple[int, int], bytes] = {}
        self._signs: set[int] = set()

    def __repr__(self) -> str:
        return f"ContactOpener(keys={sorted(self._private)})"

    def holds(self, public_key_id: int) -> bool:
        return public_key_id in self._private

    def knows_sign_key(self, sign_key_id: int) -> bool:
        return sign_key_id in self._signs

    def add_sign_key(self, sign_key_id: int, public: bytes) -> None:
        self._signs.add(sign_key_id)
        if len(public) != KEY_BYTES:
            return  # a damaged key row: its contacts stay unopened (SealBroken)
        for key_id, private in self._private.items():
            self._shared[(key_id, sign_key_id)] = Box(
                PrivateKey(private), NaclPublicKey(public)
            ).shared_key()

    def open(self, payload: bytes, nonce: bytes, public_key_id: int, sign_key_id: int) -> bytes:
        """The cleartext of a contact sealed to a held key by a known sign key; SealBroken
        when it does not open."""
        shared = self._shared.get((public_key_id, sign_key_id))
        if shared is None or len(nonce) != NONCE_BYTES:
            raise SealBroken()
        try:
            return crypto_box_open_easy_afternm(payload, nonce, shared)
        except CryptoError:
            raise SealBroken() from None
