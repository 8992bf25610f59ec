"""A local stand-in for the parts of Stripe's REST API the donations use, served on a loopback
port and driven through the official library (STRIPE_API_BASE points at it).

It speaks Stripe's wire format: form-encoded POSTs with bracketed keys (`metadata[a]=b`,
`items[0][price]=p`), Bearer secret keys, JSON objects in Stripe's shapes (API version
2025-02-24: invoices carry `payment_intent` and `subscription`), `expand[]`, and Stripe's
error bodies (`{"error": {"type", "code", "message", "param", ...}}` with 400, 401, 402, 404).

Like Stripe, it queues the events of what happens (payments confirmed or failed, invoices
paid, subscriptions cancelled); `deliver` posts them, signed, to a webhook endpoint, and keeps
those not answered with a 2xx for the next delivery (Stripe's retries)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.local_http import serve

INTEGER_FIELDS = {"amount", "unit_amount", "interval_count"}
DECLINED_CARDS = {"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"}
CURRENCIES = {"eur", "usd", "gbp", "chf", "pln", "sek", "dkk", "czk"}


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header for `payload`, as Stripe computes it."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form keys as nested objects and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = int(value) if parts[-1] in INTEGER_FIELDS else value
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


class Refusal(Exception):
    def __init__(self, status: int, **error: Any) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


def missing(param: str) -> Refusal:
    return Refusal(
        400,
        type="invalid_request_error",
        code="parameter_missing",
        param=param,
        message=f"Missing required param: {param}.",
    )


def no_such(kind: str, ident: str, param: str) -> Refusal:
    return Refusal(
        400,
        type="invalid_request_error",
        code="resource_missing",
        param=param,
        message=f"No such {kind}: '{ident}'",
    )


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class StripeStandIn:
    api_keys: set[str] = field(default_factory=lambda: {"sk_test_standin"})
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""  # the base URL, once served
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/customers", self._route(self.create_customer), methods=["POST"]),
                Route("/v1/prices", self._route(self.create_price), methods=["POST"]),
                Route(
                    "/v1/payment_intents",
                    self._route(self.create_payment_intent),
                    methods=["POST"],
                ),
                Route(
                    "/v1/payment_intents/{id}/confirm",
                    self._route(self.confirm_payment_intent),
                    methods=["POST"],
                ),
                Route("/v1/subscriptions", self._route(self.create_subscription), methods=["POST"]),
                Route(
                    "/v1/subscriptions/{id}",
                    self._route(self.cancel_subscription),
                    methods=["DELETE"],
                ),
                Route("/{path:path}", self._route(self.unknown), methods=["GET", "POST", "DELETE"]),
            ]
        )

    # -- plumbing ------------------------------------------------------------------------

    def _route(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            body = (await request.body()).decode()
            query = request.url.query
            params = nest(parse_qsl(body or query, keep_blank_values=True))
            self.calls.append(Call(request.method, request.url.path, params, dict(request.headers)))
            auth = request.headers.get("authorization", "")
            key = auth.removeprefix("Bearer ").strip()
            if key not in self.api_keys:
                masked = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
                return JSONResponse(
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": f"Invalid API Key provided: {masked}",
                        }
                    },
                    status_code=401,
                )
            try:
                found = handler(params, **request.path_params)
            except Refusal as refusal:
                return JSONResponse({"error": refusal.error}, status_code=refusal.status)
            return JSONResponse(self._expanded(found, params.get("expand") or []))

        return endpoint

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._seq):06d}{secrets.token_hex(4)}"

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        return obj

    def _expanded(self, obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        for path in expand:
            node = out
            parts = path.split(".")
            for i, part in enumerate(parts):
                value = node.get(part)
                if isinstance(value, str) and value in self.objects:
                    node[part] = copy.deepcopy(self.objects[value])
                    value = node[part]
                if i < len(parts) - 1:
                    if not isinstance(value, dict):
                        break
                    node = value
        return out

    def emit(self, event_type: str, obj: dict[str, Any]) -> None:
        self.events.append(
            {
                "id": self._new_id("evt"),
                "object": "event",
                "api_version": "2025-02-24.acacia",
                "created": int(time.time()),
                "livemode": False,
                "type": event_type,
                "data": {"object": copy.deepcopy(obj)},
            }
        )

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    async def deliver(
        self, client: httpx.AsyncClient, url: str, secret: str
    ) -> list[httpx.Response]:
        """Post the pending events to `url`, signed with `secret`; those not answered 2xx
        stay pending."""
        answers = []
        pending = []
        for event in self.events:
            payload = json.dumps(event).encode()
            response = await client.post(
                url,
                content=payload,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": sign(payload, secret),
                },
            )
            answers.append(response)
            if not 200 <= response.status_code < 300:
                pending.append(event)
        self.events = pending
        return answers

    # -- the API ---------------------------------------------------------------------------

    def unknown(self, params: dict[str, Any], path: str) -> dict[str, Any]:
        raise Refusal(
            404,
            type="invalid_request_error",
            message=f"Unrecognized request URL (/{path}).",
        )

    def _customer_ref(self, params: dict[str, Any], param: str = "customer") -> str | None:
        customer = params.get(param)
        if customer is not None and customer not in self.objects:
            raise no_such("customer", customer, param)
        return customer  # type: ignore[no-any-return]

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._store(
            {
                "id": self._new_id("cus"),
                "object": "customer",
                "email": params.get("email"),
                "name": params.get("name"),
                "address": params.get("address"),
                "metadata": params.get("metadata") or {},
                "livemode": False,
                "created": int(time.time()),
            }
        )

    def _price(self, params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        for required in ("currency", "unit_amount"):
            if required not in params:
                raise missing(prefix + required)
        recurring = params.get("recurring")
        if recurring is not None and recurring.get("interval") not in (
            "day",
            "week",
            "month",
            "year",
        ):
            raise Refusal(
                400,
                type="invalid_request_error",
                param=prefix + "recurring[interval]",
                message="Invalid recurring[interval]: must be one of day, week, month, or year",
            )
        product = params.get("product")
        if product is None:
            product = self._store(
                {
                    "id": self._new_id("prod"),
                    "object": "product",
                    "name": (params.get("product_data") or {}).get("name"),
                }
            )["id"]
        return self._store(
            {
                "id": self._new_id("price"),
                "object": "price",
                "currency": params["currency"].lower(),
                "unit_amount": params["unit_amount"],
                "recurring": recurring,
                "product": product,
                "type": "recurring" if recurring else "one_time",
                "livemode": False,
            }
        )

    def create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._price(params)

    def _payment_intent(self, params: dict[str, Any], invoice: str | None = None) -> dict[str, Any]:
        if "amount" not in params:
            raise missing("amount")
        if "currency" not in params:
            raise missing("currency")
        currency = params["currency"].lower()
        if currency not in CURRENCIES:
            raise Refusal(
                400,
                type="invalid_request_error",
                param="currency",
                message=f"Invalid currency: {currency}.",
            )
        if params["amount"] < 50:
            raise Refusal(
                400,
                type="invalid_request_error",
                code="amount_too_small",
                param="amount",
                message=f"Amount must be at least 0.50 {currency}",
                doc_url="https://stripe.com/docs/error-codes/amount-too-small",
            )
        ident = self._new_id("pi")
        return self._store(
            {
                "id": ident,
                "object": "payment_intent",
                "amount": params["amount"],
                "currency": currency,
                "customer": self._customer_ref(params),
                "metadata": params.get("metadata") or {},
                "payment_method_types": params.get("payment_method_types") or ["card"],
                "setup_future_usage": params.get("setup_future_usage"),
                "client_secret": f"{ident}_secret_{secrets.token_hex(8)}",
                "status": "requires_payment_method",
                "invoice": invoice,
                "livemode": False,
                "created": int(time.time()),
            }
        )

    def create_payment_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._payment_intent(params)

    def confirm_payment_intent(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        intent = self.objects.get(id)
        if intent is None or intent["object"] != "payment_intent":
            raise no_such("payment_intent", id, "intent")
        method = params.get("payment_method")
        if method is None:
            raise missing("payment_method")
        if method in DECLINED_CARDS:
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {"code": "card_declined"}
            self.emit("payment_intent.payment_failed", intent)
            invoice = self.objects.get(intent.get("invoice") or "")
            if invoice is not None:
                self.emit("invoice.payment_failed", invoice)
            raise Refusal(
                402,
                type="card_error",
                code="card_declined",
                decline_code="generic_decline",
                message="Your card was declined.",
                payment_intent=copy.deepcopy(intent),
            )
        self._settle(intent)
        return intent

    def _settle(self, intent: dict[str, Any]) -> None:
        intent["status"] = "succeeded"
        self.emit("payment_intent.succeeded", intent)
        invoice = self.objects.get(intent.get("invoice") or "")
        if invoice is not None:
            invoice["status"] = "paid"
            self.emit("invoice.paid", invoice)
            self.emit("invoice.payment_succeeded", invoice)
            subscription = self.objects[invoice["subscription"]]
            subscription["status"] = "active"
            self.emit("customer.subscription.updated", subscription)

    def _invoice(self, subscription: dict[str, Any], price: dict[str, Any]) -> dict[str, Any]:
        ident = self._new_id("in")
        intent = self._payment_intent(
            {
                "amount": price["unit_amount"],
                "currency": price["currency"],
                "customer": subscription["customer"],
            },
            invoice=ident,
        )
        return self._store(
            {
                "id": ident,
                "object": "invoice",
                "customer": subscription["customer"],
                "subscription": subscription["id"],
                "subscription_details": {"metadata": copy.deepcopy(subscription["metadata"])},
                "payment_intent": intent["id"],
                "amount_due": price["unit_amount"],
                "currency": price["currency"],
                "billing_reason": "subscription_create",
                "status": "open",
            }
        )

    def create_subscription(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = self._customer_ref(params)
        if customer is None:
            raise missing("customer")
        items = params.get("items")
        if not items:
            raise missing("items")
        item = items[0]
        if "price" in item:
            price = self.objects.get(item["price"])
            if price is None:
                raise no_such("price", item["price"], "items[0][price]")
        elif "price_data" in item:
            price = self._price(item["price_data"], "items[0][price_data][")
        else:
            raise missing("items[0][price]")
        if not price.get("recurring"):
            raise Refusal(
                400,
                type="invalid_request_error",
                param="items[0][price]",
                message="The price specified is set to `type=one_time` but this field only "
                "accepts prices with `type=recurring`.",
            )
        subscription = self._store(
            {
                "id": self._new_id("sub"),
                "object": "subscription",
                "customer": customer,
                "status": "incomplete",
                "items": {
                    "object": "list",
                    "data": [{"id": self._new_id("si"), "price": copy.deepcopy(price)}],
                },
                "metadata": params.get("metadata") or {},
                "payment_behavior": params.get("payment_behavior"),
                "livemode": False,
            }
        )
        subscription["latest_invoice"] = self._invoice(subscription, price)["id"]
        return subscription

    def cancel_subscription(self, params: dict[str, Any], id: str) -> dict[str, Any]:
        subscription = self.objects.get(id)
        if subscription is None or subscription["object"] != "subscription":
            raise no_such("subscription", id, "id")
        subscription["status"] = "canceled"
        self.emit("customer.subscription.deleted", subscription)
        return subscription

    def renew(self, subscription_id: str, *, paid: bool) -> dict[str, Any]:
        """The next period's invoice of a subscription, paid or failed (what Stripe does on
        its own each period)."""
        subscription = self.objects[subscription_id]
        price = subscription["items"]["data"][0]["price"]
        invoice = self._invoice(subscription, price)
        invoice["billing_reason"] = "subscription_cycle"
        intent = self.objects[invoice["payment_intent"]]
        subscription["latest_invoice"] = invoice["id"]
        if paid:
            self._settle(intent)
        else:
            intent["status"] = "requires_payment_method"
            self.emit("payment_intent.payment_failed", intent)
            self.emit("invoice.payment_failed", invoice)
        return invoice


@asynccontextmanager
async def running_standin(
    standin: StripeStandIn | None = None,
) -> AsyncIterator[tuple[StripeStandIn, str]]:
    """The stand-in on a loopback port: (stand-in, base URL)."""
    standin = standin or StripeStandIn()
    async with serve(standin.app()) as url:
        standin.url = url
        yield standin, url
