from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.models import User


@dataclass
class Context:
    """What every resolver gets: one session (one unit of work) and the caller."""

    session: AsyncSession
    settings: Settings
    user: User | None = None
    referer: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
