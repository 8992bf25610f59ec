"""A local captcha verification server (procaptcha and hCaptcha) that records what it was asked."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request


def verifier() -> tuple[FastAPI, list[dict[str, str]]]:
    app = FastAPI()
    seen: list[dict[str, str]] = []

    @app.post("/procaptcha")
    async def procaptcha(request: Request) -> dict[str, Any]:
        response = parse_qs((await request.body()).decode())["response"][0]
        seen.append({"service": "procaptcha", "response": response})
        if response == "good":
            return {"success": True, "method": "image"}
        return {"success": False, "reason": "expired"}

    @app.post("/hcaptcha")
    async def hcaptcha(request: Request) -> dict[str, Any]:
        form = parse_qs((await request.body()).decode())
        secret, response = form["secret"][0], form["response"][0]
        seen.append({"service": "hcaptcha", "secret": secret, "response": response})
        if secret == "s3cret" and response == "ok-token":
            return {"success": True}
        return {"success": False, "error-codes": ["invalid-input-response"]}

    return app, seen
