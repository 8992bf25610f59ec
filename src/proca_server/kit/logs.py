"""Logging: one JSON object per line in production, plain text otherwise."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class WithholdBodies(logging.Filter):
    """Replaces message objects in a record's arguments by their size. The AMQP client logs a
    whole message (`%r` of a returned message it cannot match to a publish), and a message
    body carries supporters' personal data, which never goes to a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_body(a) is not None for a in args):
            record.args = tuple(_withheld(a) for a in args)
        return True


def _body(value: object) -> bytes | bytearray | None:
    body = getattr(value, "body", None)
    return body if isinstance(body, bytes | bytearray) else None


def _withheld(value: object) -> object:
    body = _body(value)
    return value if body is None else f"<message of {len(body)} bytes, withheld>"


def configure_logging(level: str, *, json_lines: bool, access_log: bool = True) -> None:
    """`access_log`: uvicorn's line per request (ACCESS_LOG). Called again in each server
    process once uvicorn has set its loggers up, so the choice is made here, not only by
    uvicorn's own `access_log`."""
    handler = logging.StreamHandler()
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(WithholdBodies())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # uvicorn's own loggers go through the root handler too
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # uvicorn writes its access line only while this logger has a handler to reach
    logging.getLogger("uvicorn.access").propagate = access_log
