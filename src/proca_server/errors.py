"""The error tree. Each class carries the `extensions.code` the clients expect;
graphql/errors.py is the only place that turns them into GraphQL errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ProcaError(Exception):
    code = "internal"
    http_status = 200

    def __init__(
        self,
        message: str,
        *,
        field: str | Sequence[str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # The input field the error is about; appended to the GraphQL path.
        self.field = [field] if isinstance(field, str) else list(field or [])
        self.extensions = extensions or {}

    def display(self) -> str:
        """One line for a person: `field: message` for an input error."""
        return f"{'.'.join(self.field)}: {self.message}" if self.field else self.message


class Unauthorized(ProcaError):
    code = "unauthorized"


class PermissionDenied(ProcaError):
    code = "permission_denied"


class NotFound(ProcaError):
    code = "not_found"


class BadArgument(ProcaError):
    code = "bad_arg"


class QueryTooComplex(ProcaError):
    """A document over one of the limits of graphql/limits.py."""

    code = "query_too_complex"


class AuthenticationFailed(ProcaError):
    """Credentials were sent but do not hold; the transport answers HTTP 401 (or 400)."""

    code = "unauthorized"
    http_status = 401

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the transport's answer carries."""
        return {}


class TooManyAttempts(AuthenticationFailed):
    """Too many failed log-ins (auth/throttle.py): HTTP 429, with Retry-After in seconds."""

    code = "too_many_requests"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManySignatures(ProcaError):
    """Over a signature velocity limit (action/velocity.py)."""

    code = "too_many_requests"


class PaymentRefused(ProcaError):
    """The payment provider refused a request (donation/stripe.py): the code is the
    provider's error type (`card_error`, `invalid_request_error`, ...), as the original
    answered, and the extensions carry the provider's details."""

    def __init__(self, message: str, *, code: str, extensions: dict[str, Any]) -> None:
        super().__init__(message, extensions=extensions)
        self.code = code


class UserInputError(Exception):
    """A CLI user's mistake: shown as one line, exit code 1."""
