"""Prometheus metrics: the metric objects, the `/metrics` route and the optional exporter on
`METRICS_PORT`.

Code that counts something imports the metric from here and calls it directly
(`ACTIONS_RECEIVED.labels(kind="addAction").inc()`); metrics never fail the caller.

Serving:
- by default the API serves `GET /metrics`;
- with `METRICS_PORT` set, `/metrics` on the API answers 404 and `start_metrics_server()`
  serves the metrics on that port instead (on `LISTEN_IP`);
- uvicorn with several workers (or API and worker processes side by side) keeps one set of
  metrics per process: set `PROMETHEUS_MULTIPROC_DIR` to an empty, writable directory, the
  same for all processes and wiped at each deployment, and every process writes its metrics
  there and any of them answers with the sum. The variable must be set before the server
  starts (prometheus_client reads it when a metric is created).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from time import perf_counter
from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PORT_ENV = "METRICS_PORT"

# -- actions and the processing pipeline ---------------------------------------------------

# kind: addActionContact | addAction
ACTIONS_RECEIVED = Counter("proca_actions_received", "Actions accepted by the API.", ["kind"])
# stage: the processing stage (supporter_confirm, action_confirm, deliver, ...)
ACTIONS_PROCESSED = Counter(
    "proca_actions_processed", "Actions moved to a processing stage.", ["stage"]
)
PROCESSING_LAG = Histogram(
    "proca_processing_lag_seconds",
    "Seconds from an action's insertion to its processing.",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
PROCESSING_BATCH_SIZE = Histogram(
    "proca_processing_batch_actions",
    "Actions taken together into one processing transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
PROCESSING_BATCH_DURATION = Histogram(
    "proca_processing_batch_seconds",
    "Time one processing transaction took (load, publish with confirms, update, commit).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# exchange: the exchange name pattern, org id left out (org.event, org.confirm, ...)
PUBLISH_FAILURES = Counter(
    "proca_publish_failures", "Messages that could not be published to the broker.", ["exchange"]
)
# exchange: as above (org.deliver, org.confirm.action, ...; `default` for the default exchange).
# A message no queue took: normal for an org with no queue bound for a stage (broker/base.py)
BROKER_UNROUTABLE = Counter(
    "proca_broker_unroutable",
    "Messages published to the broker that no queue took (nothing bound for their routing key).",
    ["exchange"],
)
SWEPT_ACTIONS = Counter(
    "proca_swept_actions", "Actions found unprocessed by the sweeper and processed again."
)

# -- workers -------------------------------------------------------------------------------

# worker: webhook | sqs | email_supporter | ...
MESSAGES_DELIVERED = Counter(
    "proca_messages_delivered",
    "Messages a worker delivered to their destination.",
    ["worker"],
)
# outcome: retry (will come back) | parked (permanent error or retry limit reached)
WORKER_FAILURES = Counter(
    "proca_worker_failures", "Messages a worker failed to deliver.", ["worker", "outcome"]
)
WORKER_RETRIES = Counter(
    "proca_worker_retries", "Redeliveries of messages that failed before.", ["worker"]
)
WORKER_DURATION = Histogram(
    "proca_worker_batch_duration_seconds",
    "Time a worker spent on one batch.",
    ["worker"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# outcome: ok | not_found | timeout | unavailable | refused | invalid | no_backend
# (workers/detail.py)
DETAIL_LOOKUPS = Counter(
    "proca_detail_lookups", "Supporter lookups in orgs' detail backends.", ["outcome"]
)
# reason: address | email (action/velocity.py)
SIGNATURES_REFUSED = Counter(
    "proca_signatures_refused", "Signatures refused by the velocity limits.", ["reason"]
)
# the signature lane (action/lane.py): the signatures it answered, and those it left to the
# general path by reason: captcha | idempotency | input | invalid | cache | document |
# velocity | pool | refused | error (lane.py FALLBACKS; "error" is a bug)
SIGNATURE_LANE_ANSWERED = Counter(
    "proca_signature_lane_answered", "Signatures the signature lane stored and answered."
)
SIGNATURE_LANE_FALLBACKS = Counter(
    "proca_signature_lane_fallbacks",
    "Signatures the signature lane left to the general path.",
    ["reason"],
)
REQUEST_LIMITS = Counter(
    "proca_request_limit_refusals", "Requests refused by a request limit.", ["limit"]
)
REQUEUED_ACTIONS = Counter(
    "proca_requeued_actions", "Actions sent again to a queue by requeueActions.", ["destination"]
)

# -- email ---------------------------------------------------------------------------------

_LAG_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
EMAIL_SUPPORTER_CONFIRM_LAG = Histogram(
    "proca_email_supporter_confirm_lag_seconds",
    "Seconds from an action's insertion to its confirmation email being sent.",
    ["org_id"],
    buckets=_LAG_BUCKETS,
)
EMAIL_THANK_YOU_LAG = Histogram(
    "proca_email_thank_you_lag_seconds",
    "Seconds from an action's insertion to its thank-you email being sent.",
    ["org_id"],
    buckets=_LAG_BUCKETS,
)
# kind: supporter_confirm | thank_you
EMAIL_LAG_UNKNOWN = Counter(
    "proca_email_lag_unknown",
    "Supporter emails sent for an action whose insertion time is unknown.",
    ["kind"],
)
EMAIL_REMINDER_CONFIRM = Counter(
    "proca_email_reminder_confirm", "Confirmation reminder emails sent."
)
# backend: smtp | mailjet | ses | brevo | hubspot | preview (email/backend.py: count_sent)
EMAILS_SENT = Counter("proca_emails_sent", "Emails handed to an email backend.", ["backend"])
_EMAIL_LAG = {"supporter_confirm": EMAIL_SUPPORTER_CONFIRM_LAG, "thank_you": EMAIL_THANK_YOU_LAG}

# -- email provider webhooks ---------------------------------------------------------------

# provider: mailjet | brevo | ses | ...
EMAIL_PROVIDER_EVENTS = Counter(
    "proca_email_provider_events", "Events received from email providers.", ["provider"]
)
EMAIL_PROVIDER_BOUNCES = Counter(
    "proca_email_provider_bounces",
    "Bounces and complaints received from email providers.",
    ["provider", "reason"],
)

# -- exports and mail-to-target ------------------------------------------------------------

EXPORT_ACTIONS_COUNT = Counter(
    "proca_export_actions", "Actions exported through exportActions.", ["org_id"]
)
EXPORT_ACTIONS_TIME = Histogram(
    "proca_export_actions_seconds",
    "Time spent on one exportActions call.",
    ["org_id"],
    buckets=(0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)

# -- mail to target ------------------------------------------------------------------------

# provider: mailjet | brevo; event: mtt.tracking.EventKind (sent, delivered, open, click,
# bounce, soft_bounce, blocked, spam, unsub, other). Bounces of letters are also counted in
# EMAIL_PROVIDER_BOUNCES, with every other bounce.
MTT_PROVIDER_EVENTS = Counter(
    "proca_mtt_provider_events",
    "Events received from email providers about mail-to-target letters.",
    ["provider", "event"],
)
# outcome: sent | retried | failed | cancelled | undeliverable | in_doubt
MTT_LETTERS = Counter(
    "proca_mtt_letters", "Mail-to-target letters settled by this process.", ["outcome"]
)
# phase: plan (ranking and planning of every running campaign)
MTT_TICK_SECONDS = Histogram(
    "proca_mtt_tick_seconds",
    "Duration of one mail-to-target planning pass.",
    ["phase"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# mode: drip | hourly
MTT_CAMPAIGNS_RUNNING = Gauge(
    "proca_mtt_campaigns_running",
    "Mail-to-target campaigns in their sending days.",
    ["mode"],
    multiprocess_mode="max",
)
# campaign: the campaign's name; state: sent | pending | failed | cancelled | undeliverable |
# in_doubt | duplicates (read from the database every minute)
MTT_CAMPAIGN_LETTERS = Gauge(
    "proca_mtt_campaign_letters",
    "Letters of a mail-to-target campaign, by state.",
    ["campaign", "state"],
    multiprocess_mode="max",
)

# -- database ------------------------------------------------------------------------------

# db.SLOW_QUERY_SECONDS is the threshold
SLOW_QUERIES = Counter("proca_repo_slow_queries", "Database queries that took over 10 s.")


def observe_processing_lag(stage: str, inserted_at: datetime, now: datetime | None = None) -> None:
    """Record the time from an action's insertion (`action.inserted_at`) to now."""
    if inserted_at.tzinfo is None:
        inserted_at = inserted_at.replace(tzinfo=UTC)
    lag = ((now or datetime.now(UTC)) - inserted_at).total_seconds()
    PROCESSING_LAG.labels(stage=stage).observe(max(lag, 0.0))


