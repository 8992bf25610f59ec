"""`proca-server requeue ORG QUEUE [IDS...]`: send actions' messages again to one of the
org's queues, as `requeueActions` does, by ids or by a query (`--campaign`, `--status`,
`--since`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.command import fail, run, settings
from proca_server.errors import UserInputError
from proca_server.kit.progress import Progress
from proca_server.models import Action, Campaign, Contact, Org, Supporter
from proca_server.models.enums import ActionProcessingStatus
from proca_server.processing.service import RequeueDestination

if TYPE_CHECKING:
    from proca_server.broker.base import Broker

requeue_app = typer.Typer(
    help="Send actions' messages again to one of an org's queues.",
    no_args_is_help=True,
)

CHUNK = 500
STATUSES = {s.name.lower(): s for s in ActionProcessingStatus}
DESTINATIONS = {d.value.lower(): d for d in RequeueDestination}


@dataclass(frozen=True)
class RequeueSelection:
    """Which actions of the org to requeue; ids and the filters combine."""

    ids: tuple[int, ...] = ()
    campaign: str | None = None
    status: ActionProcessingStatus | None = None
    since: datetime | None = None
    limit: int | None = None

    @property
    def has_filter(self) -> bool:
        return self.campaign is not None or self.status is not None or self.since is not None


async def get_org_id(session: AsyncSession, org: str) -> int:
    found = await session.scalar(select(Org.id).where(Org.name == org))
    if found is None:
        raise UserInputError(f"no org {org}")
    return found


async def find_action_ids(
    session: AsyncSession, org_id: int, selection: RequeueSelection
) -> list[int]:
    """Ids of the actions with a contact for the org matching the selection, in id order."""
    if not selection.ids and not selection.has_filter:
        raise UserInputError("give action ids or at least one of --campaign, --status, --since")
    statement = (
        select(Action.id)
        .join(Supporter, Supporter.id == Action.supporter_id)
        .join(Contact, (Contact.supporter_id == Supporter.id) & (Contact.org_id == org_id))
        .order_by(Action.id)
    )
    if selection.ids:
        statement = statement.where(Action.id.in_(sorted(set(selection.ids))))
    if selection.campaign is not None:
        statement = statement.join(Campaign, Campaign.id == Action.campaign_id).where(
            Campaign.name == selection.campaign
        )
    if selection.status is not None:
        statement = statement.where(Action.processing_status == selection.status)
    if selection.since is not None:
        since = selection.since if selection.since.tzinfo else selection.since.replace(tzinfo=UTC)
        statement = statement.where(Action.inserted_at >= since)
    if selection.limit is not None:
        statement = statement.limit(selection.limit)
    return list((await session.execute(statement)).scalars().all())


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def requeue_found(
    session: AsyncSession,
    broker: Broker,
    org_id: int,
    action_ids: Sequence[int],
    destination: RequeueDestination,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Requeue `action_ids` a chunk at a time, telling `on_progress` how many each chunk
    took; the count selected and the count that failed."""
    from proca_server.processing.api import requeue_actions

    count = failed = 0
    for chunk in _chunks(action_ids):
        outcome = await requeue_actions(session, broker, org_id, chunk, destination)
        count += outcome.count
        failed += outcome.failed
        if on_progress is not None:
            on_progress(len(chunk))
    return count, failed


@requeue_app.command("requeue")
def requeue(
    org: Annotated[str, typer.Argument(help="The org's name.")],
    queue: Annotated[
        str,
        typer.Argument(
            help="email_supporter, custom_supporter_confirm, custom_action_confirm, "
            "custom_action_deliver, sqs or webhook."
        ),
    ],
    ids: Annotated[list[int] | None, typer.Argument(help="Action ids.")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign's actions.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only actions in this processing status (delivered…).")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only actions inserted from this time (UTC).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many actions.")] = None,
) -> None:
    """Requeue the org's actions given by id or matching the options; prints the count."""
    from proca_server import db
    from proca_server.broker import open_broker
    from proca_server.migrations.migrate import is_up_to_date

    destination = DESTINATIONS.get(queue.lower())
    if destination is None:
        fail(f"unknown queue {queue}: one of {', '.join(DESTINATIONS)}")
        return
    action_status = None
    if status is not None:
        action_status = STATUSES.get(status.lower())
        if action_status is None:
            fail(f"unknown status {status}: one of {', '.join(STATUSES)}")
            return
    selection = RequeueSelection(tuple(ids or ()), campaign, action_status, since, limit)
    s = settings()

    async def work() -> tuple[int, int]:
        engine = db.create_engine(s)
        try:
            if not await is_up_to_date(engine):
                raise UserInputError("the database is not migrated: run `proca-server setup`")
            sessionmaker = db.create_sessionmaker(engine)
            broker = await open_broker(s, sessionmaker)
            try:
                async with db.transaction(sessionmaker) as session:
                    org_id = await get_org_id(session, org)
                    found = await find_action_ids(session, org_id, selection)
                    with Progress("actions", len(found)) as progress:
                        return await requeue_found(
                            session, broker, org_id, found, destination, progress.advance
                        )
            finally:
                await broker.close()
        finally:
            await engine.dispose()

    try:
        count, failed = run(work())
    except UserInputError as exc:
        fail(str(exc))
        return
    typer.echo(f"requeued {count - failed} of {count} selected ({failed} failed)")
