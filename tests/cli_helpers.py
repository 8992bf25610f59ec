"""Running the `proca-server` command against the test's database: in a subprocess as a user
would (`cli`, `cli_each_step`), or through its own entry point in this process (`operator`)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from proca_server.cli import main
from proca_server.config import get_settings


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proca_server",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def env(database_url: str, tmp_path: Path, session: AsyncSession) -> dict[str, str]:
    # `session` makes the test empty the tables afterwards.
    return {"DATABASE_URL": database_url, "PROCA_DATA_DIR": str(tmp_path), "ORG_NAME": "instance"}


EACH_STEP = (
    "import proca_server.kit.progress as progress\n"
    "progress.PLAIN_EVERY = 0\n"
    "{setup}\n"
    "from proca_server.cli import main\n"
    "main()\n"
)


async def cli_each_step(*args: str, env: dict[str, str], setup: str = "") -> tuple[int, str, str]:
    """`proca-server ARGS` printing a progress line at every step; `setup` runs first."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EACH_STEP.format(setup=setup),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


runner = CliRunner()


def run_operator(
    args: tuple[str, ...], env: dict[str, str], stdin: str | None = None
) -> tuple[int, str, str]:
    saved = sys.argv
    get_settings.cache_clear()
    try:
        with runner.isolation(input=stdin, env=env) as (out, err, _):
            sys.argv = ["proca-server", *args]
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            return code, out.getvalue().decode(), err.getvalue().decode()
    finally:
        sys.argv = saved
        get_settings.cache_clear()


async def operator(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> tuple[int, str, str]:
    """`proca-server ARGS` as `main` runs it (one-line errors included), `stdin` its input:
    (exit code, stdout, stderr). In a thread: the command runs its own event loop."""
    return await asyncio.to_thread(run_operator, args, env, stdin)


async def fresh(session: AsyncSession) -> None:
    """End the read snapshot to see what the command wrote; the objects made before keep
    the values they had (detached), rows are read again."""
    session.expunge_all()
    await session.rollback()


def one_line_error(rc: int, err: str, *words: str) -> None:
    assert rc == 1, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)
