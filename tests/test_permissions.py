from __future__ import annotations

from proca_server.auth.permissions import ADMIN, ROLES, Permission, is_admin, role_of


def test_bits_are_those_of_the_original() -> None:
    assert Permission.INSTANCE_OWNER == 1
    assert Permission.MANAGE_ORGS == 8
    assert Permission.ORG_OWNER == 128
    assert Permission.EXPORT_CONTACTS == 512
    assert Permission.DELETE_CONTACTS == 1024
    assert Permission.CHANGE_ORG_SETTINGS == Permission.CHANGE_ORG_SERVICES == 1 << 16
    assert Permission.CHANGE_CAMPAIGN_SETTINGS == 1 << 20
    assert ADMIN == 15


def test_role_detection_strongest_first() -> None:
    for name, bits in ROLES.items():
        assert role_of(bits) == name
    assert role_of(ROLES["owner"] & ~Permission.DELETE_CONTACTS) == "owner"  # legacy owner
    assert role_of(ROLES["translator"] | Permission.EXPORT_CONTACTS) == "translator"
    assert role_of(Permission.EXPORT_CONTACTS) == "custom"
    assert role_of(0) == "custom"


def test_admin_is_the_instance_owner_bit() -> None:
    assert is_admin(ADMIN)
    assert not is_admin(int(Permission.MANAGE_USERS))
