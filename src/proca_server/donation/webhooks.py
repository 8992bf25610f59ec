"""`POST /webhook/stripe/{service id}`: the endpoint an org registers in its Stripe account
for its `stripe` (or `test_stripe`) service, signed with the secret that follows the API key
in the service's password (stripe.py).

Answers: 200 `{"handled": n}` (the donations changed; an event of no concern is 0);
409 while a payment of one of this server's pages has no donation recorded yet (Stripe sends
the report again later: reports.py); 400 for a missing or wrong `Stripe-Signature`; 401 when
the service has no webhook secret (nothing can be verified); 404 for no such Stripe service;
503 when the server lacks the `stripe` extra. All of a report is one transaction; the events
are published after commit."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from proca_server.app_state import state_of
from proca_server.donation import repository
from proca_server.donation.reports import apply_report, parse_event, read_report
from proca_server.donation.stripe import keys_of, verify_report
from proca_server.errors import ProcaError
from proca_server.kit.time import utcnow
from proca_server.processing import handoff

log = logging.getLogger(__name__)
router = APIRouter()


def _answer(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


@router.post("/webhook/stripe/{service_id}")
async def stripe_webhook(service_id: int, request: Request) -> Response:
    state = state_of(request)
    payload = await request.body()
    async with state.sessionmaker() as session:
        service = await repository.get_stripe_service_by_id(session, service_id)
        if service is None:
            return _answer(404, "no such Stripe service")
        secret = keys_of(service.password).webhook_secret
        if secret is None:
            log.warning("stripe: a report for service %d, which has no webhook secret", service_id)
            return _answer(401, "this Stripe service has no webhook secret")
        try:
            verify_report(payload, request.headers.get("stripe-signature"), secret)
        except ProcaError:  # the library is missing (logged, naming the extra)
            return _answer(503, "Stripe reports are not read by this server")
        except ValueError:
            log.warning("stripe: a report for service %d with a bad signature", service_id)
            return _answer(400, "bad Stripe-Signature")
        report = read_report(parse_event(payload))
        if report is None:
            return JSONResponse({"handled": 0})
        org_id = service.org_id
        outcome = await apply_report(session, org_id, report, utcnow())
        await session.commit()
    await handoff.after_commit(state, outcome.publications, [])
    log.info(
        "stripe: %s %s for org %d: %d donation(s) updated",
        report.event_type,
        report.event_id,
        org_id,
        outcome.handled,
    )
    if outcome.retry:
        return _answer(409, "no donation recorded for this payment yet")
    return JSONResponse({"handled": outcome.handled})
