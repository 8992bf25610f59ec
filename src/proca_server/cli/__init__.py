"""The `proca-server` command."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server import db, error_reporting
from proca_server.action.export_cli import export
from proca_server.audit.cli import audit
from proca_server.broker.cli import queue_app
from proca_server.campaign.cli import campaigns_app
from proca_server.command import in_transaction, run, settings
from proca_server.config import ConfigError, Settings
from proca_server.eci.cli import eci_app
from proca_server.email.cli import reminders
from proca_server.email.probe_cli import email_app
from proca_server.errors import ProcaError, UserInputError
from proca_server.key.cli import keys_app
from proca_server.kit.extras import MissingExtra
from proca_server.kit.logs import configure_logging
from proca_server.mtt.cli import mtt_app
from proca_server.org.cli import orgs_app
from proca_server.processing.requeue_cli import requeue_app
from proca_server.retention.cli import retention
from proca_server.user.cli import register as register_user_commands

app = typer.Typer(
    help="proca-server: a backend for online advocacy campaigns.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(
    help="Users: accounts, API tokens, instance admins, org memberships.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(queue_app, name="queue")
app.add_typer(requeue_app)
app.command("reminders")(reminders)
app.add_typer(mtt_app, name="mtt")
app.command("retention")(retention)
app.add_typer(campaigns_app, name="campaigns")
app.command("audit")(audit)
app.add_typer(eci_app, name="eci")
app.command("export")(export)
app.add_typer(keys_app, name="keys")
app.add_typer(orgs_app, name="orgs")
app.add_typer(email_app, name="email")
register_user_commands(user_app)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from proca_server.migrations.migrate import upgrade

    upgrade(settings().sqlalchemy_url)
    typer.echo("database is up to date")


@app.command()
def setup() -> None:
    """Migrate, create the instance org and its key pair, and the ADMIN_EMAIL admin.

    Safe to run again: what exists is left as it is."""
    from proca_server.migrations.migrate import upgrade
    from proca_server.org.service import ensure_instance_org
    from proca_server.user import repository
    from proca_server.user.service import create_user

    s = settings()
    upgrade(s.sqlalchemy_url)

    async def work(session: AsyncSession) -> list[str]:
        lines = []
        result = await ensure_instance_org(session, s.org_name)
        lines.append(
            f"instance org {result.org.name}: {'created' if result.created_org else 'present'}"
        )
        lines.append(f"instance sign key: {'created' if result.created_key else 'present'}")
        if s.admin_email and await repository.get_user_by_email(session, s.admin_email) is None:
            created = await create_user(session, s.admin_email, admin=True)
            if result.org.email_from is None:
                result.org.email_from = created.user.email
            lines.append(
                f"admin {created.user.email} created, password: {created.generated_password}"
            )
        return lines

    for line in run(in_transaction(s, work)):
        typer.echo(line)


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="The user's email address (the login).")],
    password: Annotated[
        str | None, typer.Option(help="Password; a strong one is generated when omitted.")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give instance admin rights.")] = False,
) -> None:
    """Create a user."""
    from proca_server.user.service import create_user

    async def work(session: AsyncSession) -> tuple[str, str | None]:
        created = await create_user(session, email, password=password, admin=admin)
        return created.user.email, created.generated_password

    created_email, generated = run(in_transaction(settings(), work))
    typer.echo(f"user {created_email} created{' (admin)' if admin else ''}")
    if generated:
        typer.echo(f"password: {generated}")


@user_app.command("token")
def user_token(
    email: Annotated[str, typer.Argument(help="The user's email address.")],
    file: Annotated[
        Path | None,
        typer.Option(
            help="Keep the token in this file (mode 600): print the one it holds while it is "
            "still valid for the user, else a new one, written there. Other tokens of the "
            "user stay valid.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Print an API token for the user (last line): a new one, replacing their older tokens,
    unless --file keeps one across runs."""
    from proca_server.user import repository
    from proca_server.user.service import get_user_by_api_token, reset_api_token

    kept = file.read_text().strip() if file is not None and file.is_file() else None

    async def work(session: AsyncSession) -> str:
        user = await repository.get_user_by_email(session, email)
        if user is None:
            raise UserInputError(f"no user with email {email}")
        if kept:
            owner = await get_user_by_api_token(session, kept)
            if owner is not None and owner.id == user.id:
                return kept
        return await reset_api_token(session, user, keep_others=file is not None)

    token = run(in_transaction(settings(), work))
    if file is not None and token != kept:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.touch(mode=0o600, exist_ok=True)
        file.chmod(0o600)
        file.write_text(token + "\n")
    typer.echo(token)


