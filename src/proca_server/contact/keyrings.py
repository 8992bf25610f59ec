"""One KeyRing per process and instance org: the hot path's key cache."""

from __future__ import annotations

from proca_server.contact.crypto import KeyRing

_keyrings: dict[str, KeyRing] = {}


def keyring_for(instance_org_name: str, *, require_encryption: bool | None = None) -> KeyRing:
    """The process's ring for the instance org. Callers that have the settings pass
    REQUIRE_ENCRYPTION; a ring not yet told it makes no cleartext copy from its cache
    (`KeyRing.cached_seal`), so the signature lane leaves such signatures to the general
    path, whose call sets it."""
    ring = _keyrings.get(instance_org_name)
    if ring is None:
        ring = _keyrings[instance_org_name] = KeyRing(instance_org_name)
    if require_encryption is not None:
        ring.require_encryption = require_encryption
    return ring


def forget_keyrings() -> None:
    """Drop every ring (a restart, for a test: the next call of `keyring_for` loads anew)."""
    _keyrings.clear()
