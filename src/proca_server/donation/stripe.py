"""Stripe's REST API through the official library (the `stripe` extra), and the keys an org
gives in its `stripe` / `test_stripe` service.

- Keys: the service password holds the secret API key, optionally followed by a space and
  the signing secret of the org's Stripe webhook endpoint (`sk_live_… whsec_…`); like every
  service password it is encrypted at rest.
- Calls: one `StripeClient` per use with its own async HTTPX client, closed after. Donations
  are rare next to signatures, and a client bound to no event loop or app keeps this module
  free of state. STRIPE_API_BASE points the client at a stand-in (stripe-mock, the tests'
  server) instead of Stripe.
- Version: requests are pinned to API_VERSION, whose objects the widget reads (a
  subscription's `latest_invoice.payment_intent.client_secret`).
- Errors: Stripe's refusals become PaymentRefused with the original's extensions (`code` the
  Stripe error type; `http_status`, `card_code`, `decline_code`, `param` when Stripe gives
  them). Stripe's own message is passed on, save for a refused API key, whose message
  (which quotes part of the key) is replaced."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from proca_server.errors import PaymentRefused, ProcaError
from proca_server.kit import extras

if TYPE_CHECKING:
    from stripe import StripeClient, StripeError

log = logging.getLogger(__name__)

SERVICES: Final = frozenset({"stripe", "test_stripe"})
# the last version whose invoices still carry `payment_intent` (the widget expands it)
API_VERSION: Final = "2025-02-24.acacia"
# seconds a Stripe request may take (the library's default is 80)
TIMEOUT: Final = 30.0
WEBHOOK_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret

ObjectKind = Literal["customer", "price", "payment_intent", "subscription"]

# the original's codes for an error without a Stripe type, by HTTP status
_STATUS_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    402: "request_failed",
    404: "not_found",
    409: "conflict",
    429: "too_many_requests",
    500: "server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


@dataclass(frozen=True)
class StripeKeys:
    api_key: str
    webhook_secret: str | None


def keys_of(password: str) -> StripeKeys:
    """The keys in a Stripe service's password."""
    words = password.split()
    secret = next((w for w in words if w.startswith(WEBHOOK_SECRET_PREFIX)), None)
    api_key = next((w for w in words if not w.startswith(WEBHOOK_SECRET_PREFIX)), "")
    return StripeKeys(api_key, secret)


def require_library() -> None:
    """ProcaError naming the extra to install when the library is missing."""
    try:
        extras.require("stripe", "Stripe donations")
    except extras.MissingExtra as exc:
        log.error("%s", exc)
        raise ProcaError(str(exc)) from None


@asynccontextmanager
async def stripe_client(api_key: str, api_base: str | None) -> AsyncIterator[StripeClient]:
    require_library()
    import stripe

    # the mutation's transaction (and, on PostgreSQL, its connection) waits for Stripe
    http = stripe.HTTPXClient(timeout=TIMEOUT)
    try:
        yield stripe.StripeClient(
            api_key,
            stripe_version=API_VERSION,
            base_addresses={"api": api_base} if api_base else None,
            http_client=http,
        )
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]


async def create(client: StripeClient, kind: ObjectKind, params: Mapping[str, Any]) -> Any:
    """Create one Stripe object; its JSON as Stripe sent it. Raises PaymentRefused."""
    import stripe

    services: dict[str, Any] = {
        "customer": client.v1.customers,
        "price": client.v1.prices,
        "payment_intent": client.v1.payment_intents,
        "subscription": client.v1.subscriptions,
    }
    # the params are Stripe's, passed on as given: the library's typed dicts do not apply
    untyped: Any = dict(params)
    try:
        created = await services[kind].create_async(untyped)
    except stripe.StripeError as exc:
        raise refused(exc, kind) from None
    response = created.last_response
    if response is not None and isinstance(response.data, dict):
        return response.data
    return created.to_dict()


def refused(exc: StripeError, kind: str) -> PaymentRefused:
    """The GraphQL error for a Stripe failure (the exception's text never reaches a log:
    Stripe may quote parts of the request in it)."""
    import stripe

    if isinstance(exc, stripe.APIConnectionError):
        log.warning("stripe: %s not created: Stripe could not be reached", kind)
        return PaymentRefused("Stripe could not be reached", code="network_error", extensions={})
    body = exc.json_body.get("error") if isinstance(exc.json_body, dict) else None
    error: dict[str, Any] = body if isinstance(body, dict) else {}
    status = exc.http_status or 0
    code = error.get("type") if isinstance(error.get("type"), str) else None
    code = code or _STATUS_CODES.get(status, "stripe_error")
    extensions: dict[str, Any] = {"http_status": status} if status else {}
    for ours, theirs in (
        ("card_code", "code"),
        ("decline_code", "decline_code"),
        ("param", "param"),
    ):
        value = error.get(theirs)
        if isinstance(value, str) and value:
            extensions[ours] = value
    message = error.get("message")
    if isinstance(exc, stripe.AuthenticationError) or status == 401:
        message = "Stripe refused the API key of this page's Stripe service"
        log.warning("stripe: %s not created: the service's API key was refused", kind)
    else:
        log.info("stripe: %s not created: %s %s", kind, code, extensions.get("card_code", ""))
    if not isinstance(message, str) or not message:
        message = "Stripe refused the request"
    return PaymentRefused(message, code=code, extensions=extensions)


def verify_report(payload: bytes, signature: str | None, secret: str) -> None:
    """Raise ValueError unless `signature` (the Stripe-Signature header) signs `payload` with
    `secret`, within the library's tolerance of five minutes."""
    require_library()
    import stripe

    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, secret, stripe.Webhook.DEFAULT_TOLERANCE
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise ValueError("bad signature") from exc