def require_database(s: Settings) -> None:
    """Refuse, before anything is created, to open a SQLite database that does not exist."""
    missing = db.missing_sqlite_file(s)
    if missing is not None:
        raise UserInputError(f"no database at {missing}: run `proca-server setup` first")


def require_free_port(host: str, port: int) -> None:
    """One line instead of the server's traceback when the address is taken."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UserInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise UserInputError(f"cannot listen on {host}:{port}: {reason}") from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [LISTEN_IP].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [PORT].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP server."""
    import uvicorn

    from proca_server.migrations.migrate import is_up_to_date

    s = settings()
    require_database(s)

    async def check() -> bool:
        engine = db.create_engine(s)
        try:
            return await is_up_to_date(engine)
        finally:
            await engine.dispose()

    if not run(check()):
        raise UserInputError("the database is not migrated: run `proca-server setup`")
    host, port = host or s.listen_ip, port or s.port
    require_free_port(host, port)
    configure_logging(s.log_level, json_lines=s.production, access_log=s.access_log)
    uvicorn.run(
        "proca_server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=s.log_level.lower(),
        log_config=None,
        access_log=s.access_log,
        proxy_headers=True,
        ws_max_size=s.max_body_bytes,
        # accepts the empty Sec-WebSocket-Protocol header some Phoenix clients send
        ws="proca_server.graphql.socket:PhoenixWebSocketProtocol",
    )


@app.command()
def worker(
    sweep_age_ms: Annotated[
        int,
        typer.Option(
            min=0,
            help="Sweep actions older than this; short, as API processes with PIPELINE=handoff "
            "process nothing themselves.",
        ),
    ] = 2000,
    workers: Annotated[
        bool, typer.Option(help="Run the built-in workers (webhook, SQS, email) [RUN_WORKERS].")
    ] = True,
    mtt: Annotated[
        bool,
        typer.Option(help="Plan and send mail-to-target letters [MTT_ENABLED]."),
    ] = True,
) -> None:
    """Run the processing pipeline without HTTP: processor, sweeper, built-in workers and the
    mail-to-target schedule.

    Run it next to API processes started with PIPELINE=handoff; several may run at once."""
    import signal

    from proca_server.migrations.migrate import is_up_to_date
    from proca_server.mtt.loop import mtt_loop
    from proca_server.processing.runtime import Role, RuntimeOptions, close_runtime, open_runtime
    from proca_server.pubsub import pubsub

    s = settings()
    error_reporting.start(s, "worker")
    require_database(s)
    configure_logging(s.log_level, json_lines=s.production)
    options = RuntimeOptions(
        role=Role.WORKER,
        sweep_interval=min(s.sweep_interval_ms, max(sweep_age_ms, 500)) / 1000,
        sweep_age=sweep_age_ms / 1000,
        run_workers=workers and s.run_workers,
    )

    async def main() -> None:
        engine = db.create_engine(s)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            if not await is_up_to_date(engine):
                raise UserInputError("the database is not migrated: run `proca-server setup`")
            await pubsub.connect(engine)
            sessionmaker = db.create_sessionmaker(engine)
            runtime = await open_runtime(s, sessionmaker, options)
            letters = (
                asyncio.create_task(mtt_loop(s, sessionmaker)) if mtt and s.mtt_enabled else None
            )
            typer.echo("worker running", err=True)
            await stop.wait()
            if letters is not None:
                letters.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await letters
            await close_runtime(runtime)
        finally:
            await pubsub.close()
            await engine.dispose()

    run(main())


@app.command()
def schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from proca_server.graphql.schema import sdl

    typer.echo(sdl(), nl=False)


def main() -> None:
    try:
        app()
    except (ConfigError, UserInputError, MissingExtra) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except ProcaError as exc:
        typer.echo(f"error: {exc.display()}", err=True)
        sys.exit(1)
    except (OperationalError, DBAPIError, OSError) as exc:
        typer.echo(f"error: database unreachable or failing: {_first_line(exc)}", err=True)
        sys.exit(1)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
