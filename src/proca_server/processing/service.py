"""Processing of actions: plan (statuses, rank, messages), then apply; the sweeper's
selection and requeue.

The split follows "side effects after commit": `plan_processing` decides and renders the
messages without writing anything; the caller publishes `ProcessingPlan.publications`,
then calls `apply_plans` and commits. A crash between the two leaves the action's status as
it was, so the sweeper (`find_unprocessed`) finds it again and the messages go out once more
(consumers are idempotent on action id and stage)."""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Update, bindparam, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from proca_server.db import is_postgres, one_of
from proca_server.kit.time import utcnow
from proca_server.models import Action, Contact, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.processing.detail import lookup_publication
from proca_server.processing.loader import LoadedAction, load_actions_for_processing
from proca_server.processing.messages import (
    Publication,
    action_message,
    encode_message,
    org_exchange,
    routing_key,
)
from proca_server.processing.transition import Stage, effective_flags, stage_of, transition

STAGE_EXCHANGE = {
    Stage.SUPPORTER_CONFIRM: "confirm.supporter",
    Stage.ACTION_CONFIRM: "confirm.action",
    Stage.DELIVER: "deliver",
}


@dataclass(slots=True)
class ProcessingPlan:
    """What processing one action does: its new statuses, the supporter's rank, and the
    messages to publish before the plan is applied."""

    loaded: LoadedAction = field(repr=False)
    action_status: A
    supporter_status: S | None
    stage: Stage | None
    dupe_rank: int | None
    publications: list[Publication] = field(default_factory=list)
    # the publication is a detail lookup request (processing/detail.py): the stage messages
    # and the clearing of transient fields wait for the lookup
    detail_lookup: bool = False

    @property
    def action_id(self) -> int:
        return self.loaded.action.id


@dataclass(slots=True)
class _Earlier:
    """Accepted supporter rows of one person in one campaign: (id, page id)."""

    rows: list[tuple[int, int]] = field(default_factory=list)


# The accepted rows of (campaign, fingerprint) pairs. On PostgreSQL the pairs are joined to
# the (campaign_id, fingerprint) index one by one: a plan that filters the campaign's rows by
# fingerprint (what the planner picks for `campaign_id IN ... AND fingerprint IN ...` while a
# new campaign's statistics are stale) would read every supporter of the campaign per batch.
_ACCEPTED_PG = text(
    "SELECT s.id, s.campaign_id, s.fingerprint, s.action_page_id "
    "FROM unnest(CAST(:campaigns AS bigint[]), CAST(:fingerprints AS bytea[])) "
    "AS k(campaign_id, fingerprint) "
    "JOIN supporters AS s ON s.campaign_id = k.campaign_id AND s.fingerprint = k.fingerprint "
    "WHERE s.processing_status = :accepted"
)
_ACCEPTED_SQLITE = select(
    Supporter.id, Supporter.campaign_id, Supporter.fingerprint, Supporter.action_page_id
).where(
    Supporter.processing_status == S.ACCEPTED,
    one_of(Supporter.campaign_id, "campaigns", postgres=False),
    one_of(Supporter.fingerprint, "fingerprints", postgres=False),
)


async def _accepted_rows(
    session: AsyncSession, batch: Sequence[LoadedAction]
) -> dict[tuple[int, bytes], _Earlier]:
    pairs = sorted(
        {
            (la.supporter.campaign_id, bytes(la.supporter.fingerprint))
            for la in batch
            if la.supporter
        }
    )
    if not pairs:
        return {}
    if is_postgres(session):
        rows = await session.execute(
            _ACCEPTED_PG,
            {
                "campaigns": [c for c, _ in pairs],
                "fingerprints": [f for _, f in pairs],
                "accepted": int(S.ACCEPTED),
            },
        )
    else:
        rows = await session.execute(
            _ACCEPTED_SQLITE,
            {"campaigns": sorted({c for c, _ in pairs}), "fingerprints": [f for _, f in pairs]},
        )
    found: dict[tuple[int, bytes], _Earlier] = {}
    for sid, campaign_id, fingerprint, page_id in rows.all():
        found.setdefault((campaign_id, bytes(fingerprint)), _Earlier()).rows.append((sid, page_id))
    return found


