"""Small stand-ins for the providers' HTTP APIs, answering as their documentation says, to be
served on loopback with tests.local_http.serve. Each keeps the requests it received."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MAILJET_KEY, MAILJET_SECRET = "mj-public-key", "mj-secret-Key-123"
BREVO_KEY = "xkeysib-brevo-Key-123"
HUBSPOT_AUTH = "Bearer pat-eu1-hubspot-Token-123"


@dataclass
class Seen:
    """Requests a fake provider received: (headers, JSON body)."""

    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)

    @property
    def bodies(self) -> list[Any]:
        return [body for _, body in self.requests]


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


def mailjet_app() -> tuple[Starlette, Seen]:
    """Send API v3.1: recipients at `invalid.example` are refused on `To[0].Email`, senders at
    `unverified.example` on `From`; one refused message makes the answer a 400."""
    seen = Seen()

    async def send(request: Request) -> JSONResponse:
        body = await request.json()
        seen.requests.append((dict(request.headers), body))
        if _basic(request) != (MAILJET_KEY, MAILJET_SECRET):
            return JSONResponse(
                {
                    "ErrorIdentifier": str(uuid.uuid4()),
                    "ErrorCode": "mj-0001",
                    "StatusCode": 401,
                    "ErrorMessage": "API key authentication/authorization failure.",
                },
                status_code=401,
            )
        results: list[dict[str, Any]] = []
        for message in body["Messages"]:
            to = message["To"][0]["Email"]
            if to.endswith("@invalid.example"):
                related, code, text = "To[0].Email", "send-0003", f'"{to}" is an invalid email'
            elif message["From"]["Email"].endswith("@unverified.example"):
                related, code, text = "From", "send-0008", "From is not an authorized sender"
            else:
                results.append(
                    {
                        "Status": "success",
                        "CustomID": message.get("CustomID", ""),
                        "To": [{"Email": to, "MessageUUID": str(uuid.uuid4()), "MessageID": 1}],
                        "Cc": [],
                        "Bcc": [],
                    }
                )
                continue
            results.append(
                {
                    "Status": "error",
                    "Errors": [
                        {
                            "ErrorIdentifier": str(uuid.uuid4()),
                            "ErrorCode": code,
                            "StatusCode": 400,
                            "ErrorMessage": text,
                            "ErrorRelatedTo": [related],
                        }
                    ],
                }
            )
        failed = any(r["Status"] == "error" for r in results)
        return JSONResponse({"Messages": results}, status_code=400 if failed else 200)

    return Starlette(routes=[Route("/v3.1/send", send, methods=["POST"])]), seen


def brevo_app() -> tuple[Starlette, Seen]:
    seen = Seen()

    async def send(request: Request) -> JSONResponse:
        body = await request.json()
        seen.requests.append((dict(request.headers), body))
        if request.headers.get("api-key") != BREVO_KEY:
            return JSONResponse({"code": "unauthorized", "message": "Key not found"}, 401)
        if "templateId" not in body and not body.get("htmlContent"):
            return JSONResponse(
                {"code": "missing_parameter", "message": "htmlContent is missing"}, 400
            )
        if body["to"][0]["email"].endswith("@invalid.example"):
            return JSONResponse({"code": "invalid_parameter", "message": "email is not valid"}, 400)
        return JSONResponse({"messageId": f"<{uuid.uuid4()}@smtp-relay.mailin.fr>"}, 201)

    return Starlette(routes=[Route("/v3/smtp/email", send, methods=["POST"])]), seen


def hubspot_app() -> tuple[Starlette, Seen]:
    """Recipients at `invalid.example` get the send result INVALID_TO_ADDRESS."""
    seen = Seen()

    async def send(request: Request) -> JSONResponse:
        body = await request.json()
        seen.requests.append((dict(request.headers), body))
        if request.headers.get("authorization") != HUBSPOT_AUTH:
            return JSONResponse(
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "correlationId": str(uuid.uuid4()),
                    "category": "INVALID_AUTHENTICATION",
                },
                401,
            )
        answer: dict[str, Any] = {
            "status": "PENDING",
            "statusId": str(uuid.uuid4()),
            "requestedAt": "2026-01-01T00:00:00Z",
        }
        if body["message"]["to"].endswith("@invalid.example"):
            answer.update(status="COMPLETE", sendResult="INVALID_TO_ADDRESS")
        return JSONResponse(answer, 201)

    path = "/marketing/transactional/2026-03/single-email/send"
    return Starlette(routes=[Route(path, send, methods=["POST"])]), seen


def mailjet_bounce(action_id: int, **over: Any) -> dict[str, Any]:
    event = {
        "event": "bounce",
        "time": 1430812195,
        "MessageID": 13792286917004336,
        "Message_GUID": "1ab23cd4-e567-8901-2345-6789f0gh1i2j",
        "email": "ann@example.org",
        "mj_campaign_id": 0,
        "mj_contact_id": 0,
        "customcampaign": "",
        "CustomID": f"action:{action_id}",
        "Payload": "",
        "blocked": False,
        "hard_bounce": True,
        "error_related_to": "recipient",
        "error": "user unknown",
        "comment": "Host or domain name not found.",
    }
    event.update(over)
    return event
