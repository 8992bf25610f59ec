"""The gathering writer under the RabbitMQ connection (broker/transport.py), against a real
socket: a local TCP server (and a TLS one, for amqps://) that records what arrives."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiormq.connection import SSLCerts, SSLContextProvider
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from proca_server.broker import transport
from proca_server.broker.transport import GatheringTransportFactory, GatheringWriter
from tests.tls import make_tls_files


@dataclass
class Peer:
    """A server that reads everything sent to it."""

    port: int
    received: bytearray = field(default_factory=bytearray)
    reads: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, size: int) -> bytes:
        async with asyncio.timeout(5):
            while len(self.received) < size:
                self.arrived.clear()
                await self.arrived.wait()
        return bytes(self.received)


async def serve(context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, Peer]:
    peer = Peer(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(1 << 20):
            peer.received += chunk
            peer.reads += 1
            peer.arrived.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    peer.port = server.sockets[0].getsockname()[1]
    return server, peer


@pytest.fixture
async def tcp() -> AsyncIterator[Peer]:
    server, peer = await serve()
    async with server:
        yield peer


async def connect(url: str, **kwargs: Any) -> GatheringWriter:
    factory = GatheringTransportFactory()
    _, writer = await factory.create(URL(url), **kwargs)
    assert isinstance(writer, GatheringWriter) and factory.writer is writer
    return writer


def provider(context: ssl.SSLContext | None = None) -> SSLContextProvider:
    return SSLContextProvider(
        ssl_context=context,
        ssl_certs=SSLCerts(None, None, None, None, None, True),
        loop=asyncio.get_running_loop(),
    )


async def test_writes_close_together_leave_in_one_send(tcp: Peer) -> None:
    writer = await connect(f"amqp://127.0.0.1:{tcp.port}/", ssl_context_provider=provider())
    frames = [b"frame-%04d;" % i for i in range(300)]
    for frame in frames:
        writer.write(frame)
    assert writer.sends == 0  # kept until the gathering time is up
    assert await tcp.until(len(b"".join(frames))) == b"".join(frames)
    assert writer.sends == 1
    writer.close()


async def test_drain_and_close_send_what_is_kept_at_once(
    tcp: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a gathering time no test waits for: only drain and close can send
    monkeypatch.setattr(transport, "GATHER_SECONDS", 60.0)
    writer = await connect(f"amqp://127.0.0.1:{tcp.port}/")
    writer.write(b"rpc")
    await writer.drain()
    assert writer.sends == 1
    assert await tcp.until(3) == b"rpc"
    writer.write(b"close-ok")
    writer.close()
    await writer.wait_closed()
    assert await tcp.until(11) == b"rpcclose-ok"
    assert writer.sends == 2


async def test_a_large_batch_goes_out_once_the_bound_is_reached(
    tcp: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "GATHER_SECONDS", 60.0)
    writer = await connect(f"amqp://127.0.0.1:{tcp.port}/")
    chunk = b"x" * 1000
    n = -(-transport.GATHER_BYTES // len(chunk))  # the write that reaches the bound
    for _ in range(n - 1):
        writer.write(chunk)
    assert writer.sends == 0
    writer.write(chunk)
    assert writer.sends == 1
    assert await tcp.until(n * len(chunk)) == chunk * n
    writer.close()


async def test_writes_after_close_are_dropped_as_the_transport_drops_them(tcp: Peer) -> None:
    writer = await connect(f"amqp://127.0.0.1:{tcp.port}/")
    writer.write(b"before")
    writer.close()
    await writer.wait_closed()
    writer.write(b"after")
    await asyncio.sleep(transport.GATHER_SECONDS * 5)
    assert await tcp.until(6) == b"before"
    assert writer.sends == 1


async def test_amqps_connects_with_the_clients_tls_context(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    server, peer = await serve(files.server_context())
    async with server:
        writer = await connect(
            f"amqps://127.0.0.1:{peer.port}/",
            ssl_context_provider=provider(files.client_context()),
        )
        assert writer.get_extra_info("ssl_object") is not None
        writer.write(b"over ")
        writer.write(b"tls")
        assert await peer.until(8) == b"over tls"
        writer.close()
        # a certificate the client does not trust is refused
        with pytest.raises(AMQPConnectionError) as refused:
            await connect(
                f"amqps://127.0.0.1:{peer.port}/",
                ssl_context_provider=provider(ssl.create_default_context()),
            )
        assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)


async def test_a_refused_connection_is_the_clients_connection_error() -> None:
    server, peer = await serve()
    server.close()
    await server.wait_closed()
    with pytest.raises(AMQPConnectionError):
        await connect(f"amqp://127.0.0.1:{peer.port}/")
