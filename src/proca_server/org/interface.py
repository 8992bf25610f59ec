"""The `Org` interface, and who sees an org's private view (graphql/views.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLAbstractType, GraphQLResolveInfo

from proca_server.auth.permissions import Permission
from proca_server.errors import NotFound
from proca_server.graphql.access import auth_for
from proca_server.graphql.context import Context
from proca_server.graphql.scalars import Json
from proca_server.graphql.views import implementation
from proca_server.models import Org


@strawberry.interface(name="Org")
class OrgInterface:
    org: strawberry.Private[Org]
    # the view chosen by `org_view`: PrivateOrg, else PublicOrg
    private: strawberry.Private[bool] = False

    @classmethod
    def resolve_type(
        cls, obj: Any, info: GraphQLResolveInfo[Any], type_: GraphQLAbstractType
    ) -> str:
        return implementation(obj, "PublicOrg", "PrivateOrg")

    @strawberry.field
    def name(self) -> str:
        return self.org.name

    @strawberry.field
    def title(self) -> str:
        return self.org.title

    @strawberry.field
    def config(self) -> Json:
        return Json(self.org.config or {})


async def org_view(ctx: Context, org: Org, *, private: bool = False) -> OrgInterface:
    """The private view for the org's staff, users with manage_orgs, or when asked."""
    if not private:
        auth = await auth_for(ctx, org.id)
        private = auth is not None and (
            auth.staffer is not None or auth.can(Permission.MANAGE_ORGS)
        )
    return OrgInterface(org=org, private=private)


async def org_views(ctx: Context, orgs: Iterable[Org]) -> list[OrgInterface]:
    # together, so that the caller's memberships of all the orgs are looked up at once
    return list(await asyncio.gather(*(org_view(ctx, org) for org in orgs)))


async def org_of(ctx: Context, org_id: int | None) -> Org:
    org = await ctx.loaders.org.load(org_id) if org_id is not None else None
    if org is None:
        raise NotFound("Entity not found")
    return org


async def orgs_of(ctx: Context, org_ids: list[int]) -> list[Org]:
    orgs = await ctx.loaders.org.load_many(org_ids)
    found = [org for org in orgs if org is not None]
    if len(found) != len(orgs):
        raise NotFound("Entity not found")
    return found
