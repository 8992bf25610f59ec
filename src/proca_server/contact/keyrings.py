"""One KeyRing per process and instance org: the hot path's key cache."""

from __future__ import annotations

from proca_server.contact.crypto import KeyRing

_keyrings: dict[str, KeyRing] = {}


def keyring_for(instance_org_name: str) -> KeyRing:
    ring = _keyrings.get(instance_org_name)
    if ring is None:
        ring = _keyrings[instance_org_name] = KeyRing(instance_org_name)
    return ring
