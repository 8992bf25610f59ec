"""A fresh, migrated database for one benchmark run (SQLite in a temporary folder, or a new
PostgreSQL database made from the admin URL), dropped afterwards unless kept."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from proca_server.config import Settings
from proca_server.migrations.migrate import upgrade


@contextlib.asynccontextmanager
async def fresh_database(kind: str, pg_url: str, keep: bool, prefix: str) -> AsyncIterator[str]:
    """A migrated database of `kind` ("sqlite" or "postgresql"): its URL."""
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}_"))
        url = f"sqlite:///{folder / 'proca.db'}"
        try:
            await asyncio.to_thread(upgrade, Settings(DATABASE_URL=url).sqlalchemy_url)
            yield url
        finally:
            if keep:
                print(f"kept {folder / 'proca.db'}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
        return
    admin = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"{prefix}_{int(time.time())}_{os.getpid()}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(upgrade, Settings(DATABASE_URL=url).sqlalchemy_url)
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            conn = await asyncpg.connect(admin)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