async def plan_processing(
    session: AsyncSession, batch: Sequence[LoadedAction]
) -> list[ProcessingPlan]:
    """Plans for the actions of `batch` that have something to do (no-ops are left out), in
    action id order. Reads the accepted supporters of the same people in one statement and
    writes nothing.

    dupe_rank: the number of accepted supporter rows of the same fingerprint in the
    campaign with a smaller id. An action that would be delivered becomes `repeat` when one
    of those rows was signed on the action's own page. Several actions of one batch are
    ranked as if processed one after the other (a supporter accepted by an earlier plan
    counts for the later ones)."""
    ordered = sorted(batch, key=lambda la: la.action.id)
    earlier = await _accepted_rows(session, ordered)
    supporter_status: dict[int, S] = {}
    plans: list[ProcessingPlan] = []
    for loaded in ordered:
        action, supporter = loaded.action, loaded.supporter
        current = None
        if supporter is not None:
            current = supporter_status.get(supporter.id, supporter.processing_status)
        move = transition(
            action.processing_status,
            current,
            with_consent=action.with_consent,
            flags=effective_flags(loaded.org, loaded.campaign),
        )
        if move is None:
            continue
        plan = ProcessingPlan(
            loaded=loaded,
            action_status=move.action_status,
            supporter_status=move.supporter_status,
            stage=move.stage,
            dupe_rank=None,
        )
        if supporter is not None and move.supporter_status is not None:
            supporter_status[supporter.id] = move.supporter_status
        if supporter is not None and move.stage is not None:
            key = (supporter.campaign_id, bytes(supporter.fingerprint))
            people = earlier.setdefault(key, _Earlier())
            before = [(sid, page) for sid, page in people.rows if sid < supporter.id]
            plan.dupe_rank = len(before)
            same_page = any(page == action.action_page_id for _, page in before)
            if plan.action_status is A.DELIVERED and plan.dupe_rank > 0 and same_page:
                plan.action_status = A.REPEAT
            if move.supporter_status is S.ACCEPTED and all(
                sid != supporter.id for sid, _ in people.rows
            ):
                people.rows.append((supporter.id, supporter.action_page_id))
            if loaded.org.detail_backend_id is not None:
                plan.publications = [lookup_publication(loaded, move.stage)]
                plan.detail_lookup = True
            else:
                plan.publications = _publications(loaded, move.stage, plan.dupe_rank)
        plans.append(plan)
    return plans


def _publications(loaded: LoadedAction, stage: Stage, dupe_rank: int) -> list[Publication]:
    key = routing_key(loaded.action.action_type, loaded.campaign.name)
    if stage is Stage.DELIVER:
        # one message per receiving org, each carrying that org's own contact
        receivers: list[int] = []
        for copy in loaded.contacts:
            org_id = copy.contact.org_id
            if org_id is not None and org_id not in receivers:
                receivers.append(org_id)
    else:
        receivers = [loaded.org.id]
    return [
        Publication(
            org_exchange(org_id, STAGE_EXCHANGE[stage]),
            key,
            encode_message(action_message(loaded, stage.value, org_id, dupe_rank=dupe_rank)),
        )
        for org_id in receivers
    ]


def emission_plan(loaded: LoadedAction, stage: Stage) -> ProcessingPlan:
    """The plan that emits the stage messages of an action already moved to `stage` whose
    detail lookup is done: its statuses and rank stay, the transient fields are cleared at
    delivery."""
    supporter = loaded.supporter
    dupe_rank = supporter.dupe_rank if supporter is not None else None
    return ProcessingPlan(
        loaded=loaded,
        action_status=loaded.action.processing_status,
        supporter_status=None,
        stage=stage,
        dupe_rank=None,
        publications=_publications(loaded, stage, dupe_rank or 0),
    )


def transient_supporter_fields(loaded: LoadedAction) -> tuple[str, ...]:
    """Cleartext columns cleared at delivery, by the page owner org's settings (a
    high-security org keeps only the area; a campaign with MTT keeps everything to send as
    the supporter; otherwise the first name and area stay)."""
    if loaded.org.high_security:
        return ("email", "first_name", "last_name", "address")
    if loaded.campaign_has_mtt:
        return ()  # MTT messages are sent later in the supporter's name
    return ("email", "last_name", "address")


def _transient_action_keys(loaded: LoadedAction) -> set[str]:
    prefix = f"{loaded.action.action_type}:"
    return {
        entry[len(prefix) :]
        for entry in loaded.campaign.transient_actions or []
        if entry.startswith(prefix)
    }


