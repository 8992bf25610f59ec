from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, JSONMap, UTCDateTime


class ScheduledRun(Base):
    """A job the server runs on its own now and then (an org's retention policy, the closing
    of ended campaigns): when it is due, who holds it, and what its last run did.

    A process runs a job only after claiming it with one conditional UPDATE (due, and not
    claimed or its claim expired), so that of several processes one runs it; it keeps the
    claim alive while it works and sets the next run when it is done (retention/schedule.py)."""

    __tablename__ = "scheduled_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int | None] = mapped_column(
        ID, ForeignKey("orgs.id", ondelete="CASCADE"), index=True
    )
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # counts and settings of the last run, or the kind of error that stopped it; never
    # personal data
    last_outcome: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )
