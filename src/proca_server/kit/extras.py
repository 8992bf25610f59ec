"""Optional dependency stacks (extras of the `proca-server` package) and the one error that
names the extra to install when a feature needs one that is missing."""

from __future__ import annotations

import importlib.util

# extra -> the modules it brings that the code imports
EXTRAS: dict[str, tuple[str, ...]] = {
    "aws": ("aiobotocore", "botocore"),
    "stripe": ("stripe",),
    "sentry": ("sentry_sdk",),
}


class MissingExtra(RuntimeError):
    """A feature was asked for whose libraries are not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"{feature} needs the {extra} libraries: install them with "
            f"pip install 'proca-server[{extra}]'"
        )


def installed(extra: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in EXTRAS[extra])


def require(extra: str, feature: str) -> None:
    """Raise MissingExtra naming `feature` and `extra` unless the extra's libraries are there."""
    if not installed(extra):
        raise MissingExtra(feature, extra)