async def apply_plans(session: AsyncSession, plans: Sequence[ProcessingPlan]) -> None:
    """Write the plans' statuses and ranks; at the deliver stage clear the transient
    personal fields of the supporter and the campaign's transient custom fields of the
    action. The caller commits.

    The rows are written with a few UPDATE statements for the whole batch (one per distinct
    outcome: usually one for the actions and one for the supporters), not row by row, and
    the loaded objects are given the written values as their committed state (nothing is
    left for the session to flush). Plans are applied in order: for a supporter in several
    plans the last status and rank win and the cleared fields add up."""
    if not plans:
        return
    now = utcnow()
    actions: dict[A, list[int]] = {}
    for plan in plans:
        actions.setdefault(plan.action_status, []).append(plan.action_id)
    supporters: dict[int, _SupporterUpdate] = {}
    for plan in plans:
        supporter = plan.loaded.supporter
        if supporter is None:
            continue
        change = supporters.setdefault(supporter.id, _SupporterUpdate(supporter))
        if plan.supporter_status is not None:
            change.status = plan.supporter_status
        if plan.dupe_rank is not None:
            change.dupe_rank = plan.dupe_rank
        if plan.stage is Stage.DELIVER and not plan.detail_lookup:
            change.cleared.update(transient_supporter_fields(plan.loaded))

    postgres = is_postgres(session)
    for action_status, ids in actions.items():
        await session.execute(
            _action_status_update(postgres), {"ids": ids, "status": action_status, "now": now}
        )
    for plan in plans:
        set_committed_value(plan.loaded.action, "processing_status", plan.action_status)
        if plan.stage is Stage.DELIVER and not plan.detail_lookup:
            await _drop_transient_action_fields(session, plan.loaded, now)

    groups: dict[tuple[S | None, int | None, tuple[str, ...]], list[_SupporterUpdate]] = {}
    for change in supporters.values():
        if change.status is None and change.dupe_rank is None and not change.cleared:
            continue
        key = (change.status, change.dupe_rank, tuple(sorted(change.cleared)))
        groups.setdefault(key, []).append(change)
    for (status, rank, cleared), changes in groups.items():
        values: dict[str, Any] = {name: None for name in cleared}
        if status is not None:
            values["processing_status"] = status
        if rank is not None:
            values["dupe_rank"] = rank
        values["updated_at"] = now
        await session.execute(
            _supporter_update(postgres, tuple(values)),
            {"ids": [c.supporter.id for c in changes], **values},
        )
        for change in changes:
            for name, value in values.items():
                set_committed_value(change.supporter, name, value)


@functools.cache
def _action_status_update(postgres: bool) -> Update:
    return (
        update(Action)
        .where(one_of(Action.id, "ids", postgres=postgres))
        .values(processing_status=bindparam("status"), updated_at=bindparam("now"))
        .execution_options(synchronize_session=False)
    )


@functools.cache
def _supporter_update(postgres: bool, columns: tuple[str, ...]) -> Update:
    return (
        update(Supporter)
        .where(one_of(Supporter.id, "ids", postgres=postgres))
        .values({name: bindparam(name) for name in columns})
        .execution_options(synchronize_session=False)
    )


@dataclass(slots=True)
class _SupporterUpdate:
    supporter: Supporter
    status: S | None = None
    dupe_rank: int | None = None
    cleared: set[str] = field(default_factory=set)


