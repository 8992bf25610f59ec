"""The `proca-server` command, run as a user would run it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.permissions import ADMIN
from proca_server.models import Org, PublicKey, User, UserToken
from tests.cli_helpers import cli, env
from tests.served import free_port, start_serve, stop

__all__ = ["env"]  # the fixture, from tests/cli_helpers.py

pytestmark = pytest.mark.slow  # the proca-server command in a subprocess


async def _counts(session: AsyncSession) -> tuple[int, int, int]:
    await session.rollback()  # end the read snapshot, see fresh data
    orgs = await session.scalar(select(func.count()).select_from(Org))
    keys = await session.scalar(select(func.count()).select_from(PublicKey))
    users = await session.scalar(select(func.count()).select_from(User))
    return orgs or 0, keys or 0, users or 0


async def test_setup_is_idempotent(env: dict[str, str], session: AsyncSession) -> None:
    env = {**env, "ADMIN_EMAIL": "boss@example.org"}
    rc, out, _ = await cli("setup", env=env)
    assert rc == 0, out
    assert "instance org instance: created" in out
    assert "admin boss@example.org created, password:" in out
    first = await _counts(session)
    assert first == (1, 1, 1)
    key = (await session.execute(select(PublicKey))).scalar_one()
    assert key.active and key.private is not None and len(key.public) == 32

    rc, out, _ = await cli("setup", env=env)
    assert rc == 0
    assert "present" in out and "password" not in out
    assert await _counts(session) == first


async def test_user_create_and_token(env: dict[str, str], session: AsyncSession) -> None:
    rc, out, err = await cli("user", "create", "a@example.org", "--admin", env=env)
    assert rc == 0, err
    assert "password: " in out
    user = (await session.execute(select(User))).scalar_one()
    assert user.perms == ADMIN

    rc, out, _ = await cli("user", "token", "a@example.org", env=env)
    first = out.strip().splitlines()[-1]
    assert rc == 0 and first.startswith("API-")
    rc, out, _ = await cli("user", "token", "A@EXAMPLE.ORG", env=env)
    second = out.strip().splitlines()[-1]
    assert second.startswith("API-") and second != first
    await session.rollback()  # end the read snapshot, see fresh data
    assert await session.scalar(select(func.count()).select_from(UserToken)) == 1


async def test_user_mistakes_are_one_line_errors(env: dict[str, str]) -> None:
    cases = [
        (("user", "create", "not-an-email"), "email"),
        (("user", "create", "b@example.org", "--password", "short"), "password"),
        (("user", "token", "nobody@example.org"), "no user"),
    ]
    for args, word in cases:
        rc, _out, err = await cli(*args, env=env)
        assert rc == 1, args
        assert "Traceback" not in err
        assert err.startswith("error: ") and err.count("\n") == 1 and word in err
    rc, _, _ = await cli("user", "create", "dup@example.org", env=env)
    assert rc == 0
    rc, _, err = await cli("user", "create", "DUP@example.org", env=env)
    assert rc == 1 and "already been taken" in err


async def test_unmigrated_or_unreachable_database(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}", "PROCA_DATA_DIR": str(tmp_path)}
    for args in (("user", "token", "a@example.org"), ("serve",)):
        rc, _, err = await cli(*args, env=env)
        assert rc == 1
        assert err == "error: the database is not migrated: run `proca-server setup`\n"
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    rc, _, err = await cli("user", "token", "a@example.org", env=env)
    assert rc == 1 and err.startswith("error: database unreachable") and "Traceback" not in err
    env["DATABASE_URL"] = "mysql://h/db"
    rc, _, err = await cli("setup", env=env)
    assert rc == 1 and "DATABASE_URL" in err and "Traceback" not in err


async def test_help_everywhere(tmp_path: Path) -> None:
    env = {"PROCA_DATA_DIR": str(tmp_path)}
    for args in (
        (),
        ("setup",),
        ("serve",),
        ("schema",),
        ("db",),
        ("db", "upgrade"),
        ("user",),
        ("user", "create"),
        ("user", "token"),
    ):
        rc, out, err = await cli(*args, "--help", env=env)
        assert rc == 0, (args, err)
        assert "Usage" in out


async def test_schema_matches_the_committed_sdl(repo_root: Path, tmp_path: Path) -> None:
    rc, out, _ = await cli("schema", env={"PROCA_DATA_DIR": str(tmp_path)})
    assert rc == 0
    assert out == (repo_root / "schema.graphql").read_text(), (
        "schema.graphql is stale: run `proca-server schema > schema.graphql`"
    )


async def test_setup_user_token_serve_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    """The foundation's acceptance path, on the real server process."""
    assert (await cli("setup", env=env))[0] == 0
    assert (await cli("user", "create", "a@example.org", "--admin", env=env))[0] == 0
    rc, out, _ = await cli("user", "token", "a@example.org", env=env)
    assert rc == 0
    token = out.strip().splitlines()[-1]
    log = tmp_path / "serve.log"
    proc = await start_serve({**os.environ, **env}, port := free_port(), log, "--workers", "2")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            headers = {"Authorization": f"Bearer {token}"}
            query = "{ currentUser { email } }"
            post = await client.post("/api", json={"query": query}, headers=headers)
            get = await client.get("/api", params={"query": query}, headers=headers)
            for response in (post, get):
                assert response.status_code == 200
                assert response.json() == {"data": {"currentUser": {"email": "a@example.org"}}}
    finally:
        await stop(proc)


