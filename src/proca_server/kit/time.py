from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Aware UTC now, to the second like the original's timestamp(0) columns."""
    return datetime.now(UTC).replace(microsecond=0)


def months_before(moment: datetime, months: int) -> datetime:
    """The same time `months` calendar months earlier; the day is clamped to the month's
    last (31 March minus one month is 28 or 29 February)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    return moment.replace(year=year, month=month, day=min(moment.day, days))
