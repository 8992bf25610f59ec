"""`proca-server serve` in a subprocess, as an operator starts it, for the tests that need the
real server process: started with its output in a log file, waited for on /health, stopped."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.local_http import free_port

__all__ = ["free_port", "log_tail", "logged", "start_serve", "stop"]

START_SECONDS = 30


def log_tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


async def logged(*args: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """`proca-server ARGS` with `env` as its whole environment, its output appended to `log`."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proca_server",
            *args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def start_serve(
    env: dict[str, str], port: int, log: Path, *options: str
) -> asyncio.subprocess.Process:
    """`proca-server serve --port PORT OPTIONS` with `env` as its whole environment, its
    output appended to `log`; returned once it answers /health (it fails with the log's tail
    if it stops or does not answer within START_SECONDS)."""
    proc = await logged("serve", "--port", str(port), *options, env=env, log=log)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_SECONDS
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"proca-server serve stopped:\n{log_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health")).status_code == 200:
                    return proc
            await asyncio.sleep(0.1)
    await stop(proc, signal.SIGKILL)
    raise AssertionError(f"proca-server serve did not start:\n{log_tail(log)}")


async def stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    """Stop the process (SIGTERM, then SIGKILL after 20 s) and wait for it."""
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
