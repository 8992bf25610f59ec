from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import CHAR, CheckConstraint, ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, IntEnum, JSONMap, TimestampMixin
from proca_server.models.enums import DonationFrequencyUnit, DonationSchema


class PaymentStatus(enum.StrEnum):
    """What the payment provider last reported about a donation (`payment_status`)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the subscription of a recurring donation ended


class Donation(TimestampMixin, Base):
    __tablename__ = "donations"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    schema: Mapped[DonationSchema | None] = mapped_column(IntEnum(DonationSchema))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONMap())
    amount: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(CHAR(3), default="EUR")
    frequency_unit: Mapped[DonationFrequencyUnit] = mapped_column(
        IntEnum(DonationFrequencyUnit),
        default=DonationFrequencyUnit.ONE_OFF,
        server_default=text("0"),
    )
    action_id: Mapped[int] = mapped_column(
        ID, ForeignKey("actions.id", ondelete="CASCADE"), index=True
    )
    # Followed through Stripe's signed reports (donation/webhooks.py), all null until then:
    # the PaymentIntent named in the payload the widget sent, the subscription a report tied
    # it to, the last status reported (a PaymentStatus value) and the payment it was about.
    payment_id: Mapped[str | None] = mapped_column(String(255), index=True)
    subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_status: Mapped[str | None] = mapped_column(String(32))
    last_payment_id: Mapped[str | None] = mapped_column(String(255))
