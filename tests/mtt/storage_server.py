"""A local server that speaks the Supabase Storage object API, as far as the widget (upload)
and the letters' sender (download) use it, with Supabase's error answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.local_http import serve

SERVICE_KEY = "service-role-key-for-tests"


def _error(status_code: str, error: str, message: str) -> JSONResponse:
    # the storage answers its errors with HTTP 400 and the real status in the body
    return JSONResponse(
        {"statusCode": status_code, "error": error, "message": message}, status_code=400
    )


@dataclass
class FakeStorage:
    key: str = SERVICE_KEY
    objects: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    # (method, bucket, path) of every request with the right key
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    url: str = ""

    def _authorised(self, request: Request) -> bool:
        return (
            request.headers.get("authorization") == f"Bearer {self.key}"
            and request.headers.get("apikey") == self.key
        )

    async def _object(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error("403", "Unauthorized", "invalid signature")
        bucket = request.path_params["bucket"]
        path = request.path_params["path"]
        self.requests.append((request.method, bucket, path))
        if request.method == "POST":
            content_type = request.headers.get("content-type", "application/octet-stream")
            self.objects[(bucket, path)] = (await request.body(), content_type)
            return JSONResponse({"Key": f"{bucket}/{path}"})
        found = self.objects.get((bucket, path))
        if found is None:
            return _error("404", "not_found", "Object not found")
        content, content_type = found
        return Response(content, media_type=content_type)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/storage/v1/object/{bucket}/{path:path}",
                    self._object,
                    methods=["GET", "POST"],
                )
            ]
        )

    async def upload(self, key: str, content: bytes, content_type: str) -> None:
        """What the widget does with a supporter's file."""
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.url}/storage/v1/object/{key}",
                content=content,
                headers={
                    "Authorization": f"Bearer {self.key}",
                    "apikey": self.key,
                    "Content-Type": content_type,
                },
            )
        response.raise_for_status()

    @property
    def downloads(self) -> list[str]:
        return [f"{b}/{p}" for m, b, p in self.requests if m == "GET"]


@asynccontextmanager
async def storage_server() -> AsyncIterator[FakeStorage]:
    storage = FakeStorage()
    async with serve(storage.app()) as url:
        storage.url = url
        yield storage
