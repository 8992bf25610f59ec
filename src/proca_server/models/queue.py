"""Tables of the embedded message queue (broker/embedded.py): the exchanges, queues and
bindings of the RabbitMQ topology, and the messages waiting in each queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, JSONMap, UTCDateTime


class BrokerExchange(Base):
    __tablename__ = "broker_exchanges"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))  # topic, fanout or direct


class BrokerQueue(Base):
    __tablename__ = "broker_queues"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    # as declared on RabbitMQ (x-dead-letter-exchange, x-dead-letter-routing-key)
    arguments: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )


class BrokerBinding(Base):
    __tablename__ = "broker_bindings"

    exchange: Mapped[str] = mapped_column(String(255), primary_key=True)
    queue: Mapped[str] = mapped_column(String(255), primary_key=True)
    routing_key: Mapped[str] = mapped_column(String(255), primary_key=True)


class BrokerMessage(Base):
    """A message in a queue. It is ready when `available_at` has passed; a consumer claims it
    by moving `available_at` to the end of its lease (also written to `locked_until`, which
    identifies the claim); a failure moves it to the end of the retry delay."""

    __tablename__ = "broker_messages"
    __table_args__ = (
        # claiming the next messages of a queue reads this index in order and stops
        Index(None, "queue", "available_at", "id"),
        {"sqlite_autoincrement": True},  # ids are never reused: `queue ack ID` stays safe
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    queue: Mapped[str] = mapped_column(String(255))
    exchange: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    routing_key: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    retries: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    deliveries: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime())
