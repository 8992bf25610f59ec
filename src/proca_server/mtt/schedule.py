"""When letters may go, and how many: the arithmetic of both delivery modes, free
of any database so that it can be read and tested on its own.

Drip (`drip_delivery`, the default): the campaign's window is cut into cycles of
`MTT_CYCLE_SECONDS`. A day's cycles fill the daily sending hours (the time parts of
`start_at` and `end_at`, UTC), on every day from the start date to the end date. At cycle `c`
of `n`, a target's goal is `total x c / n` letters: the planner gives send times to its oldest
waiting letters until what it has planned reaches the goal, so the letters spread evenly to the
end of the campaign, whatever moment they arrive.

Hourly (`drip_delivery` false): at each hour of the campaign's days, a target receives at most
`max_emails_per_hour x ratio(hour)` letters (at least one), the ratio following a working day
in the campaign's time zone; they are spread over the first 55 minutes of the hour, with an
alternating jitter, so that a target's inbox does not see a burst."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_MAX_EMAILS_PER_HOUR = 30

# share of `max_emails_per_hour` a target receives at each hour of the day (local time)
HOURLY_RATIOS = (
    0.02, 0.03, 0.04, 0.05, 0.06, 0.1, 0.15, 0.25, 0.5, 0.8, 1.0, 0.9,
    0.7, 0.7, 0.9, 1.0, 0.9, 0.7, 0.5, 0.25, 0.2, 0.1, 0.05, 0.02,
)  # fmt: skip

SPREAD = timedelta(minutes=55)
JITTER = 0.25
MIN_INTERVAL = timedelta(seconds=1)


@dataclass(frozen=True)
class Cycle:
    """Cycle `current` (1-based) of `total` in a drip campaign's window."""

    current: int
    total: int

    @property
    def fraction(self) -> float:
        return min(1.0, self.current / self.total) if self.total else 1.0


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _daily_seconds(start: datetime, end: datetime) -> tuple[int, int]:
    """The daily sending hours as seconds of the day: [from, to)."""
    begin = start.hour * 3600 + start.minute * 60 + start.second
    finish = end.hour * 3600 + end.minute * 60 + end.second
    return begin, finish


def in_days(start_at: datetime, end_at: datetime, now: datetime) -> bool:
    """Today (UTC) is one of the campaign's days."""
    today = _utc(now).date()
    return _utc(start_at).date() <= today <= _utc(end_at).date()


def drip_cycle(
    start_at: datetime, end_at: datetime, now: datetime, cycle_seconds: int
) -> Cycle | None:
    """The current cycle, or None outside the window (another day, or outside the daily hours).

    A daily window whose end time is not after its start time (a campaign set from 09:00 one
    day to 09:00 a later day) is read as the whole day: the original would never send."""
    start, end, now = _utc(start_at), _utc(end_at), _utc(now)
    if not in_days(start, end, now) or now >= end or now < start:
        return None
    begin, finish = _daily_seconds(start, end)
    if finish <= begin:
        begin, finish = 0, 86400
    second = now.hour * 3600 + now.minute * 60 + now.second
    if not begin <= second < finish:
        return None
    per_day = max(1, math.ceil((finish - begin) / cycle_seconds))
    days = (end.date() - start.date()).days + 1
    day_index = (now.date() - start.date()).days
    current = day_index * per_day + (second - begin) // cycle_seconds + 1
    return Cycle(current=min(current, days * per_day), total=days * per_day)


def drip_goal(total: int, cycle: Cycle) -> int:
    """How many of a target's `total` letters should have been planned by this cycle (the
    last cycle plans them all)."""
    if cycle.current >= cycle.total:
        return total
    return math.ceil(total * cycle.fraction)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Etc/UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Etc/UTC")


def hour_start(now: datetime) -> datetime:
    return _utc(now).replace(minute=0, second=0, microsecond=0)


def hourly_cap(max_per_hour: int | None, now: datetime, timezone: str | None) -> int:
    """Letters a target may receive in the hour of `now`, by the hour in the campaign's zone."""
    base = max_per_hour if max_per_hour and max_per_hour > 0 else DEFAULT_MAX_EMAILS_PER_HOUR
    local_hour = _utc(now).astimezone(zone(timezone)).hour
    return max(1, int(base * HOURLY_RATIOS[local_hour]))


def spread(
    start: datetime,
    count: int,
    *,
    span: timedelta = SPREAD,
    jitter: float = JITTER,
    rng: random.Random | None = None,
) -> list[datetime]:
    """`count` send times from `start` across `span`: evenly spaced, each moved by up to
    ±`jitter` of the interval, alternately earlier and later, never closer than one second
    to the start and never past the span."""
    if count <= 0:
        return []
    if count == 1:
        return [start]
    rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
    interval = max(span / (count - 1), MIN_INTERVAL)
    times = []
    for i in range(count):
        offset = interval * i
        if 0 < i < count - 1:
            sign = 1 if i % 2 else -1
            offset += interval * (sign * jitter * rng.random())
        times.append(start + min(offset, span))
    return times


def next_hour(now: datetime) -> datetime:
    return hour_start(now) + timedelta(hours=1)
