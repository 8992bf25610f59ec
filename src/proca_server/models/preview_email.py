from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import ID, Base, JSONMap, UTCDateTime


class PreviewEmail(Base):
    """An email kept by the `preview` backend instead of being sent; read at /mailbox."""

    __tablename__ = "preview_emails"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    to_address: Mapped[str] = mapped_column(Text)
    from_address: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=sa.text("'{}'")
    )
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
