"""A minimal HTTP/1.1 keep-alive client for load drivers written in Python.

httpx costs about a millisecond of CPU per request, which on a 2-core machine is as much as the
server's own work and caps a Python driver near 200 requests per second. This client sends
pre-encoded requests over a pool of keep-alive connections and parses only the status line,
Content-Length and the body: a few tens of microseconds per request. It speaks just enough
HTTP for proca-server's answers (Content-Length bodies, no chunked encoding)."""

from __future__ import annotations

import asyncio
import contextlib


class RawClient:
    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host, self.port = host, port
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.Queue()
        )
        for _ in range(connections):
            self._idle.put_nowait(None)  # opened on first use
        self._open: list[asyncio.StreamWriter] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body) of a POST; raises OSError / asyncio.IncompleteReadError when the
        connection fails (it is then replaced)."""
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        conn = await self._idle.get()
        try:
            if conn is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self._open.append(writer)
            else:
                reader, writer = conn
            writer.write(request)
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            answer = await reader.readexactly(length)
        except BaseException:
            self._idle.put_nowait(None)
            raise
        self._idle.put_nowait((reader, writer))
        return status, answer

    async def close(self) -> None:
        for writer in self._open:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
