"""The one way to try again: exponential backoff with jitter, on `tenacity`, and every place's
schedule named here.

After the n-th failure in a row the wait is drawn between half and the whole of
`first * 2**(n-1)`, capped at `cap`: processes that failed together (a broker or a database
that went away) do not come back together, and no retry comes much sooner than its schedule
says. A schedule with `attempts` gives up after that many tries in all and raises the last
failure; without, it tries until it succeeds or its task is cancelled. A cancellation is never
retried and stops a wait at once. Log lines name what failed and the exception's type, never
its message (which may carry what it was about)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    after_nothing,
    retry_if_exception,
    stop_after_attempt,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    first: float  # the longest first wait, in seconds
    cap: float  # the longest wait
    attempts: int | None = None  # tries in all; None: until it succeeds

    def starting_at(self, first: float) -> Backoff:
        """The same schedule from another first wait (a loop whose period is a setting)."""
        return replace(self, first=first)

    def wait(self) -> wait_base:
        # half fixed, half random: [e/2, e] for e = min(first * 2**(n-1), cap)
        half, half_cap = self.first / 2, self.cap / 2
        return wait_exponential(multiplier=half, max=half_cap) + wait_random_exponential(
            multiplier=half, max=half_cap
        )

    def retrying(
        self,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        *,
        when: Callable[[BaseException], bool] | None = None,
        log: logging.Logger,
        what: str,
        level: int = logging.WARNING,
        describe: Callable[[BaseException], str] | None = None,
        sleep: Sleep | None = None,
        until: Callable[[], bool] | None = None,
        after_failure: Callable[[RetryCallState], None] | None = None,
    ) -> AsyncRetrying:
        """`async for attempt in backoff.retrying(...): with attempt: ...` — tries again on
        `retry_on` (those of them `when` accepts; never on a cancellation, nor on an error a
        driver raised for one),
        logging `what` at `level` before each wait, with the failure's type (or what
        `describe` says of it, for errors whose messages carry nothing they must not: the
        broker's). `sleep` replaces the wait (one that
        returns early when its loop stops, say), `until` stops trying once it holds (the
        last failure is raised), `after_failure` is told of each failure in place of the
        log line."""
        stop: stop_base = stop_after_attempt(self.attempts) if self.attempts else stop_never
        if until is not None:
            stop = stop | _StopWhen(until)
        return AsyncRetrying(
            sleep=sleep or asyncio.sleep,
            wait=self.wait(),
            stop=stop,
            retry=retry_if_exception(
                lambda exc: (
                    isinstance(exc, retry_on) and (when is None or when(exc)) and not cancelling()
                )
            ),
            before_sleep=None
            if after_failure
            else _log_before_sleep(log, what, level, describe or _type_name),
            after=after_failure or after_nothing,
            reraise=True,
        )


class _StopWhen(stop_base):
    def __init__(self, done: Callable[[], bool]) -> None:
        self.done = done

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.done()


def cancelling() -> bool:
    """Whether the current task is being cancelled (asyncpg and aio-pika may turn a
    cancellation into an error of their own)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _type_name(failure: BaseException) -> str:
    return type(failure).__name__


def _log_before_sleep(
    log: logging.Logger, what: str, level: int, describe: Callable[[BaseException], str]
) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        log.log(
            level,
            "%s failed (%s, %d in a row); trying again in %.2f s",
            what,
            describe(failure) if failure is not None else "?",
            state.attempt_number,
            state.next_action.sleep if state.next_action is not None else 0.0,
        )

    return before_sleep


# -- the schedules ---------------------------------------------------------------------------

# the pubsub's LISTEN connection to PostgreSQL, until it is back
PUBSUB_LISTENER = Backoff(first=0.2, cap=5.0)
# the pipeline's broker connection at start, until the broker answers
BROKER_CONNECT = Backoff(first=1.0, cap=10.0)
# a publish refused because RabbitMQ's client is reopening the channel (nothing was sent)
CHANNEL_REOPEN = Backoff(first=0.05, cap=0.1, attempts=3)
# a campaign's reconciliation that met a concurrent signature (serialization, deadlock)
COUNTER_RECONCILE = Backoff(first=0.05, cap=0.2, attempts=5)
# the counters' compaction and reconciliation rounds after a failure (the first wait is twice
# the round's period)
COUNTER_ROUNDS = Backoff(first=1.0, cap=60.0)