async def _serve_and_log(env: dict[str, str], log: Path, requests: int) -> str:
    """What `serve --workers 2` logs while answering `requests` GET /health."""
    proc = await start_serve({**os.environ, **env}, port := free_port(), log, "--workers", "2")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(requests):
                assert (await client.get("/health")).status_code == 200
    finally:
        await stop(proc)
    return await asyncio.to_thread(log.read_text)


async def test_access_log_follows_the_setting(env: dict[str, str], tmp_path: Path) -> None:
    assert (await cli("setup", env=env))[0] == 0
    # as deployed: the server configures its logging itself (not under PROCA_ENV=test)
    shown = {**env, "PROCA_ENV": "dev", "LOG_LEVEL": "info"}
    logged = await _serve_and_log(shown, tmp_path / "shown.log", 5)
    assert logged.count('"GET /health HTTP/1.1" 200') >= 5
    quiet = await _serve_and_log({**shown, "ACCESS_LOG": "false"}, tmp_path / "quiet.log", 5)
    assert "Application startup complete" in quiet  # the server still logs at INFO
    assert "GET /health" not in quiet


async def test_setup_creates_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "not" / "yet"
    rc, out, err = await cli("setup", env={"PROCA_DATA_DIR": str(data), "DATABASE_URL": ""})
    assert rc == 0, err
    assert (data / "proca.db").exists()
    assert "instance org instance: created" in out


async def test_production_without_secrets_stops_with_one_line(tmp_path: Path) -> None:
    env = {
        "PROCA_ENV": "prod",
        "PROCA_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "",
        "SECRET_KEY_BASE": "",
        "FINGERPRINT_SEED": "",
    }
    rc, _, err = await cli("serve", env=env)
    assert rc == 1
    assert err == (
        "error: missing required setting(s) in production: "
        "DATABASE_URL, SECRET_KEY_BASE, FINGERPRINT_SEED\n"
    )


def test_every_command_documents_its_arguments_and_only_groups_offer_subcommands() -> None:
    import typer

    from proca_server.cli import app

    def walk(command: Any, path: str) -> list[tuple[str, Any]]:
        found = [(path, command)]
        for name, sub in (getattr(command, "commands", None) or {}).items():
            found += walk(sub, f"{path} {name}")
        return found

    commands = walk(typer.main.get_command(app), "proca-server")
    assert len(commands) > 15
    for path, command in commands:
        if getattr(command, "commands", None):
            continue
        pieces = " ".join(
            command.collect_usage_pieces(
                command.make_context(path, ["--help"], resilient_parsing=True)
            )
        )
        assert "COMMAND" not in pieces, f"{path} offers subcommands it has not"
        assert command.help, f"{path} has no help"
        for param in command.params:
            if param.param_type_name == "argument":
                assert getattr(param, "help", None), f"{path}: argument {param.name} has no help"


async def test_a_token_kept_in_a_file_stays_the_same_across_runs(
    env: dict[str, str], tmp_path: Path, session: AsyncSession
) -> None:
    rc, _, err = await cli("user", "create", "keep@example.org", "--admin", env=env)
    assert rc == 0, err
    kept = tmp_path / "data" / "admin-token"
    rc, first, err = await cli("user", "token", "keep@example.org", "--file", str(kept), env=env)
    assert rc == 0, err
    rc, second, err = await cli("user", "token", "keep@example.org", "--file", str(kept), env=env)
    assert rc == 0, err
    token = first.strip().splitlines()[-1]
    assert second.strip().splitlines()[-1] == token
    assert kept.read_text().strip() == token
    assert kept.stat().st_mode & 0o777 == 0o600
    # a token printed without --file replaces the others; the file then gets a new one
    rc, _, err = await cli("user", "token", "keep@example.org", env=env)
    assert rc == 0, err
    rc, third, err = await cli("user", "token", "keep@example.org", "--file", str(kept), env=env)
    assert rc == 0, err
    renewed = third.strip().splitlines()[-1]
    assert renewed != token and kept.read_text().strip() == renewed


async def test_serve_without_a_database_says_so_in_one_line_and_creates_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "fresh"
    env = {"PROCA_DATA_DIR": str(data_dir), "DATABASE_URL": ""}
    for command in (("serve",), ("worker",)):
        rc, _, err = await cli(*command, env=env)
        assert rc == 1
        assert err.strip().count("\n") == 0, err
        assert "run `proca-server setup` first" in err
        assert not data_dir.exists()


async def test_serve_on_a_port_in_use_says_so_in_one_line(env: dict[str, str]) -> None:
    rc, _, err = await cli("setup", env=env)
    assert rc == 0, err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, _, err = await cli("serve", "--port", str(port), env=env)
    assert rc == 1
    assert err.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is in use"


async def test_a_reader_that_stops_early_ends_the_command_quietly(
    env: dict[str, str], session: AsyncSession
) -> None:
    """`proca-server audit --json | head -1`: the pipe closes while the command still writes;
    it stops with status 1 and says nothing (no "database unreachable", no traceback)."""
    from proca_server.models import AuditLog

    session.add_all(
        AuditLog(
            actor_id="cli", resource="keys.generate", resource_id="1", changeset={"n": "x" * 200}
        )
        for _ in range(1_000)
    )
    await session.commit()

    def head_1() -> tuple[bytes, int, bytes]:
        # `... | head -1`: read one line, then close the pipe while the command still writes
        command = [sys.executable, "-m", "proca_server", "audit", "--json", "--limit", "1000"]
        with subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline()
            proc.stdout.close()
            err = proc.stderr.read()
            return first, proc.wait(timeout=60), err

    first, status, err = await asyncio.wait_for(asyncio.to_thread(head_1), timeout=120)
    assert first.startswith(b"{")
    assert status == 1
    assert err == b""
