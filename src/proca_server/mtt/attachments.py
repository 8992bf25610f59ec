"""The files of the letters of one send batch (docs/mail-to-target.md, "Attached files").

A letter's files (`messages.files`: keys in the campaign lead org's storage backend,
service/storage.py) are downloaded and attached, the n-th with the content id `file<n>`:
inline when it is an image (an HTML template may show it as `cid:file1`), else as a file.
A letter is never sent without its files. What may go wrong, and what then happens:
- the org has no (usable) storage backend, a file is missing, the service key is refused, the
  storage does not answer: the letter fails this try, with the reason; it is tried again
  later, and FAILED after `MTT_MAX_ATTEMPTS` tries;
- the files weigh more than LETTER_LIMIT, a key names another bucket than the service's:
  FAILED at once.
A batch downloads each file once (an action writing to many targets gives each letter the
same files), up to about BATCH_BUDGET bytes; letters past it wait for the next batch."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from types import TracebackType

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.email.message import Attachment
from proca_server.models import Org, Service
from proca_server.service.storage import (
    DEFAULT_CONTENT_TYPE,
    TIMEOUT,
    StorageConfigError,
    StorageError,
    StoredFile,
    SupabaseStorage,
)

# what providers take in one message (Mailjet 15 MB, SES 10 MB of raw message, base64 included)
LETTER_LIMIT = 7 * 1024 * 1024
BATCH_BUDGET = 64 * 1024 * 1024


class AttachmentFailed(Exception):
    """The letter's files cannot be attached; `reason` says why (no key, no personal data)."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class OverBudget(Exception):
    """The batch holds enough files already: the letter waits for the next one."""


def as_attachment(number: int, stored: StoredFile) -> Attachment:
    content_type = stored.content_type
    if content_type == DEFAULT_CONTENT_TYPE:
        content_type = mimetypes.guess_type(stored.filename)[0] or DEFAULT_CONTENT_TYPE
    return Attachment(
        filename=stored.filename,
        content=stored.content,
        content_type=content_type,
        content_id=f"file{number}",
        inline=content_type.startswith("image/"),
    )


class Attachments:
    """Downloads for one batch: `async with Attachments(session) as files`."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        letter_limit: int | None = None,
        batch_budget: int | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._session = session
        self.letter_limit = LETTER_LIMIT if letter_limit is None else letter_limit
        self.batch_budget = BATCH_BUDGET if batch_budget is None else batch_budget
        self._client = client
        self._own_client: httpx.AsyncClient | None = None
        self._storages: dict[int, SupabaseStorage | AttachmentFailed] = {}
        self._files: dict[tuple[int, str], StoredFile] = {}
        self.used = 0

    async def __aenter__(self) -> Attachments:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._own_client is not None:
            await self._own_client.aclose()
        self._files.clear()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._own_client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
            self._client = self._own_client
        return self._client

    async def _storage(self, org: Org) -> SupabaseStorage:
        found = self._storages.get(org.id)
        if found is None:
            service = (
                await self._session.get(Service, org.storage_backend_id)
                if org.storage_backend_id is not None
                else None
            )
            if service is None:
                found = AttachmentFailed(
                    f"org {org.name} has no storage backend to read the letter's files from",
                    retryable=True,
                )
            else:
                try:
                    found = SupabaseStorage.from_service(service, client=self._http())
                except StorageConfigError as exc:
                    found = AttachmentFailed(
                        f"org {org.name}'s storage backend: {exc}", retryable=True
                    )
            self._storages[org.id] = found
        if isinstance(found, AttachmentFailed):
            raise found
        return found

    async def for_letter(self, org: Org, keys: Sequence[str]) -> tuple[Attachment, ...]:
        """The letter's files as attachments. Raises AttachmentFailed, or OverBudget when the
        batch has downloaded enough already."""
        if not keys:
            return ()
        storage = await self._storage(org)
        attached: list[Attachment] = []
        size = 0
        for number, key in enumerate(keys, 1):
            stored = self._files.get((org.id, key))
            if stored is None:
                if self.used >= self.batch_budget:
                    raise OverBudget
                label = f"file {number} of {len(keys)}"
                try:
                    stored = await storage.download(
                        key, limit=self.letter_limit - size, label=label
                    )
                except StorageError as exc:
                    raise AttachmentFailed(exc.reason, retryable=exc.retryable) from None
                self._files[(org.id, key)] = stored
                self.used += len(stored.content)
            size += len(stored.content)
            if size > self.letter_limit:
                megabytes = self.letter_limit / (1024 * 1024)
                raise AttachmentFailed(
                    f"the files weigh over the {megabytes:g} MB limit of a letter",
                    retryable=False,
                )
            attached.append(as_attachment(number, stored))
        return tuple(attached)
