from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Aware UTC now, to the second like the original's timestamp(0) columns."""
    return datetime.now(UTC).replace(microsecond=0)
