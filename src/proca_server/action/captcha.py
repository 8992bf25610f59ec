"""Captcha for addActionContact, when the instance configures one (docs/configuration.md,
"Captcha"): hCaptcha (`HCAPTCHA_KEY`) or Procaptcha (`PROCAPTCHA_URL`). The code comes in
`extensions.captcha`, the service in `extensions.captcha_service` (default `CAPTCHA_SERVICE`)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from proca_server.config import Settings
from proca_server.errors import BadArgument, ProcaError, Unauthorized

log = logging.getLogger(__name__)
TIMEOUT = 10.0
PROCAPTCHA_REASONS = {
    "expired": "captcha: challenge expired",
    "already-used": "captcha: challenge already solved",
    "invalid": "captcha: challenge solution invalid",
}


class BadCaptcha(ProcaError):
    code = "bad_captcha"


def enabled(settings: Settings) -> list[str]:
    services = []
    if settings.hcaptcha_key:
        services.append("hcaptcha")
    if settings.procaptcha_url:
        services.append("procaptcha")
    return services


async def verify(settings: Settings, extensions: dict[str, Any]) -> dict[str, Any] | None:
    """Check the request's captcha; the verifier's metadata to keep, if any. Nothing is
    checked when no captcha service is configured."""
    services = enabled(settings)
    if not services:
        return None
    code = extensions.get("captcha")
    if not isinstance(code, str) or not code:
        raise Unauthorized("Captcha code is required for this API call", field="captcha")
    service = extensions.get("captcha_service") or extensions.get("captchaService")
    service = service or settings.captcha_service
    if service not in services:
        raise BadArgument("not enabled", field="captcha")
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            if service == "hcaptcha":
                await _hcaptcha(client, settings, code)
                return None
            return await _procaptcha(client, settings, code)
    except httpx.HTTPError as exc:
        log.warning("captcha verification failed: %s", type(exc).__name__)
        raise BadCaptcha(f"{service}: verification unavailable", field="captcha") from exc


async def _hcaptcha(client: httpx.AsyncClient, settings: Settings, code: str) -> None:
    response = await client.post(
        settings.hcaptcha_url, data={"secret": settings.hcaptcha_key or "", "response": code}
    )
    body = response.json() if response.status_code == 200 else {}
    if body.get("success") is True:
        return None
    errors = ", ".join(str(e) for e in body.get("error-codes", [])) or "invalid"
    raise BadCaptcha(f"Captcha code invalid ({errors})", field="captcha")


async def _procaptcha(
    client: httpx.AsyncClient, settings: Settings, code: str
) -> dict[str, Any] | None:
    assert settings.procaptcha_url
    response = await client.post(settings.procaptcha_url, data={"response": code})
    if response.status_code != 200:
        raise BadCaptcha(f"Procaptcha returned status {response.status_code}", field="captcha")
    body = response.json()
    if body.get("success") is True:
        return {"method": body["method"]} if "method" in body else None
    reason = PROCAPTCHA_REASONS.get(
        str(body.get("reason")), "captcha: challenge solution validation error"
    )
    raise BadCaptcha(reason, field="captcha")
