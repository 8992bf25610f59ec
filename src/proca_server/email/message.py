from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formataddr


@dataclass(frozen=True)
class EmailMessage:
    to: str
    # the From header (`from` is a Python keyword)
    sender: str
    subject: str
    html: str | None = None
    text: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def format_address(name: str | None, address: str) -> str:
    """`Name <address>`, quoted as RFC 5322 needs; just the address when there is no name."""
    return formataddr((name, address)) if name else address
