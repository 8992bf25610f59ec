"""A real HTTP server on a loopback port, run inside the test's event loop, for tests that
need a peer to talk to (captcha verifiers, webhooks…)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from starlette.types import ASGIApp

# how often a test server looks whether it is told to stop, and whether it has stopped
TICK = 0.005


class QuickServer(uvicorn.Server):
    """uvicorn in the test's event loop, which stops as soon as it is told to (uvicorn's own
    loop looks at `should_exit` ten times a second, then waits another tenth of a second on
    the way out: a sixth of a second per test that serves something)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns the signals
        yield

    async def main_loop(self) -> None:
        ticks = 0
        while not await self.on_tick(ticks):
            ticks += 1
            await asyncio.sleep(TICK)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop listening, ask every connection to close once its response is out, and
        wait until they and the requests' tasks are done."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(TICK)
        for server in self.servers:
            await server.wait_closed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1; yields its base URL."""
    port = free_port()
    server = QuickServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn only exposes a flag
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
