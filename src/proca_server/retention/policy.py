"""Retention settings: the two modes, the months, and an org's policy in its config
(`{"retention": {"months": 24, "mode": "remove_pii"}}`).

`check_org_config` is strict (the API refuses a policy it could not apply); `org_policy` reads
a stored config leniently (a config stored before the check, or by hand, that holds no valid
policy has none)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proca_server.errors import BadArgument

DEFAULT_MONTHS = 24
MIN_MONTHS = 1
MAX_MONTHS = 1200
POLICY_KEY = "retention"


class Mode(enum.StrEnum):
    # the org's contact rows of the eligible supporters
    DELETE_CONTACTS = "delete_contacts"
    # those rows, and the supporters' cleartext personal data where no other org holds a
    # contact of theirs
    REMOVE_PII = "remove_pii"


MODES = ", ".join(m.value for m in Mode)
MONTHS_RULE = f"must be a whole number of months from {MIN_MONTHS} to {MAX_MONTHS}"


@dataclass(frozen=True)
class RetentionPolicy:
    months: int
    mode: Mode

    def as_dict(self) -> dict[str, Any]:
        return {"months": self.months, "mode": self.mode.value}


def parse_months(value: object) -> int:
    """A number of months, or ValueError (MONTHS_RULE). Numeric strings are taken, as the
    other org settings take them."""
    if isinstance(value, bool):
        raise ValueError(MONTHS_RULE)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not MIN_MONTHS <= value <= MAX_MONTHS:
        raise ValueError(MONTHS_RULE)
    return value


def parse_mode(value: object) -> Mode:
    if isinstance(value, str) and value.strip() in tuple(Mode):
        return Mode(value.strip())
    raise ValueError(f"must be one of {MODES}")


def check_org_config(config: Mapping[str, Any] | None) -> None:
    """Refuse an org config whose retention policy could not be applied, naming the field
    (`config.retention.months`, ...)."""
    if not isinstance(config, Mapping) or config.get(POLICY_KEY) is None:
        return
    policy = config[POLICY_KEY]
    field = ["config", POLICY_KEY]
    if not isinstance(policy, Mapping):
        raise BadArgument(
            'must be an object such as {"months": 24, "mode": "delete_contacts"}', field=field
        )
    for key in policy:
        if key not in ("months", "mode"):
            raise BadArgument("is not a retention setting (months, mode)", field=[*field, key])
    for key in ("months", "mode"):
        if policy.get(key) is None:
            raise BadArgument("can't be blank", field=[*field, key])
    try:
        parse_months(policy["months"])
    except ValueError as exc:
        raise BadArgument(str(exc), field=[*field, "months"]) from None
    try:
        parse_mode(policy["mode"])
    except ValueError as exc:
        raise BadArgument(str(exc), field=[*field, "mode"]) from None


def org_policy(config: Mapping[str, Any] | None) -> RetentionPolicy | None:
    """The org's policy, None when it has none (or none that holds)."""
    policy = config.get(POLICY_KEY) if isinstance(config, Mapping) else None
    if not isinstance(policy, Mapping):
        return None
    try:
        return RetentionPolicy(parse_months(policy.get("months")), parse_mode(policy.get("mode")))
    except ValueError:
        return None
