"""The storage backend (service `supabase`): the files attached to mail-to-target letters,
read from the org's Supabase Storage.

The widget uploads a supporter's files to the storage itself and sends their keys with the
action (`mtt.files`); the letters' sender downloads them with the service key and attaches
them (mtt/attachments.py). A key is `bucket/path/in/the/bucket`: ASCII letters, digits and
`-!_.*'()/`, split by `/` into segments none of which is empty, `.` or `..`. A key becomes
part of a URL path that the service key opens, so no segment may climb out of the object API.

Service fields: `host` the project URL (`https://<ref>.supabase.co`; a URL already ending in
`/storage/v1` is taken as is), `password` the service key, sent as `Authorization: Bearer`
and as `apikey` (the API gateway wants both), and `path`, when set, the one bucket keys may
name (the service key reads every bucket of the project: without it a supporter could name
any file there).

A file is `GET {host}/storage/v1/object/{bucket}/{path}`, its content type the answer's. The
storage answers an error as JSON `{"statusCode": "404", "error": "not_found", "message": …}`,
with that HTTP status or with 400 (older releases); both are read. Errors never carry the
service key, nor the key of the file (it may hold a name): they say which file of the letter
failed, by number, and its bucket."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Org, Service

KEY_RE = re.compile(r"^[-0-9a-zA-Z!_.*'()/]+$")
SERVICE_NAME = "supabase"
TIMEOUT = 30.0
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


def key_problem(key: str) -> str | None:
    """Why `key` is not a file key (None when it is one)."""
    if not KEY_RE.match(key):
        return "has invalid format"
    segments = key.split("/")
    if len(segments) < 2 or any(s in ("", ".", "..") for s in segments):
        return "has invalid format: a file key is bucket/path/to/file"
    return None


def split_key(key: str) -> tuple[str, str]:
    """(bucket, path in the bucket) of a valid key."""
    bucket, _, path = key.partition("/")
    return bucket, path


def bucket_problem(service: Service, key: str) -> str | None:
    """Why the service may not read `key` (a bucket other than its own), or None."""
    allowed = (service.path or "").strip().strip("/")
    if allowed and split_key(key)[0] != allowed:
        return f"must be files of the bucket {allowed!r}"
    return None


async def get_storage_service(session: AsyncSession, org_id: int | None) -> Service | None:
    """The org's storage backend service, if it has one."""
    if org_id is None:
        return None
    found = await session.execute(
        select(Service).join(Org, Org.storage_backend_id == Service.id).where(Org.id == org_id)
    )
    return found.scalar_one_or_none()


class StorageError(Exception):
    """A file could not be read. `kind`: not_found, not_authenticated, too_large, invalid_key,
    unavailable (the storage did not answer, or answered 5xx) or other; `retryable` says
    whether trying again later may help."""

    def __init__(self, kind: str, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retryable = retryable


class StorageConfigError(ValueError):
    """The service cannot be used as a storage backend (another type, no URL)."""


@dataclass(frozen=True)
class StoredFile:
    key: str
    content: bytes
    content_type: str

    @property
    def filename(self) -> str:
        return self.key.rpartition("/")[2]


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _error_kind(status: int, body: Any) -> tuple[str, bool]:
    """(kind, retryable) of a storage error answer."""
    code = status
    text = ""
    if isinstance(body, dict):
        try:
            code = int(body.get("statusCode") or status)
        except (TypeError, ValueError):
            code = status
        text = f"{body.get('error') or ''} {body.get('message') or ''}".lower()
    if code == 404 or "not found" in text or "not_found" in text:
        # kept retryable: a file can show up after the action (an upload finishing late)
        return "not_found", True
    if code in (401, 403) or "jwt" in text or "unauthorized" in text:
        # the org may correct its service key
        return "not_authenticated", True
    if code == 413:
        return "too_large", False
    if code >= 500 or code in (408, 429):
        return "unavailable", True
    return "other", False


class SupabaseStorage:
    name = SERVICE_NAME

    def __init__(
        self,
        url: str,
        service_key: str,
        *,
        bucket: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        base = url.strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise StorageConfigError("the Supabase service's host must be the project's URL")
        if not base.endswith("/storage/v1"):
            base += "/storage/v1"
        self.base_url = base
        self._key = service_key
        self.bucket = (bucket or "").strip().strip("/") or None
        self._client = client

    @classmethod
    def from_service(
        cls, service: Service, *, client: httpx.AsyncClient | None = None
    ) -> SupabaseStorage:
        if service.name != SERVICE_NAME:
            raise StorageConfigError(f"a {service.name} service is not a storage backend")
        return cls(service.host, service.password, bucket=service.path, client=client)

    def __repr__(self) -> str:
        return f"SupabaseStorage({self.base_url})"

    def object_url(self, key: str) -> str:
        bucket, path = split_key(key)
        # every segment is quoted: the key's `*'()!` are kept, nothing else is read as syntax
        quoted = "/".join(quote(s, safe="-_.!*'()") for s in (bucket, *path.split("/")))
        return f"{self.base_url}/object/{quoted}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}", "apikey": self._key}

    @asynccontextmanager
    async def _http(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is not None:
            yield self._client
            return
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as fresh:
            yield fresh

    async def download(self, key: str, *, limit: int, label: str = "the file") -> StoredFile:
        """The file of `key`, at most `limit` bytes. Raises StorageError; `label` names the
        file in its reason (never the key)."""
        problem = key_problem(key)
        if problem is not None:
            raise StorageError("invalid_key", f"{label}: the key {problem}", retryable=False)
        bucket = split_key(key)[0]
        if self.bucket and bucket != self.bucket:
            raise StorageError(
                "invalid_key", f"{label}: not in the bucket {self.bucket!r}", retryable=False
            )
        where = f"{label} (bucket {bucket!r})"
        try:
            async with (
                self._http() as client,
                client.stream("GET", self.object_url(key), headers=self._headers()) as response,
            ):
                if response.status_code != 200:
                    raw = await response.aread()
                    try:
                        body: Any = json.loads(raw)
                    except ValueError:
                        body = None
                    kind, retryable = _error_kind(response.status_code, body)
                    detail = kind.replace("_", " ")
                    raise StorageError(
                        kind,
                        f"{where}: {detail} (HTTP {response.status_code})",
                        retryable=retryable,
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise _too_large(where, limit)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(where, limit)
                    chunks.append(chunk)
                content_type = response.headers.get("content-type", "").split(";")[0].strip()
        except httpx.HTTPError as exc:
            reason = _scrub(f"{where}: storage unreachable: {type(exc).__name__}", self._key)
            raise StorageError("unavailable", reason, retryable=True) from None
        if not _CONTENT_TYPE.match(content_type):
            content_type = DEFAULT_CONTENT_TYPE
        return StoredFile(key, b"".join(chunks), content_type.lower())


def _too_large(where: str, limit: int) -> StorageError:
    return StorageError(
        "too_large", f"{where}: too large (over {limit} bytes left to the letter)", retryable=False
    )
