"""The socket under the RabbitMQ connection: frames written close together leave in one
send.

The AMQP client writes each frame set (a message's method, header and body) to its stream on
its own, and asyncio's socket transport sends each write at once: with a batch of a thousand
messages that is a thousand system calls, each one a packet through the TCP stack of both
ends (on loopback the sender's call also does the broker's receive; docs/benchmarks.md (13)).
`GatheringWriter` keeps writes and sends them together: a write waits up to `GATHER_SECONDS`
(1 ms) for others, or until `GATHER_BYTES` are kept (one loop turn would not do: the client's
channel lock lets one message through per turn). A batch leaves in a few large sends; `drain`
and `close` send what is kept first, so nothing the client waits for stays behind; a lone
frame (a heartbeat, an RPC) leaves up to a millisecond later than before.

`GatheringTransportFactory` opens the connection (TCP, or TLS for amqps:// with the client's
own SSL context) the way `asyncio.open_connection` does, with the writer above, and is given
to the client through its documented `transport_factory` parameter (`GatheringConnection`
passes it on, since aio-pika keeps only the parameters it knows)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aio_pika import RobustConnection
from aiormq.connection import SSLContextProvider, TransportFactory
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

# how long a write waits for others to go with it, and how much is kept at most
GATHER_SECONDS = 0.001
GATHER_BYTES = 256 * 1024
# what asyncio.open_connection uses for the reader's buffer
_READ_LIMIT = 2**16


class GatheringWriter(asyncio.StreamWriter):
    """A stream writer whose writes within `GATHER_SECONDS` of the first go out in one send."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.StreamReaderProtocol,
        reader: asyncio.StreamReader,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._kept: list[bytes] = []
        self._size = 0
        self._loop_of_writer = loop
        self.sends = 0  # how many sends the kept writes took (tests, benchmarks)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._kept:
            self._loop_of_writer.call_later(GATHER_SECONDS, self.send_kept)
        self._kept.append(bytes(data))
        self._size += len(data)
        if self._size >= GATHER_BYTES:
            self.send_kept()

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def send_kept(self) -> None:
        """Send what was written since the last send, in one write to the transport."""
        if not self._kept:
            return
        kept, self._kept, self._size = self._kept, [], 0
        if self.transport.is_closing():
            return  # as asyncio's transport does with a write after close
        self.sends += 1
        self.transport.write(kept[0] if len(kept) == 1 else b"".join(kept))

    async def drain(self) -> None:
        self.send_kept()
        await super().drain()

    def close(self) -> None:
        self.send_kept()
        super().close()


class GatheringTransportFactory(TransportFactory):
    """Opens the AMQP connection's socket with a `GatheringWriter` (the last one opened is
    `writer`: a robust connection opens a new one on each reconnection)."""

    def __init__(self) -> None:
        self.writer: GatheringWriter | None = None

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        provider: SSLContextProvider | None = kwargs.pop("ssl_context_provider", None)
        if url.host is None:
            raise AMQPConnectionError("the AMQP URL names no host")
        tls = url.scheme == "amqps"
        context: ssl.SSLContext | None = None
        if tls:
            # never plain text for amqps://, even without the client's context provider
            context = (
                ssl.create_default_context() if provider is None else await provider.get_context()
            )
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READ_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol,
                host=url.host,
                port=url.port or (5671 if tls else 5672),
                ssl=context,
                **kwargs,
            )
        except OSError as exc:
            # as the client's own factories do
            raise AMQPConnectionError(*exc.args) from exc
        self.writer = GatheringWriter(transport, protocol, reader, loop)
        return reader, self.writer


class GatheringConnection(RobustConnection):
    """aio-pika's robust connection, its socket opened by `GatheringTransportFactory`."""

    def __init__(self, url: URL, *args: Any, **kwargs: Any) -> None:
        super().__init__(url, *args, **kwargs)
        self.transport_factory = GatheringTransportFactory()
        self.kwargs["transport_factory"] = self.transport_factory
