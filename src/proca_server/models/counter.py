"""Tables of the campaign counters (see ARCHITECTURE.md, "Counters").

None of them has a foreign key: the signature transaction writes to them and a foreign-key check
would lock the campaign row in every one of them; rows of a deleted campaign are never read."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Index, LargeBinary, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, UTCDateTime


class CounterKind(enum.IntEnum):
    """What a row of `counter_totals` counts; `key` says which one."""

    SUPPORTERS = 0  # key ""
    ORG_SUPPORTERS = 1  # key: the org id in decimal
    AREA_SUPPORTERS = 2  # key: the area
    ACTIONS = 3  # key: the action type


class CounterPerson(Base):
    """A person (fingerprint) counted in a campaign, and the area they count in.

    The primary key is the dedupe: the upsert of a signature tells whether it is the person's
    first one in the campaign. `prev_area` and `seen` are written by that upsert so that its
    RETURNING clause can say what changed (it returns the new row only)."""

    __tablename__ = "counter_people"

    campaign_id: Mapped[int] = mapped_column(ID, primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    area: Mapped[str | None] = mapped_column(String(255))
    prev_area: Mapped[str | None] = mapped_column(String(255))
    seen: Mapped[int] = mapped_column(default=1, server_default=text("1"))


class CounterOrgPerson(Base):
    """A person counted for an org (the owner of a page they acted on) in a campaign."""

    __tablename__ = "counter_org_people"

    campaign_id: Mapped[int] = mapped_column(ID, primary_key=True)
    org_id: Mapped[int] = mapped_column(ID, primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)


class CounterDelta(Base):
    """A change of a campaign's counts, appended by a signature (or a reconciliation) and folded
    into `counter_totals` by the compactor. One row per signature: each column pair is one
    counter (`actions` of `action_type`, `org_supporters` of `org_id`, `area_supporters` of
    `area`), `left_area` loses one supporter (the person moved to `area`)."""

    __tablename__ = "counter_deltas"
    __table_args__ = (Index(None, "campaign_id"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ID)
    action_type: Mapped[str | None] = mapped_column(String(255))
    actions: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    supporters: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    org_id: Mapped[int | None] = mapped_column(ID)
    org_supporters: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    area: Mapped[str | None] = mapped_column(String(255))
    area_supporters: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    left_area: Mapped[str | None] = mapped_column(String(255))


class CounterTotal(Base):
    """A campaign's count as of the last compaction; the live count adds the pending deltas."""

    __tablename__ = "counter_totals"

    campaign_id: Mapped[int] = mapped_column(ID, primary_key=True)
    kind: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))


class CounterCampaign(Base):
    """When the compactor last folded a change of the campaign, and when it was last
    reconciled: the reconciler's schedule."""

    __tablename__ = "counter_campaigns"

    campaign_id: Mapped[int] = mapped_column(ID, primary_key=True)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
