"""Service passwords at rest: the `password` of an org's services (SMTP, Mailjet, SES, Brevo,
HubSpot passwords and API keys, AWS secret keys, webhook credentials and signing secrets).

Map:

- Key: 32 bytes derived from SECRET_KEY_BASE with BLAKE2b, as libsodium's `crypto_kdf` does
  (BLAKE2b of the secret, then BLAKE2b keyed with that, a subkey id as salt and this purpose as
  personalisation), so no other use of SECRET_KEY_BASE shares the key.
- Cipher: NaCl `secretbox` (XSalsa20-Poly1305) with a random 24-byte nonce per value.
- Stored: `enc:v1:` + base64url (no padding) of nonce + ciphertext. A value without the prefix
  is a cleartext value written before migration 0009 and is read as it is; the empty string
  (no password) stays empty.
- One path: the `services.password` column has the type `SecretString`, which encrypts every
  value written and decrypts every value read, for the ORM and for Core statements alike. The
  API never shows a password (org/types.py `Service`).
- SECRET_KEY_BASE is read from the process environment (`get_settings`), as the migrations
  read it, so the server, the workers and `proca-server db upgrade` agree on the key. Unset
  outside prod, a fixed development key is used (with a warning): such passwords are no secret
  from anyone with the source. In prod the server refuses to start without SECRET_KEY_BASE
  (`Settings.check`) and so does this module. Changing SECRET_KEY_BASE makes the stored
  passwords unreadable: they read as empty (with an error in the log) until set again with
  upsertService.

Nothing here logs or puts into an exception a password or a key.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Final

from nacl.encoding import RawEncoder
from nacl.exceptions import CryptoError
from nacl.hash import blake2b
from nacl.secret import SecretBox
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from proca_server.config import ConfigError, get_settings
from proca_server.kit import base64url

log = logging.getLogger(__name__)

PREFIX: Final = "enc:v1:"
DEV_SECRET_KEY_BASE: Final = "proca-server development key for service passwords: not a secret"  # noqa: S105
"""Used in dev and test when SECRET_KEY_BASE is empty; never in prod."""
_PERSON: Final = b"proca:services"
_SUBKEY_ID: Final = 1


def derive_key(secret_key_base: str) -> bytes:
    master = blake2b(secret_key_base.encode(), digest_size=32, encoder=RawEncoder)
    return blake2b(
        b"",
        digest_size=SecretBox.KEY_SIZE,
        key=master,
        salt=_SUBKEY_ID.to_bytes(8, "little"),
        person=_PERSON,
        encoder=RawEncoder,
    )


@lru_cache(maxsize=4)
def _box(secret_key_base: str) -> SecretBox:
    return SecretBox(derive_key(secret_key_base))


def current_secret_key_base() -> str:
    """SECRET_KEY_BASE of this process, or the development key outside prod."""
    settings = get_settings()
    if settings.secret_key_base:
        return settings.secret_key_base
    if settings.production:
        raise ConfigError("SECRET_KEY_BASE is required to read or write service passwords")
    _warn_dev_key()
    return DEV_SECRET_KEY_BASE


@lru_cache(maxsize=1)
def _warn_dev_key() -> None:
    log.warning(
        "SECRET_KEY_BASE is not set: service passwords are encrypted with the fixed "
        "development key (set SECRET_KEY_BASE before storing real ones)"
    )


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def encrypt_password(clear: str, secret_key_base: str | None = None) -> str:
    """What the column stores for `clear`; the empty string stays empty."""
    if not clear:
        return clear
    box = _box(secret_key_base or current_secret_key_base())
    return PREFIX + base64url.encode(bytes(box.encrypt(clear.encode("utf-8"))))


class UnreadablePassword(Exception):
    """A stored password does not open with this key (SECRET_KEY_BASE changed)."""


def decrypt_password(stored: str, secret_key_base: str | None = None) -> str:
    """The clear password of a stored value; a legacy cleartext value as it is."""
    if not is_encrypted(stored):
        return stored
    box = _box(secret_key_base or current_secret_key_base())
    try:
        return box.decrypt(base64url.decode(stored[len(PREFIX) :])).decode("utf-8")
    except (CryptoError, ValueError) as exc:
        raise UnreadablePassword("a service password does not open with this key") from exc


class SecretString(TypeDecorator[str]):
    """A text column encrypted at rest with the service password key."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else encrypt_password(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        try:
            return decrypt_password(str(value))
        except UnreadablePassword:
            # Raising would make the row unloadable, so that not even upsertService could set
            # the password again; read as unset, the backend fails visibly instead.
            log.error(
                "a service password does not open with this SECRET_KEY_BASE (changed since "
                "it was stored?): read as empty; set it again with upsertService"
            )
            return ""
