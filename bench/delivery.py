"""What the load programs share about the pipeline's output: a consumer of an org's
`cus.N.deliver` queue that notes, per message, the request's send time (the wrk script's
stamp, `BENCH_STAMP=1`), the arrival time and the action id; the CPU cores used by the
server's processes, PostgreSQL, RabbitMQ, the driver and wrk over a phase; percentiles.

Used by bench/pipeline_load.py and bench/production.py."""

from __future__ import annotations

import array
import asyncio
import re
import time
from collections.abc import Mapping

import aiormq
import aiormq.abc
from bench.widget_load import cpu_by_name, cpu_seconds, machine_busy_seconds, process_tree

# the request's wall-clock time in ms, written into customFields by add_action_contact.lua
STAMP = re.compile(rb'"customFields":\{"t":([0-9.]+)')
ACTION_ID = re.compile(rb'"actionId":([0-9]+)')
ACK_EVERY = 50


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class DeliveryConsumer:
    """Consumes `queue` in this process: aiormq's channel directly (no message objects), the
    request's time read from the body with a regex, acknowledgements ACK_EVERY at a time. A
    light stand-in for the org's CRM, which would not run on this machine."""

    def __init__(self, amqp_url: str, queue: str) -> None:
        self.amqp_url, self.queue = amqp_url, queue
        self.sent = array.array("d")  # request's send time (s, epoch); nan without a stamp
        self.arrived = array.array("d")
        self.ids = array.array("q")
        self.distinct: set[int] = set()
        self._unacked = 0
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None

    async def start(self, limit: float = 30) -> None:
        """Connect and consume; waits (at most `limit` s) for the queue to be declared."""
        self._connection = await aiormq.connect(self.amqp_url)
        deadline = time.monotonic() + limit
        while True:
            channel = await self._connection.channel()
            try:
                await channel.queue_declare(self.queue, passive=True)
                break
            except aiormq.exceptions.ChannelNotFoundEntity:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.queue} never appeared (no topology)") from None
                await asyncio.sleep(0.1)
        await channel.basic_qos(prefetch_count=1000)
        self._channel = channel
        await channel.basic_consume(self.queue, self._on_message)

    async def _on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        arrived = time.time()
        stamp = STAMP.search(message.body)
        found = ACTION_ID.search(message.body)
        action_id = int(found.group(1)) if found else -1
        self.sent.append(float(stamp.group(1)) / 1000 if stamp else float("nan"))
        self.arrived.append(arrived)
        self.ids.append(action_id)
        self.distinct.add(action_id)
        self._unacked += 1
        if self._unacked >= ACK_EVERY:
            self._unacked = 0
            assert self._channel is not None and message.delivery_tag is not None
            await self._channel.basic_ack(message.delivery_tag, multiple=True)

    @property
    def count(self) -> int:
        """Distinct actions arrived so far."""
        return len(self.distinct)

    async def wait_for(self, actions: int, limit: float) -> bool:
        """Wait (at most `limit` s) until `actions` distinct actions have arrived."""
        deadline = time.monotonic() + limit
        while self.count < actions:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    def window(self, start: float, end: float = float("inf")) -> tuple[list[float], int, int]:
        """The messages of requests sent in [start, end): their latencies (s, request to
        arrival), the distinct actions among them and the number of messages."""
        latencies, ids = [], set()
        for sent, arrived, action_id in zip(self.sent, self.arrived, self.ids, strict=True):
            if start <= sent < end:
                latencies.append(arrived - sent)
                ids.add(action_id)
        return latencies, len(ids), len(latencies)

    def last_arrival(self, start: float, end: float = float("inf")) -> float | None:
        """When the last message of a request sent in [start, end) arrived."""
        times = [a for s, a in zip(self.sent, self.arrived, strict=True) if start <= s < end]
        return max(times) if times else None

    async def close(self) -> None:
        if self._channel is not None and self._unacked:
            await self._channel.basic_ack(0, multiple=True)
        if self._connection is not None:
            await self._connection.close()


class CpuWatch:
    """CPU cores used, between `begin` and `end`, by each group of processes (each root with
    its descendants), PostgreSQL, RabbitMQ, this driver (the consumer), wrk and the whole
    machine; "other" is the rest (other people's work disturbs a figure above ~0.3)."""

    def __init__(self, groups: Mapping[str, list[int]]) -> None:
        self.groups = dict(groups)

    def _sample(self) -> dict[str, float]:
        sample = {
            name: sum(cpu_seconds(p) for root in roots for p in process_tree(root))
            for name, roots in self.groups.items()
        }
        sample.update(
            postgres=cpu_by_name(("postgres",)),
            rabbitmq=cpu_by_name(("beam.smp",)),
            driver=time.process_time(),
            machine=machine_busy_seconds(),
            wall=time.monotonic(),
        )
        return sample

    def begin(self) -> None:
        self._start = self._sample()

    def end(self, wrk_cpu: float) -> dict[str, float]:
        now = self._sample()
        wall = now["wall"] - self._start["wall"]
        cores = {k: round((now[k] - self._start[k]) / wall, 2) for k in now if k != "wall"}
        cores["wrk"] = round(wrk_cpu / wall, 2)
        accounted = [*self.groups, "postgres", "rabbitmq", "driver", "wrk"]
        cores["other"] = round(cores["machine"] - sum(cores[k] for k in accounted), 2)
        return cores
