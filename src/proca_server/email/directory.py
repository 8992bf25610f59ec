"""The template directory: which template a name means for an org.

Lookup of (org, name, locale):
1. the org's local `email_templates` row for that name and locale (without a locale, any one
   of that name, English first): its text, or its `external_id` as a provider reference;
2. else the templates kept by the provider behind the org's email backend, cached per service:
   a name missing from the cache reloads the list once, right away; the cache also expires
   after `ttl`, so templates added at the provider show up.

Results: the template, `Missing.NOT_FOUND`, or `Missing.NOT_CONFIGURED` (the org has no email
backend). SMTP, HubSpot and the preview mailbox list no templates: only local names exist there.
A provider whose list cannot be read is logged and treated as having no templates (the worker
retries the email later)."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.email.backend import OrgEmailBackend, get_org_email_backend
from proca_server.email.backends.base import (
    EmailConfigError,
    RemoteTemplate,
    TemplateListError,
)
from proca_server.email.templates import ProviderTemplate, TemplateText, find_template
from proca_server.errors import BadArgument
from proca_server.kit.cache import Cache
from proca_server.models import EmailTemplate, Org

log = logging.getLogger(__name__)

DEFAULT_TTL = 300.0
# at most one reload a service per this many seconds on misses: a page naming a template that
# does not exist must not make every email call the provider
MISS_RELOAD_INTERVAL = 10.0
# providers' lists kept at a time (one per email backend service)
MAX_LISTINGS = 1_000


class Missing(enum.Enum):
    NOT_FOUND = "not_found"
    NOT_CONFIGURED = "not_configured"


class TemplateLister(Protocol):
    async def list_templates(self) -> list[RemoteTemplate]: ...


def default_lister(backend: OrgEmailBackend) -> TemplateLister | None:
    """The backend itself when its provider keeps templates (Mailjet, SES, Brevo)."""
    inner = backend.backend
    return inner if hasattr(inner, "list_templates") else None


@dataclass
class _Listing:
    loaded_at: float
    refs: dict[str, str]


class TemplateDirectory:
    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        miss_reload_interval: float = MISS_RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        lister_for: Callable[[OrgEmailBackend], TemplateLister | None] = default_lister,
    ) -> None:
        self.ttl = ttl
        self.miss_reload_interval = miss_reload_interval
        self._clock = clock
        self._lister_for = lister_for
        self._remote: Cache[int, _Listing] = Cache(MAX_LISTINGS, ttl, timer=clock)

    def clear(self) -> None:
        self._remote.clear()

    def holds(self, service_id: int) -> bool:
        """Whether the provider's list of the service is kept now."""
        return service_id in self._remote

    def forget(self, service_id: int | None) -> None:
        if service_id is not None:
            self._remote.pop(service_id)

    def forget_org(self, org: Org) -> None:
        """Drop the remote lists of the org's email backends (after `upsertTemplate`)."""
        self.forget(org.email_backend_id)
        self.forget(org.transactional_email_backend_id)

    async def _backend(self, session: AsyncSession, org: Org) -> OrgEmailBackend | None:
        try:
            return await get_org_email_backend(session, org)
        except EmailConfigError as exc:
            log.warning("org %s: its email backend is unusable: %s", org.name, exc)
            return None

    async def _load(self, service_id: int, lister: TemplateLister) -> _Listing:
        now = self._clock()
        try:
            templates = await lister.list_templates()
        except TemplateListError as exc:
            log.warning("templates of service %d could not be listed: %s", service_id, exc)
            templates = []
        # a name used twice at the provider: the first listed wins, as a stable choice
        refs: dict[str, str] = {}
        for template in templates:
            refs.setdefault(template.name, template.ref)
        listing = _Listing(now, refs)
        self._remote.put(service_id, listing, at=now)
        return listing

    async def _listing(self, service_id: int, lister: TemplateLister) -> _Listing:
        listing = self._remote.get(service_id)
        if listing is None:
            listing = await self._load(service_id, lister)
        return listing

    async def remote_template(
        self, backend: OrgEmailBackend, name: str
    ) -> ProviderTemplate | Missing:
        """`name` among the templates of the backend's provider."""
        lister = self._lister_for(backend)
        if backend.service is None or lister is None:
            return Missing.NOT_FOUND
        service_id = backend.service.id
        listing = await self._listing(service_id, lister)
        if name not in listing.refs and (
            self._clock() - listing.loaded_at >= self.miss_reload_interval
        ):
            listing = await self._load(service_id, lister)
        ref = listing.refs.get(name)
        return ProviderTemplate(ref) if ref is not None else Missing.NOT_FOUND

    async def lookup(
        self,
        session: AsyncSession,
        org: Org,
        name: str,
        locale: str | None = None,
        *,
        backend: OrgEmailBackend | None = None,
    ) -> TemplateText | ProviderTemplate | Missing:
        """The template `name` of the org. `backend` is the one that will send (it renders a
        provider template); by default the org's email backend."""
        local = await find_template(session, org.id, name, locale)
        if local is not None:
            return local
        if backend is None:
            backend = await self._backend(session, org)
        if backend is None:
            return Missing.NOT_CONFIGURED
        return await self.remote_template(backend, name)

    async def names(self, session: AsyncSession, org: Org) -> list[str]:
        """Local templates as `name@locale` (`name` without a locale), then the names kept by
        the provider of the org's email backend."""
        rows = await session.scalars(
            select(EmailTemplate)
            .where(EmailTemplate.org_id == org.id)
            .order_by(EmailTemplate.name, EmailTemplate.locale)
        )
        names = [f"{t.name}@{t.locale}" if t.locale else t.name for t in rows]
        backend = await self._backend(session, org)
        lister = self._lister_for(backend) if backend is not None else None
        if backend is not None and backend.service is not None and lister is not None:
            listing = await self._listing(backend.service.id, lister)
            names += sorted(listing.refs)
        return names

    async def has_template(self, session: AsyncSession, org: Org, name: str) -> bool | None:
        """Whether `name` is a template of the org in some locale; None when the org has no
        email backend (nothing to check the name against)."""
        backend = await self._backend(session, org)
        if backend is None:
            return None
        found = await self.lookup(session, org, name, None, backend=backend)
        return not isinstance(found, Missing)


directory = TemplateDirectory()


async def check_template_name(
    session: AsyncSession, org: Org, name: str | None, field: str
) -> None:
    """Refuse a template name (of an org, campaign or page setting) that names no template
    of the org, when the org has an email backend to look it up in."""
    if name and await directory.has_template(session, org, name) is False:
        raise BadArgument("Template not found", field=field)
