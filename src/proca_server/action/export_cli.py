"""`proca-server export ORG [--campaign NAME] [--since DATE | --start ID] [--format csv|jsonl]
[--key FILE ...] [--include-testing] [--all-consents] [--output FILE]`: an org's actions with
their contacts, as a file (docs/export.md, "From the command line")."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TextIO

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import db
from proca_server.action.export_file import (
    BATCH,
    ExportPlan,
    ExportRequest,
    ExportRow,
    plan_export,
    record_export,
    stream_export,
)
from proca_server.action.export_writer import FORMATS, Format, Writer, writer_for
from proca_server.audit.cli import parse_since
from proca_server.command import run, settings, with_database
from proca_server.errors import UserInputError
from proca_server.kit import base64url
from proca_server.kit.progress import Progress

_QUIET = io.StringIO()  # where the progress goes when it is not shown (a benchmark)

# the output is buffered in large blocks: the rows of a batch go out in a few writes
WRITE_BUFFER = 1 << 20


def export(
    org: Annotated[str, typer.Argument(metavar="ORG", help="The org whose actions to export.")],
    campaign: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only the actions of this campaign.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Only the actions made from then on: a date (YYYY-MM-DD, UTC) or an ISO 8601 "
            "date and time.",
        ),
    ] = None,
    start: Annotated[
        int | None,
        typer.Option(metavar="ID", min=0, help="Only the actions with an id from ID on."),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="csv or jsonl (JSON lines).")
    ] = "csv",
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            metavar="FILE",
            dir_okay=False,
            help="A file holding one of the org's private keys (base64url, as generateKey "
            "answers it), to decrypt the contacts sealed to that key; repeat it for older "
            "keys. Used for this run only, never stored.",
        ),
    ] = None,
    include_testing: Annotated[
        bool, typer.Option("--include-testing", help="Also the test actions.")
    ] = False,
    all_consents: Annotated[
        bool,
        typer.Option(
            "--all-consents",
            help="Also the contacts that did not opt in to the org's communication.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Write to this file (mode 600, written whole or not at all); default: stdout.",
        ),
    ] = None,
) -> None:
    """Export an org's actions with their contacts: the actions the `actions` API query
    returns (processed ones, of supporters who opted in, no test actions, unless told), in
    id order, one CSV line or JSON object each. Progress goes to stderr."""
    if format not in FORMATS:
        raise UserInputError(f"--format must be one of {', '.join(FORMATS)}")
    if since is not None and start is not None:
        raise UserInputError("give --since or --start, not both")
    request = ExportRequest(
        org=org,
        campaign=campaign,
        start=start,
        since=parse_since(since) if since is not None else None,
        include_testing=include_testing,
        all_consents=all_consents,
        private_keys=read_keys(key or []),
    )
    fmt: Format = "csv" if format == "csv" else "jsonl"

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> ExportResult:
        with opened(output) as out:
            return await write_export(sessionmaker, request, fmt, out)

    try:
        result = run(with_database(settings(), work))
    except BrokenPipeError:
        # the reader of stdout went away (`| head`): stop without a word; what was read is
        # in the audit trail
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(1) from None
    typer.echo(result.summary(str(output) if output else None), err=True)


def read_keys(files: list[Path]) -> dict[str, bytes]:
    """Each file's private key; UserInputError (naming the file, never its content) when a
    file cannot be read or holds something else."""
    keys: dict[str, bytes] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            raise UserInputError(f"cannot read the key file {path}: {reason}") from None
        try:
            private = base64url.decode(text)
        except ValueError:
            private = b""
        if len(private) != 32:
            raise UserInputError(
                f"{path} does not hold a private key (32 bytes in base64url, as generateKey "
                "answers it)"
            )
        keys[str(path)] = private
    return keys


@contextmanager
def opened(output: Path | None) -> Iterator[TextIO]:
    """stdout, or a new file written under a temporary name and renamed when complete (an
    export that fails leaves no partial file behind), readable by its owner only."""
    if output is None:
        out = io.TextIOWrapper(
            sys.stdout.buffer, encoding="utf-8", newline="", line_buffering=False
        )
        try:
            yield out
            out.flush()
        finally:
            # sys.stdout stays open for the summary (a broken pipe is the caller's to tell)
            with contextlib.suppress(OSError, ValueError):
                out.detach()
        return
    folder = output.parent
    if not folder.is_dir():
        raise UserInputError(f"no folder {folder} for the output")
    fd, partial = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=folder)
    try:
        with open(fd, "w", encoding="utf-8", newline="", buffering=WRITE_BUFFER) as out:
            yield out
        os.replace(partial, output)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


@dataclass
class ExportResult:
    org: str
    count: int
    by_status: dict[str, int]

    def summary(self, where: str | None) -> str:
        parts = ", ".join(f"{n:,} {status}" for status, n in sorted(self.by_status.items()))
        contacts = f" (contacts: {parts})" if parts else ""
        to = f" to {where}" if where else ""
        return f"exported {self.count:,} actions of {self.org}{to}{contacts}"


async def write_export(
    sessionmaker: async_sessionmaker[AsyncSession],
    request: ExportRequest,
    fmt: Format,
    out: TextIO,
    *,
    batch: int = BATCH,
    progress: bool = True,
) -> ExportResult:
    """Write the export to `out`, with a progress bar on stderr, and add its audit entry
    (also when it stops midway: what was read is recorded)."""
    plan: ExportPlan | None = None
    done = 0
    try:
        async with sessionmaker() as session:
            await snapshot(session)
            plan = await plan_export(session, request, with_field_names=fmt == "csv")
            writer = writer_for(fmt, out, plan)
            batches = stream_export(session, plan, batch=batch)
            with Progress("actions", plan.total, stream=None if progress else _QUIET) as bar:
                # closed before the session, should the writing fail: its read ahead stops
                async with contextlib.aclosing(batches):
                    async for rows in batches:
                        done += len(rows)  # read: counted in the audit entry
                        _write(writer, rows)
                        bar.advance(len(rows))
            _flush(out)
    except BaseException:
        if plan is not None:
            # recorded as far as it went; a failure here leaves the first error in charge
            with contextlib.suppress(Exception):
                await _audit(sessionmaker, plan, request, fmt, done, complete=False)
        raise
    await _audit(sessionmaker, plan, request, fmt, done, complete=True)
    return ExportResult(plan.org_name, done, dict(plan.counts))


async def _audit(
    sessionmaker: async_sessionmaker[AsyncSession],
    plan: ExportPlan,
    request: ExportRequest,
    fmt: Format,
    count: int,
    *,
    complete: bool,
) -> None:
    async with db.transaction(sessionmaker) as session:
        record_export(session, plan, request, fmt, count=count, complete=complete)


def _write(writer: Writer, rows: list[ExportRow]) -> None:
    try:
        writer.write(rows)
    except BrokenPipeError:
        raise
    except OSError as exc:  # a full disk, ...: not the database's failure
        raise UserInputError(f"cannot write the export: {exc.strerror or exc}") from None


def _flush(out: TextIO) -> None:
    try:
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise UserInputError(f"cannot write the export: {exc.strerror or exc}") from None


async def snapshot(session: AsyncSession) -> None:
    """One read-only snapshot for the count and every batch (PostgreSQL)."""
    if db.is_postgres(session):
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
