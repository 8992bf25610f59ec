"""The one cache (kit/cache.py) and the one retry policy (kit/retry.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proca_server.kit import retry
from proca_server.kit.cache import Cache
from proca_server.kit.retry import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_served_while_its_age_is_under_the_ttl() -> None:
    clock = Clock()
    cache: Cache[str, int] = Cache(10, 2.0, timer=clock)
    cache.put("a", 1)
    clock.now += 1.5
    assert cache.get("a") == 1
    assert cache.get_aged("a") == (1, 1.5)
    clock.now += 0.5
    assert cache.get("a") is None and cache.get_aged("a") is None


def test_the_age_counts_from_the_time_a_load_started() -> None:
    clock = Clock()
    cache: Cache[str, int] = Cache(10, 2.0, timer=clock)
    cache.put("a", 1, at=clock.now - 1.9)  # a load that took 1.9 s
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None
    # a read may ask for fresher than the ttl
    cache.put("b", 2, at=clock.now - 0.5)
    assert cache.get("b", max_age=0.4) is None and cache.get("b", max_age=0.6) == 2
    assert cache.stored_at("b") == clock.now - 0.5


def test_a_full_cache_drops_the_entry_stored_longest_ago_first() -> None:
    clock = Clock()
    for cache in (Cache[int, int](3), Cache[int, int](3, 60.0, timer=clock)):
        for n in range(3):
            cache.put(n, n)
        assert cache.get(0) == 0  # reading it does not make it younger
        cache.put(3, 3)
        assert len(cache) == 3 and 0 not in cache and 1 in cache and cache.get(3) == 3
        cache.pop(1)
        assert 1 not in cache and len(cache) == 2
        cache.clear()
        assert len(cache) == 0 and cache.get(3) is None


def test_a_weighed_cache_is_bounded_in_entries_and_in_weight() -> None:
    clock = Clock()
    cache: Cache[int, str] = Cache(3, 10.0, weigh=len, max_weight=10, timer=clock)
    assert not cache.put(0, "x" * 11)  # heavier than the whole cache: not kept
    assert len(cache) == 0
    for n in range(4):
        assert cache.put(n, "xx")
    assert len(cache) == 3 and cache.weight == 6  # the entry bound
    cache.put(9, "x" * 9)
    assert cache.weight <= 10 and cache.get(9) == "x" * 9  # the weight bound
    clock.now += 10
    assert len(cache) == 0 and cache.weight == 0


def test_the_backoff_grows_with_jitter_up_to_its_cap() -> None:
    policy = Backoff(first=1.0, cap=8.0)
    wait = policy.wait()

    class State:
        attempt_number = 0

    state = State()
    for failures, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8), (4, 8)], 1):
        state.attempt_number = failures
        delays = {wait(state) for _ in range(50)}  # type: ignore[arg-type]
        assert all(low <= d <= high for d in delays)
        assert len(delays) > 1  # jittered
    assert policy.starting_at(3.0) == Backoff(first=3.0, cap=8.0)


async def test_a_limited_policy_retries_what_it_names_then_raises_the_last_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise OSError(f"secret detail {calls}")

    log = logging.getLogger("proca_server.test.retry")
    with pytest.raises(OSError, match="secret detail 3"), caplog.at_level(logging.WARNING):
        async for attempt in Backoff(first=0.001, cap=0.002, attempts=3).retrying(
            OSError, log=log, what="flaky work"
        ):
            with attempt:
                await flaky()
    assert calls == 3
    lines = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert len(lines) == 2 and lines[0].startswith("flaky work failed (OSError, 1 in a row)")
    assert not any("secret" in line for line in lines)  # the type, never the message


async def test_other_errors_and_rejected_ones_are_not_retried() -> None:
    calls = 0

    async def once(error: Exception) -> None:
        nonlocal calls
        calls += 1
        raise error

    log = logging.getLogger("proca_server.test.retry")
    policy = Backoff(first=0.001, cap=0.002)
    for error in (ValueError("no"), OSError(1, "refused")):
        calls = 0
        with pytest.raises(type(error)):
            async for attempt in policy.retrying(
                OSError, when=lambda exc: exc.args[0] != 1, log=log, what="work"
            ):
                with attempt:
                    await once(error)
        assert calls == 1


async def test_an_endless_policy_stops_at_once_when_its_task_is_cancelled() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        log = logging.getLogger("proca_server.test.retry")
        async for attempt in Backoff(first=30.0, cap=60.0).retrying(OSError, log=log, what="work"):
            with attempt:
                started.set()
                raise OSError("down")

    task = asyncio.create_task(forever())
    await started.wait()
    await asyncio.sleep(0.01)  # now waiting 15 to 30 s
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)


async def test_an_error_raised_while_cancelling_is_not_retried() -> None:
    calls = 0

    async def driver() -> None:
        nonlocal calls
        log = logging.getLogger("proca_server.test.retry")
        async for attempt in Backoff(first=0.001, cap=0.002).retrying(
            OSError, log=log, what="work"
        ):
            with attempt:
                calls += 1
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    raise OSError("connection closed") from None  # as a driver may

    task = asyncio.create_task(driver())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(OSError):
        await task
    assert calls == 1


async def test_until_stops_trying_and_sleep_replaces_the_wait() -> None:
    stop = asyncio.Event()
    waits: list[float] = []

    async def pause(delay: float) -> None:
        waits.append(delay)
        if len(waits) == 2:
            stop.set()

    log = logging.getLogger("proca_server.test.retry")
    with pytest.raises(OSError):
        async for attempt in Backoff(first=4.0, cap=8.0).retrying(
            OSError, log=log, what="work", sleep=pause, until=stop.is_set
        ):
            with attempt:
                raise OSError("down")
    assert len(waits) == 2 and 2 <= waits[0] <= 4 and 4 <= waits[1] <= 8


def test_every_schedule_is_named_in_one_place() -> None:
    schedules = {k: v for k, v in vars(retry).items() if isinstance(v, Backoff)}
    assert set(schedules) == {
        "PUBSUB_LISTENER",
        "BROKER_CONNECT",
        "CHANNEL_REOPEN",
        "COUNTER_RECONCILE",
        "COUNTER_ROUNDS",
    }
    assert all(0 < s.first <= s.cap for s in schedules.values())
