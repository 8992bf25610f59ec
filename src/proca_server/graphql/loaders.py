"""The request's DataLoaders: a field asked of every item of a list (each campaign's org,
each page's campaign, ...) is loaded for all of them at once, one statement per kind of key,
whatever the number of items. Resolvers load through `ctx.loaders`, never with SQL of their
own.

A `Loaders` belongs to one session: the request's (or a subscription event's). Loaded rows
are kept for the rest of the request, except across root mutations: each one starts afresh
(`Context.forget_loaded`), so a mutation's answer never shows rows read before an earlier
mutation of the document changed them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime
from functools import cached_property
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from proca_server.action_page import repository as pages
from proca_server.campaign import repository as campaigns
from proca_server.confirm import repository as confirms
from proca_server.models import (
    ActionPage,
    Campaign,
    Confirm,
    Mtt,
    Org,
    Service,
    Staffer,
    Target,
    TargetEmail,
    User,
)
from proca_server.org import repository as orgs
from proca_server.target import repository as targets
from proca_server.user import repository as users

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def one_each(keys: Sequence[K], rows: Iterable[T], key: Callable[[T], K]) -> list[T | None]:
    """For each key, its row or None."""
    found = {key(row): row for row in rows}
    return [found.get(k) for k in keys]


def all_each(keys: Sequence[K], rows: Iterable[T], key: Callable[[T], K]) -> list[list[T]]:
    """For each key, its rows, in the order the rows came."""
    grouped: dict[K, list[T]] = {k: [] for k in keys}
    for row in rows:
        grouped[key(row)].append(row)
    return [list(grouped[k]) for k in keys]


class Loaders:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @cached_property
    def org(self) -> DataLoader[int, Org | None]:
        return DataLoader(self._orgs)

    @cached_property
    def campaign(self) -> DataLoader[int, Campaign | None]:
        return DataLoader(self._campaigns)

    @cached_property
    def service(self) -> DataLoader[int, Service | None]:
        return DataLoader(self._services)

    @cached_property
    def user(self) -> DataLoader[int, User | None]:
        return DataLoader(self._users)

    @cached_property
    def membership(self) -> DataLoader[tuple[int, int], Staffer | None]:
        """(user id, org id) -> the user's membership of the org. Not kept here: the
        context's `staffers` keeps them, and forgets those a mutation changes."""
        return DataLoader(self._memberships, cache=False)

    @cached_property
    def campaign_pages(self) -> DataLoader[int, list[ActionPage]]:
        return DataLoader(self._campaign_pages)

    @cached_property
    def campaign_targets(self) -> DataLoader[int, list[Target]]:
        return DataLoader(self._campaign_targets)

    @cached_property
    def campaign_mtt(self) -> DataLoader[int, Mtt | None]:
        return DataLoader(self._campaign_mtts)

    @cached_property
    def launch_requests(self) -> DataLoader[int, list[Confirm]]:
        """campaign id -> the open requests to launch a page in it."""
        return DataLoader(self._launch_requests)

    @cached_property
    def target_emails(self) -> DataLoader[uuid.UUID, list[TargetEmail]]:
        return DataLoader(self._target_emails)

    @cached_property
    def template_ref(self) -> DataLoader[tuple[int, str], str | None]:
        """(org id, template name) -> the template's external id."""
        return DataLoader(self._template_refs)

    @cached_property
    def page_location(self) -> DataLoader[int, str | None]:
        return DataLoader(self._page_locations)

    @cached_property
    def page_last_action_at(self) -> DataLoader[int, datetime | None]:
        return DataLoader(self._page_last_action_times)

    async def _orgs(self, ids: list[int]) -> list[Org | None]:
        return one_each(ids, await orgs.list_orgs_by_id(self.session, set(ids)), lambda o: o.id)

    async def _campaigns(self, ids: list[int]) -> list[Campaign | None]:
        found = await campaigns.list_campaigns_by_id(self.session, set(ids))
        return one_each(ids, found, lambda c: c.id)

    async def _services(self, ids: list[int]) -> list[Service | None]:
        found = await orgs.list_services_by_id(self.session, set(ids))
        return one_each(ids, found, lambda s: s.id)

    async def _users(self, ids: list[int]) -> list[User | None]:
        return one_each(ids, await users.list_users_by_id(self.session, set(ids)), lambda u: u.id)

    async def _memberships(self, keys: list[tuple[int, int]]) -> list[Staffer | None]:
        found: list[Staffer] = []
        for user_id in {user_id for user_id, _ in keys}:  # one: the caller
            org_ids = {org_id for u, org_id in keys if u == user_id}
            found.extend(await orgs.list_memberships_in(self.session, user_id, org_ids))
        return one_each(keys, found, lambda s: (s.user_id, s.org_id))

    async def _campaign_pages(self, ids: list[int]) -> list[list[ActionPage]]:
        found = await pages.list_pages_of_campaigns(self.session, set(ids))
        return all_each(ids, found, lambda p: p.campaign_id)

    async def _campaign_targets(self, ids: list[int]) -> list[list[Target]]:
        found = await targets.list_targets_of_campaigns(self.session, set(ids))
        return all_each(ids, found, lambda t: t.campaign_id)

    async def _campaign_mtts(self, ids: list[int]) -> list[Mtt | None]:
        found = await campaigns.list_mtts(self.session, set(ids))
        return one_each(ids, found, lambda m: m.campaign_id)

    async def _launch_requests(self, ids: list[int]) -> list[list[Confirm]]:
        found = await confirms.list_launch_requests(self.session, set(ids))
        return all_each(ids, found, lambda c: c.subject_id)

    async def _target_emails(self, ids: list[uuid.UUID]) -> list[list[TargetEmail]]:
        found = await targets.list_emails(self.session, set(ids))
        return all_each(ids, found, lambda e: e.target_id)

    async def _template_refs(self, keys: list[tuple[int, str]]) -> list[str | None]:
        refs = await pages.list_template_refs(self.session, set(keys))
        return [refs.get(key) for key in keys]

    async def _page_locations(self, ids: list[int]) -> list[str | None]:
        found = await pages.list_last_locations(self.session, set(ids))
        return [found.get(page_id) for page_id in ids]

    async def _page_last_action_times(self, ids: list[int]) -> list[datetime | None]:
        found = await pages.list_last_action_times(self.session, set(ids))
        return [found.get(page_id) for page_id in ids]
