"""The email supporter worker (queue `wrk.N.email.supporter`): thank-you,
confirm, duplicate and repeat-confirm emails of the `deliver` and `supporter_confirm` stages.

A batch is composed in one transaction (templates, merge tags, backend choice and its
budget), committed, then delivered per backend in chunks of the backend's batch size. What
the provider accepted is recorded per action and kind (`email_sent`) so a message delivered
again (a retry of its batch, a consumer restart) never sends the same email twice. A failed
send, or a missing template, fails the message as retryable: the broker brings it back after
its retry delay and parks it after the retry limit."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker.base import Delivery, PermanentError, RetryableError
from proca_server.email.backend import OrgEmailBackend
from proca_server.email.backends.base import EmailConfigError, EmailDeliveryError
from proca_server.email.message import EmailMessage
from proca_server.email.supporter import (
    LAG_KINDS,
    EmailKind,
    TemplateMissing,
    compose_email,
    confirm_lacks_template,
    due_email,
    select_backend,
)
from proca_server.metrics import observe_email_lag
from proca_server.models import Org
from proca_server.models.email_sent import EmailSent
from proca_server.processing.loader import load_actions_for_processing
from proca_server.workers import WorkerDeps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Request:
    index: int
    action_id: int
    stage: str
    contact: dict[str, Any]


@dataclass(frozen=True)
class _Outgoing:
    index: int
    action_id: int
    kind: EmailKind
    message: EmailMessage
    org_id: int
    inserted_at: datetime | None


def _decode(delivery: Delivery, index: int) -> _Request:
    try:
        data = json.loads(delivery.body)
        action_id = data["actionId"]
        stage = data["stage"]
    except (ValueError, TypeError, KeyError) as exc:
        raise PermanentError("not an action message") from exc
    if not isinstance(action_id, int) or not isinstance(stage, str):
        raise PermanentError("not an action message")
    contact = data.get("contact")
    return _Request(index, action_id, stage, contact if isinstance(contact, dict) else {})


async def sent_emails(session: AsyncSession, action_ids: Sequence[int]) -> set[tuple[int, str]]:
    if not action_ids:
        return set()
    rows = await session.execute(
        select(EmailSent.action_id, EmailSent.kind).where(EmailSent.action_id.in_(action_ids))
    )
    return {(a, k) for a, k in rows.all()}


async def record_sent(
    sessionmaker: async_sessionmaker[AsyncSession], sent: Sequence[tuple[int, str]]
) -> None:
    if not sent:
        return
    async with sessionmaker() as session:
        for action_id, kind in sent:
            try:
                async with session.begin():
                    session.add(EmailSent(action_id=action_id, kind=kind))
            except IntegrityError:
                # recorded already (two consumers raced), or the action is gone
                continue


def _warn_no_confirm_template(deps: WorkerDeps, org: Org) -> None:
    # once in a while per org, not per message: the supporters of its pages without a confirm
    # template (on the page, its campaign or the org) never get the email they wait for
    if deps.notices.first(("confirm_template", org.id)):
        log.warning(
            "org %s: supporter confirmation is on but a page has no confirm template (page, "
            "campaign or org supporterConfirmTemplate): its supporters stay unconfirmed",
            org.name,
        )


async def _compose_batch(
    deps: WorkerDeps,
    requests: list[_Request],
    results: list[Exception | None],
) -> list[tuple[OrgEmailBackend, list[_Outgoing]]]:
    groups: dict[tuple[int | None, bool], tuple[OrgEmailBackend, list[_Outgoing]]] = {}
    async with deps.sessionmaker() as session:
        ids = [r.action_id for r in requests]
        loaded = {la.action.id: la for la in await load_actions_for_processing(session, ids)}
        done = await sent_emails(session, ids)
        for request in requests:
            found = loaded.get(request.action_id)
            if found is None:
                continue  # the action was deleted: nothing to send
            due = due_email(found, request.stage)
            if due is None and confirm_lacks_template(found, request.stage):
                _warn_no_confirm_template(deps, found.org)
            if due is None or (request.action_id, due.kind.value) in done:
                continue
            try:
                backend = await select_backend(session, found, due, deps.sessionmaker)
                if backend is None:
                    continue  # the org sends no email
                message = await compose_email(
                    session, deps.settings, found, due, backend, contact=request.contact
                )
            except TemplateMissing as exc:
                log.warning("email for action %d not sent: %s", request.action_id, exc)
                results[request.index] = RetryableError(str(exc))
                continue
            except EmailConfigError as exc:
                log.warning("email for action %d not sent: %s", request.action_id, exc)
                results[request.index] = RetryableError(str(exc))
                continue
            if message is None:
                log.info("email for action %d has no sender or recipient", request.action_id)
                continue
            key = (backend.service.id if backend.service else None, backend.transactional)
            group = groups.setdefault(key, (backend, []))
            group[1].append(
                _Outgoing(
                    request.index,
                    request.action_id,
                    due.kind,
                    message,
                    found.org.id,
                    found.action.inserted_at,
                )
            )
            done.add((request.action_id, due.kind.value))
        # the transactional budget counted the emails above
        await session.commit()
    return list(groups.values())


def _handed_over(item: _Outgoing) -> None:
    lag_kind = LAG_KINDS.get(item.kind)
    if lag_kind is not None:
        observe_email_lag(lag_kind, item.org_id, item.inserted_at)


async def _deliver(
    backend: OrgEmailBackend, outgoing: list[_Outgoing], results: list[Exception | None]
) -> list[tuple[int, str]]:
    """Deliver in chunks; what the provider accepted, as (action id, kind)."""
    accepted: list[tuple[int, str]] = []
    size = max(1, backend.batch_size)
    for start in range(0, len(outgoing), size):
        chunk = outgoing[start : start + size]
        try:
            await backend.deliver([o.message for o in chunk])
        except EmailDeliveryError as exc:
            log.warning("%s: %d emails not sent: %s", backend.name, len(chunk), exc.reason)
            failed = {f.index: f for f in exc.failures}
            for position, item in enumerate(chunk):
                failure = failed.get(position)
                if exc.failures and (failure is None or failure.recipient):
                    # accepted; or a refused recipient address: no retry can send it, nothing
                    # left to do
                    accepted.append((item.action_id, item.kind.value))
                    if failure is None:
                        _handed_over(item)
                    continue
                retryable = failure.retryable if failure is not None else exc.retryable
                reason = failure.reason if failure is not None else exc.reason
                error = RetryableError if retryable else PermanentError
                results[item.index] = error(f"{backend.name}: {reason}")
            continue
        except Exception as exc:
            log.exception("%s: %d emails not sent", backend.name, len(chunk))
            for item in chunk:
                results[item.index] = RetryableError(f"{backend.name}: {type(exc).__name__}")
            continue
        accepted.extend((o.action_id, o.kind.value) for o in chunk)
        for item in chunk:
            _handed_over(item)
    return accepted


async def handle_batch(
    deps: WorkerDeps, org_id: int, deliveries: list[Delivery]
) -> list[Exception | None]:
    """One outcome per delivery: None = done, RetryableError / PermanentError = failed."""
    results: list[Exception | None] = [None] * len(deliveries)
    requests: list[_Request] = []
    for index, delivery in enumerate(deliveries):
        try:
            requests.append(_decode(delivery, index))
        except PermanentError as exc:
            results[index] = exc
    if not requests:
        return results
    try:
        groups = await _compose_batch(deps, requests, results)
    except Exception as exc:
        log.exception("org %d: email batch not composed", org_id)
        for request in requests:
            if results[request.index] is None:
                results[request.index] = RetryableError(type(exc).__name__)
        return results
    for backend, outgoing in groups:
        accepted = await _deliver(backend, outgoing, results)
        try:
            await record_sent(deps.sessionmaker, accepted)
        except Exception:
            # sent but not recorded: a redelivery of these messages would send them again,
            # acknowledging them is the lesser harm
            log.exception("org %d: sent emails not recorded", org_id)
    return results