def observe_email_lag(
    kind: str, org_id: int, inserted_at: datetime | None, now: datetime | None = None
) -> None:
    """Record a supporter email (`kind`: supporter_confirm | thank_you) handed to its backend:
    the time since its action's insertion, or EMAIL_LAG_UNKNOWN without that time."""
    if inserted_at is None:
        EMAIL_LAG_UNKNOWN.labels(kind=kind).inc()
        return
    if inserted_at.tzinfo is None:
        inserted_at = inserted_at.replace(tzinfo=UTC)
    lag = ((now or datetime.now(UTC)) - inserted_at).total_seconds()
    _EMAIL_LAG[kind].labels(org_id=str(org_id)).observe(max(lag, 0.0))


@contextmanager
def timed(histogram: Histogram, **labels: str) -> Iterator[None]:
    start = perf_counter()
    try:
        yield
    finally:
        (histogram.labels(**labels) if labels else histogram).observe(perf_counter() - start)


# -- serving -------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def metrics_port() -> int | None:
    """`METRICS_PORT`, when the metrics are served on their own port."""
    value = os.environ.get(METRICS_PORT_ENV, "").strip()
    if not value:
        return None
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"{METRICS_PORT_ENV} is not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"{METRICS_PORT_ENV} is not a port number: {value!r}")
    return port


def collecting_registry() -> CollectorRegistry:
    """The registry to read: every process's metrics in multiprocess mode, else this one's."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render_metrics() -> bytes:
    return generate_latest(collecting_registry())


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint() -> Response:
    if metrics_port() is not None:
        return Response("metrics are served on METRICS_PORT\n", status_code=404)
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)


class MetricsServer:
    """The exporter on its own port, in a daemon thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_metrics_server(host: str = "127.0.0.1", port: int | None = None) -> MetricsServer | None:
    """Serve the metrics on `port` (default `METRICS_PORT`) in a background thread.

    None when no port is configured, or when the port is taken: with several processes
    sharing a multiprocess directory, the first one to bind serves them all."""
    port = port if port is not None else metrics_port()
    if port is None:
        return None
    try:
        server, thread = start_http_server(port, addr=host, registry=collecting_registry())
    except OSError as exc:
        log.info("metrics port %s not bound here (%s)", port, exc.strerror)
        return None
    return MetricsServer(server, thread)


def mark_process_dead(pid: int) -> None:
    """Call when a worker process exits in multiprocess mode, so its live gauges are dropped."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
