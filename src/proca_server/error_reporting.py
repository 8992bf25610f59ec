"""Optional error reporting to Sentry (`SENTRY_DSN`, the `sentry` extra).

What leaves the process is allow-listed, not filtered: an event keeps the exception's type,
module and message (scrubbed of anything that looks like an email, a token, an address, a
number or an SQL statement), the stack's frames without their local variables, the log
message that reported it (scrubbed the same way, without its arguments), the request's method
and route template, and the release, environment, server name and runtime. Everything else
the SDK collects (headers, cookies, bodies, query strings, GraphQL documents and variables,
users, client addresses, the extra data of log records) is dropped before the event is sent.

Reported: exceptions that escape an HTTP route (the 500s), and log records at ERROR (a
resolver's crash, which the client sees as `internal`; the workers' and background loops'
failures). Records at WARNING and above become breadcrumbs of the next event, scrubbed too.
Never reported: the project's own errors (wrong input, permissions, not found, failed
log-ins), bad GraphQL documents, HTTP 4xx and cancellations."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from proca_server.config import ConfigError, Settings
from proca_server.errors import ProcaError, UserInputError
from proca_server.kit import extras
from proca_server.kit.logs import WithholdBodies

if TYPE_CHECKING:
    from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

EXTRA = "sentry"
FEATURE = "error reporting (SENTRY_DSN)"

# errors that are the caller's, not the server's: answered, never reported
EXPECTED: tuple[type[BaseException], ...] = (
    ProcaError,
    UserInputError,
    ConfigError,
    GraphQLError,
    asyncio.CancelledError,
)

MAX_TEXT = 1024
_REPORTED_LEVELS = {"warning", "error", "fatal", "critical"}

_SCRUB: list[tuple[re.Pattern[str], str]] = [
    # SQLAlchemy appends the statement and its parameters to a database error's message
    (re.compile(r"\[SQL: .*", re.DOTALL), "[SQL]"),
    # a URL may carry credentials, codes and a query string
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE), "[url]"),
    (re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|token|api[_-]?key|authorization|cookie)\b\s*[:=]\s*"
            r"(?:(?:bearer|basic)\s+)?\S+"
        ),
        r"\1=[filtered]",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+\S+"), r"\1 [filtered]"),
    # PostgreSQL's detail of a refused row: `Key (email)=(value) already exists`
    (re.compile(r"=\([^)]*\)"), "=([filtered])"),
    # JSON web tokens, then anything long that mixes letters and digits (tokens, keys, codes)
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), "[token]"),
    (
        re.compile(r"(?<![\w+/=-])(?=[\w+/=-]*\d)(?=[\w+/=-]*[A-Za-z])[\w+/=-]{16,}"),
        "[token]",
    ),
    # client addresses
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "[address]"),
    (
        re.compile(r"(?i)(?<![\w:.])(?=[0-9a-f:]*\d)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![\w:])"),
        "[address]",
    ),
    # phone numbers and the like
    (re.compile(r"\+?\d(?:[\s().-]*\d){6,}"), "[number]"),
]

_FRAME_KEYS = (
    "filename",
    "abs_path",
    "module",
    "function",
    "lineno",
    "colno",
    "in_app",
    # the server's own source lines, not data
    "context_line",
    "pre_context",
    "post_context",
)
_MECHANISM_KEYS = (
    "type",
    "handled",
    "synthetic",
    "exception_id",
    "parent_id",
    "source",
    "is_exception_group",
)
_TRACE_KEYS = ("trace_id", "span_id", "parent_span_id", "op", "status")
_PLAIN_KEYS = (
    "event_id",
    "timestamp",
    "level",
    "logger",
    "platform",
    "sdk",
    "release",
    "environment",
    "server_name",
    "dist",
    "fingerprint",
)
_HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def scrub(text: object) -> str:
    """`text` without what looks like personal data or a secret, at most MAX_TEXT long."""
    out = str(text)
    for pattern, replacement in _SCRUB:
        out = pattern.sub(replacement, out)
    return out if len(out) <= MAX_TEXT else out[:MAX_TEXT] + "…"


def is_expected(error: BaseException | None) -> bool:
    if error is None:
        return False
    if isinstance(error, EXPECTED):
        return True
    status = getattr(error, "status_code", None)
    return isinstance(status, int) and status < 500


def _record_message(record: logging.LogRecord) -> str:
    # the log handlers' own rule about message bodies first, then the scrubbing
    WithholdBodies().filter(record)
    try:
        return record.getMessage()
    except Exception:
        return str(record.msg)


def _frames(stacktrace: object) -> dict[str, Any] | None:
    if not isinstance(stacktrace, Mapping):
        return None
    frames = stacktrace.get("frames")
    if not isinstance(frames, list):
        return None
    return {
        "frames": [
            {key: frame[key] for key in _FRAME_KEYS if key in frame}
            for frame in frames
            if isinstance(frame, Mapping)
        ]
    }


def _exception(value: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key in ("type", "module"):
        if isinstance(value.get(key), str):
            kept[key] = value[key]
    if value.get("value") is not None:
        kept["value"] = scrub(value["value"])
    mechanism = value.get("mechanism")
    if isinstance(mechanism, Mapping):
        kept["mechanism"] = {k: mechanism[k] for k in _MECHANISM_KEYS if k in mechanism}
    stacktrace = _frames(value.get("stacktrace"))
    if stacktrace is not None:
        kept["stacktrace"] = stacktrace
    return kept


def _breadcrumb(crumb: Mapping[str, Any], message: str | None = None) -> dict[str, Any] | None:
    if crumb.get("type") != "log" or crumb.get("level") not in _REPORTED_LEVELS:
        return None
    kept = {k: crumb[k] for k in ("type", "category", "level", "timestamp") if k in crumb}
    text = message if message is not None else crumb.get("message")
    if text is not None:
        kept["message"] = scrub(text)
    return kept


def before_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
    record = (hint or {}).get("log_record")
    message = _record_message(record) if isinstance(record, logging.LogRecord) else None
    return _breadcrumb(crumb, message)


def before_send(event: Event, hint: Hint) -> Event | None:
    """The event as it may leave the process (see the module's docstring), or None for an
    expected error."""
    exc_info = (hint or {}).get("exc_info")
    if exc_info and is_expected(exc_info[1]):
        return None
    kept: dict[str, Any] = {k: event[k] for k in _PLAIN_KEYS if k in event}  # type: ignore[literal-required]

    exception = event.get("exception")
    if isinstance(exception, Mapping) and isinstance(exception.get("values"), list):
        kept["exception"] = {
            "values": [_exception(v) for v in exception["values"] if isinstance(v, Mapping)]
        }
    threads = event.get("threads")
    if isinstance(threads, Mapping) and isinstance(threads.get("values"), list):
        kept["threads"] = {
            "values": [
                {
                    **{k: t[k] for k in ("id", "crashed", "current") if k in t},
                    **(
                        {"stacktrace": frames}
                        if (frames := _frames(t.get("stacktrace"))) is not None
                        else {}
                    ),
                }
                for t in threads["values"]
                if isinstance(t, Mapping)
            ]
        }

    logentry = event.get("logentry")
    if isinstance(logentry, Mapping):
        record = (hint or {}).get("log_record")
        formatted = (
            _record_message(record)
            if isinstance(record, logging.LogRecord)
            else logentry.get("formatted") or logentry.get("message")
        )
        kept["logentry"] = {
            "message": scrub(logentry.get("message", "")),
            "formatted": scrub(formatted or ""),
        }
    message = event.get("message")
    if isinstance(message, str):
        kept["message"] = scrub(message)

    # the route's template (`/link/{verb}/{code}`), never the path the client sent
    info = event.get("transaction_info")
    route = event.get("transaction") if isinstance(info, Mapping) else None
    if isinstance(route, str) and info and info.get("source") == "route":
        kept["transaction"] = route
        kept["transaction_info"] = {"source": "route"}
    else:
        route = None
    request = event.get("request")
    if isinstance(request, Mapping):
        method = request.get("method")
        kept_request: dict[str, Any] = {}
        if isinstance(method, str) and method.upper() in _HTTP_METHODS:
            kept_request["method"] = method.upper()
        if route is not None:
            kept_request["url"] = route
        if kept_request:
            kept["request"] = kept_request

    contexts = event.get("contexts")
    if isinstance(contexts, Mapping):
        kept_contexts: dict[str, Any] = {}
        for name in ("runtime", "os"):
            if isinstance(contexts.get(name), Mapping):
                kept_contexts[name] = {
                    k: v for k, v in contexts[name].items() if k in ("name", "version", "build")
                }
        trace = contexts.get("trace")
        if isinstance(trace, Mapping):
            kept_contexts["trace"] = {k: trace[k] for k in _TRACE_KEYS if k in trace}
        response = contexts.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("status_code"), int):
            kept_contexts["response"] = {"status_code": response["status_code"]}
        kept["contexts"] = kept_contexts

    tags = event.get("tags")
    if isinstance(tags, Mapping) and isinstance(tags.get("component"), str):
        kept["tags"] = {"component": tags["component"]}

    breadcrumbs = event.get("breadcrumbs")
    values = breadcrumbs.get("values") if isinstance(breadcrumbs, Mapping) else None
    if isinstance(values, list):
        kept["breadcrumbs"] = {
            "values": [
                c
                for c in (_breadcrumb(v) for v in values if isinstance(v, Mapping))
                if c is not None
            ]
        }
    return kept  # type: ignore[return-value]


def _release() -> str | None:
    try:
        return f"proca-server@{metadata.version('proca-server')}"
    except metadata.PackageNotFoundError:
        return None


def start(settings: Settings, component: str) -> bool:
    """Report this process's unexpected errors when SENTRY_DSN is set (True then); `component`
    (api, worker, cli) tags its events. Raises MissingExtra, naming the extra to install,
    when SENTRY_DSN is set without the library, and ConfigError for a DSN it cannot use."""
    if not settings.sentry_dsn:
        return False
    extras.require(EXTRA, FEATURE)
    import sentry_sdk
    from sentry_sdk.integrations.atexit import AtexitIntegration
    from sentry_sdk.integrations.dedupe import DedupeIntegration
    from sentry_sdk.integrations.excepthook import ExcepthookIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.threading import ThreadingIntegration
    from sentry_sdk.scope import Scope as SentryScope
    from sentry_sdk.utils import BadDsn

    environment = settings.sentry_environment or settings.env
    client = sentry_sdk.get_client()
    if not (
        client.is_active()
        and client.options.get("dsn") == settings.sentry_dsn
        and client.options.get("environment") == environment
    ):
        try:
            sentry_sdk.init(
                dsn=settings.sentry_dsn,
                environment=environment,
                release=_release(),
                # only what is listed: no integration that records outgoing requests, SQL,
                # the command line or installed packages. HTTP requests are watched by
                # ReportCrashes, not by the SDK's Starlette integration, which cost ~170 µs
                # of CPU per request (as much as a whole signature on the signature lane).
                default_integrations=False,
                auto_enabling_integrations=False,
                integrations=[
                    LoggingIntegration(level=logging.WARNING, event_level=logging.ERROR),
                    DedupeIntegration(),
                    ExcepthookIntegration(),
                    AtexitIntegration(),
                    ThreadingIntegration(),
                ],
                # personal data is off by default (send_default_pii); these are belt and braces
                include_local_variables=False,
                max_request_body_size="never",
                auto_session_tracking=False,
                send_client_reports=False,
                before_send=before_send,
                before_breadcrumb=before_breadcrumb,
            )
        except BadDsn:
            raise ConfigError("SENTRY_DSN is not a valid Sentry DSN") from None
    SentryScope.get_global_scope().set_tag("component", component)
    return True


def instrument(app: Starlette, settings: Settings) -> None:
    """Start reporting for an API process (when SENTRY_DSN is set) and watch the app's
    requests. Call it once the app's other middleware is added: this one goes outside them."""
    if start(settings, "api"):
        app.add_middleware(ReportCrashes)


class ReportCrashes:
    """Each HTTP request and websocket gets its own scope: its breadcrumbs, and its method
    and route template on whatever is reported while it runs. An exception that escapes the
    app is reported, then raised on (the server answers 500 as it would without)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        import sentry_sdk

        with sentry_sdk.isolation_scope() as isolated:
            isolated.clear_breadcrumbs()
            isolated.add_event_processor(_describe_request(scope))
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                if not is_expected(exc):
                    sentry_sdk.capture_exception(exc)
                raise


def _describe_request(scope: Scope) -> Callable[[Event, Hint], Event | None]:
    def describe(event: Event, hint: Hint) -> Event | None:
        request: dict[str, Any] = {}
        if isinstance(scope.get("method"), str):
            request["method"] = scope["method"]
        # the router puts the matched route in the scope
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            request["url"] = route
            event["transaction"] = route
            event["transaction_info"] = {"source": "route"}
        event["request"] = request
        return event

    return describe


def flush(timeout: float = 2.0) -> None:
    """Send what is queued (blocking: call it in a thread from async code)."""
    if extras.installed(EXTRA):
        import sentry_sdk

        sentry_sdk.flush(timeout)


def stop() -> None:
    """Send what is queued and stop reporting in this process."""
    if not extras.installed(EXTRA):
        return
    import sentry_sdk
    from sentry_sdk.scope import Scope as SentryScope

    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=2.0)
    SentryScope.get_global_scope().set_client(None)