async def _drop_transient_action_fields(
    session: AsyncSession, loaded: LoadedAction, now: datetime
) -> None:
    action = loaded.action
    drop = _transient_action_keys(loaded)
    if not drop or not any(k in (action.fields or {}) for k in drop):
        return
    kept = {k: v for k, v in (action.fields or {}).items() if k not in drop}
    await session.execute(
        update(Action)
        .where(Action.id == action.id)
        .values(fields=kept, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(action, "fields", kept)


async def process_actions(
    session: AsyncSession, action_ids: Sequence[int], *, lock: bool = False
) -> list[ProcessingPlan]:
    """Load (locking the action rows with `lock`) and plan in one go (the caller publishes,
    then applies the plans)."""
    loaded = await load_actions_for_processing(session, action_ids, lock=lock)
    return await plan_processing(session, loaded)


# -- the sweeper's selection (ARCHITECTURE.md, "Sweeper") ---------------------------------

# (action status, supporter statuses) pairs the sweeper retries
_SWEPT: tuple[tuple[A, tuple[S, ...]], ...] = (
    (A.NEW, (S.NEW, S.ACCEPTED)),
    (A.ACCEPTED, (S.ACCEPTED,)),
)


async def find_unprocessed(
    session: AsyncSession, *, after_id: int, older_than: datetime, limit: int
) -> list[int]:
    """Ids (ascending, at most `limit`, all > `after_id`) of actions inserted before
    `older_than` that processing has not finished: new with a new or accepted supporter,
    or accepted with an accepted supporter. Keyset pagination: pass the last id back as
    `after_id`; an empty answer ends the sweep. Each status is read from the
    (processing_status, id) index from `after_id` on, never from the start."""
    found: list[int] = []
    for action_status, supporter_statuses in _SWEPT:
        result = await session.execute(
            select(Action.id)
            .join(Supporter, Supporter.id == Action.supporter_id)
            .where(
                Action.processing_status == action_status,
                Action.id > after_id,
                Action.inserted_at < older_than,
                Supporter.processing_status.in_(supporter_statuses),
            )
            .order_by(Action.id)
            .limit(limit)
        )
        found.extend(result.scalars().all())
    return sorted(found)[:limit]


# -- requeue (requeueActions, `proca-server requeue`) -----------------------------------------


class RequeueDestination(enum.Enum):
    EMAIL_SUPPORTER = "EMAIL_SUPPORTER"
    CUSTOM_SUPPORTER_CONFIRM = "CUSTOM_SUPPORTER_CONFIRM"
    CUSTOM_ACTION_CONFIRM = "CUSTOM_ACTION_CONFIRM"
    CUSTOM_ACTION_DELIVER = "CUSTOM_ACTION_DELIVER"
    SQS = "SQS"
    WEBHOOK = "WEBHOOK"


# destination -> (queue name pattern, stages it takes)
_DESTINATIONS: dict[RequeueDestination, tuple[str, frozenset[Stage]]] = {
    RequeueDestination.EMAIL_SUPPORTER: (
        "wrk.{}.email.supporter",
        frozenset({Stage.SUPPORTER_CONFIRM, Stage.DELIVER}),
    ),
    RequeueDestination.CUSTOM_SUPPORTER_CONFIRM: (
        "cus.{}.confirm.supporter",
        frozenset({Stage.SUPPORTER_CONFIRM}),
    ),
    RequeueDestination.CUSTOM_ACTION_CONFIRM: (
        "cus.{}.confirm.action",
        frozenset({Stage.ACTION_CONFIRM}),
    ),
    RequeueDestination.CUSTOM_ACTION_DELIVER: ("cus.{}.deliver", frozenset({Stage.DELIVER})),
    RequeueDestination.SQS: ("wrk.{}.sqs", frozenset({Stage.DELIVER})),
    RequeueDestination.WEBHOOK: ("wrk.{}.webhook", frozenset({Stage.DELIVER})),
}

_REQUEUE_ACTION = (A.NEW, A.CONFIRMING, A.DELIVERED, A.REPEAT)
_REQUEUE_SUPPORTER = (S.CONFIRMING, S.ACCEPTED)


class RequeueSelection(NamedTuple):
    """Messages to publish on the default exchange (queue name, body) and how many
    selected actions could not go to the destination (no stage, or a stage it does not
    take). Selected = len(messages) + failed."""

    messages: list[tuple[str, bytes]]
    failed: int


async def select_requeue(
    session: AsyncSession,
    org_id: int,
    action_ids: Sequence[int],
    destination: RequeueDestination,
) -> RequeueSelection:
    """The org's messages for `action_ids` again, for one of its queues. Selected: actions
    with a contact for the org, new/confirming/delivered/repeat, whose supporter is
    confirming or accepted (repeat actions included, as they are delivered too)."""
    ids = sorted(set(action_ids))
    if not ids:
        return RequeueSelection([], 0)
    selected = (
        (
            await session.execute(
                select(Action.id)
                .join(Supporter, Supporter.id == Action.supporter_id)
                .where(
                    Action.id.in_(ids),
                    Action.processing_status.in_(_REQUEUE_ACTION),
                    Supporter.processing_status.in_(_REQUEUE_SUPPORTER),
                    exists().where(Contact.supporter_id == Supporter.id, Contact.org_id == org_id),
                )
                .order_by(Action.id)
            )
        )
        .scalars()
        .all()
    )
    queue_pattern, stages = _DESTINATIONS[destination]
    queue = queue_pattern.format(org_id)
    messages: list[tuple[str, bytes]] = []
    failed = 0
    for loaded in await load_actions_for_processing(session, selected):
        supporter = loaded.supporter
        stage = stage_of(
            loaded.action.processing_status,
            supporter.processing_status if supporter is not None else None,
        )
        if stage is None or stage not in stages:
            failed += 1
            continue
        messages.append((queue, encode_message(action_message(loaded, stage.value, org_id))))
    return RequeueSelection(messages, failed)
