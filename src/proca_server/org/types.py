"""GraphQL types of orgs: the public and private views, keys, services, staff."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from proca_server.audit.api import AuditEntryType, audit_log
from proca_server.auth.permissions import Permission, role_of
from proca_server.email.directory import directory as template_directory
from proca_server.errors import BadArgument, NotFound
from proca_server.graphql.access import auth_for
from proca_server.graphql.context import Context
from proca_server.graphql.enums import ContactSchemaEnum, ServiceNameEnum
from proca_server.graphql.scalars import DateTime, Json, NaiveDateTime
from proca_server.kit import base64url
from proca_server.models import ActionPage, Campaign, Org, PublicKey, Service
from proca_server.org import repository

if TYPE_CHECKING:
    from proca_server.action_page.types import ActionPageInterface
    from proca_server.campaign.types import CampaignInterface

CampaignRef = Annotated["CampaignInterface", strawberry.lazy("proca_server.campaign.types")]
ActionPageRef = Annotated["ActionPageInterface", strawberry.lazy("proca_server.action_page.types")]

Ctx = Info[Context, None]


def _naive(value: datetime | None) -> NaiveDateTime | None:
    return None if value is None else NaiveDateTime(value)


@strawberry.type(name="Key")
class KeyType:
    id: int
    name: str
    public: str
    active: bool
    expired: bool
    expired_at: NaiveDateTime | None

    @classmethod
    def of(cls, key: PublicKey) -> KeyType:
        return cls(
            id=key.id,
            name=key.name,
            public=base64url.encode(key.public),
            active=key.active,
            expired=key.expired,
            expired_at=_naive(key.updated_at) if key.expired else None,
        )


@strawberry.type(name="KeyWithPrivate")
class KeyWithPrivateType:
    id: int
    name: str
    public: str
    private: str
    active: bool
    expired: bool
    expired_at: NaiveDateTime | None


@strawberry.type(name="KeyIds")
class KeyIdsType:
    id: int
    public: str


@strawberry.type(name="Service")
class ServiceType:
    """A service as the API shows it: never with its password."""

    id: int
    name: ServiceNameEnum
    host: str | None
    user: str | None
    path: str | None
    sending_from: str | None
    transactional_email_budget: int | None

    @classmethod
    def of(cls, service: Service) -> ServiceType:
        return cls(
            id=service.id,
            name=ServiceNameEnum.of_name(service.name) or ServiceNameEnum.WEBHOOK,
            host=service.host,
            user=service.user,
            path=service.path,
            sending_from=service.sending_from,
            transactional_email_budget=service.transactional_email_budget,
        )


@strawberry.type(name="OrgUser")
class OrgUserType:
    email: str
    role: str
    created_at: NaiveDateTime
    joined_at: NaiveDateTime
    last_signin_at: NaiveDateTime | None


@strawberry.type(name="PersonalData")
class PersonalDataType:
    contact_schema: ContactSchemaEnum
    supporter_confirm: bool
    supporter_confirm_template: str | None
    high_security: bool
    doi_thank_you: bool
    reply_enabled: bool | None
    sender_rewrite: bool | None


@strawberry.type(name="Processing")
class ProcessingType:
    org: strawberry.Private[Org]
    email_from: str | None
    email_backend: ServiceNameEnum | None
    transactional_email_backend: ServiceNameEnum | None
    supporter_confirm: bool
    supporter_confirm_template: str | None
    doi_thank_you: bool
    custom_supporter_confirm: bool
    custom_action_confirm: bool
    custom_action_deliver: bool
    custom_event_deliver: bool
    event_backend: ServiceNameEnum | None
    push_backend: ServiceNameEnum | None
    storage_backend: ServiceNameEnum | None
    detail_backend: ServiceNameEnum | None

    @strawberry.field
    async def email_templates(self, info: Ctx) -> list[str] | None:
        return await template_directory.names(info.context.session, self.org)


@strawberry.input(name="SelectKey")
class SelectKey:
    id: int | None = None
    active: bool | None = None
    public: str | None = None


@strawberry.input(name="SelectService")
class SelectService:
    name: ServiceNameEnum | None = None


@strawberry.input(name="SelectCampaign")
class SelectCampaign:
    title_like: str | None = None
    org_name: str | None = None


@strawberry.input(name="SelectActionPage")
class SelectActionPage:
    campaign_id: int | None = None


@strawberry.interface(name="Org")
class OrgInterface:
    m: strawberry.Private[Org]

    @strawberry.field
    def name(self) -> str:
        return self.m.name

    @strawberry.field
    def title(self) -> str:
        return self.m.title

    @strawberry.field
    def config(self) -> Json:
        return Json(self.m.config or {})


@strawberry.type(name="PublicOrg")
class PublicOrg(OrgInterface):
    pass


async def _backend(ctx: Context, service_id: int | None) -> ServiceNameEnum | None:
    if service_id is None:
        return None
    service = await ctx.session.get(Service, service_id)
    return ServiceNameEnum.of_name(service.name) if service else None


def _select_public(public: str | None) -> bytes | None:
    if public is None:
        return None
    try:
        return base64url.decode(public)
    except ValueError as exc:
        raise BadArgument("public: Cannot decode from Base64url", field="public") from exc


async def _keys(ctx: Context, org_id: int, select: SelectKey) -> list[KeyType]:
    keys = await repository.list_keys(
        ctx.session,
        org_id,
        id=select.id,
        active=select.active,
        public=_select_public(select.public),
    )
    return [KeyType.of(k) for k in keys]


@strawberry.type(name="PrivateOrg")
class PrivateOrg(OrgInterface):
    @strawberry.field
    def id(self) -> int:
        return self.m.id

    @strawberry.field
    def personal_data(self) -> PersonalDataType:
        org = self.m
        return PersonalDataType(
            contact_schema=ContactSchemaEnum.of(org.contact_schema),
            supporter_confirm=org.supporter_confirm,
            supporter_confirm_template=org.supporter_confirm_template,
            high_security=org.high_security,
            doi_thank_you=org.doi_thank_you,
            reply_enabled=org.reply_enabled,
            sender_rewrite=org.sender_rewrite,
        )

    @strawberry.field
    async def processing(self, info: Ctx) -> ProcessingType:
        org, ctx = self.m, info.context
        return ProcessingType(
            org=org,
            email_from=org.email_from,
            email_backend=await _backend(ctx, org.email_backend_id),
            transactional_email_backend=await _backend(ctx, org.transactional_email_backend_id),
            supporter_confirm=org.supporter_confirm,
            supporter_confirm_template=org.supporter_confirm_template,
            doi_thank_you=org.doi_thank_you,
            custom_supporter_confirm=org.custom_supporter_confirm,
            custom_action_confirm=org.custom_action_confirm,
            custom_action_deliver=org.custom_action_deliver,
            custom_event_deliver=org.custom_event_deliver,
            event_backend=await _backend(ctx, org.event_backend_id),
            push_backend=await _backend(ctx, org.push_backend_id),
            storage_backend=await _backend(ctx, org.storage_backend_id),
            detail_backend=await _backend(ctx, org.detail_backend_id),
        )

    @strawberry.field
    async def keys(self, info: Ctx, select: SelectKey | None = None) -> list[KeyType]:
        return await _keys(info.context, self.m.id, select or SelectKey())

    @strawberry.field
    async def key(self, info: Ctx, select: SelectKey) -> KeyType:
        keys = await _keys(info.context, self.m.id, select)
        if not keys:
            raise NotFound("not_found")
        return keys[0]

    @strawberry.field
    async def services(
        self, info: Ctx, select: SelectService | None = None
    ) -> list[ServiceType | None]:
        name = select.name.value if select and select.name else None
        services = await repository.list_services(info.context.session, self.m.id, name)
        return [ServiceType.of(s) for s in services]

    @strawberry.field
    async def users(self, info: Ctx) -> list[OrgUserType | None]:
        staff = await repository.list_staff(info.context.session, self.m.id)
        return [
            OrgUserType(
                email=user.email,
                role=role_of(staffer.perms),
                created_at=NaiveDateTime(user.inserted_at),
                joined_at=NaiveDateTime(staffer.inserted_at),
                last_signin_at=_naive(staffer.last_signin_at),
            )
            for staffer, user in staff
        ]

    @strawberry.field
    async def campaigns(self, info: Ctx, select: SelectCampaign | None = None) -> list[CampaignRef]:
        from proca_server.campaign.types import campaign_view

        ctx = info.context
        campaigns = await repository.list_campaigns(
            ctx.session, self.m.id, title_like=select.title_like if select else None
        )
        if select and select.org_name:
            lead = await repository.get_org_by_name(ctx.session, select.org_name)
            campaigns = [c for c in campaigns if lead is not None and c.org_id == lead.id]
        return [await campaign_view(ctx, c) for c in campaigns]

    @strawberry.field
    async def campaign(self, info: Ctx, id: int) -> CampaignRef:
        from proca_server.campaign.types import campaign_view

        ctx = info.context
        for campaign in await repository.list_campaigns(ctx.session, self.m.id):
            if campaign.id == id:
                return await campaign_view(ctx, campaign)
        raise NotFound("Cannot find campaign")

    @strawberry.field
    async def action_pages(
        self, info: Ctx, select: SelectActionPage | None = None
    ) -> list[ActionPageRef]:
        from proca_server.action_page.types import page_view

        ctx = info.context
        pages = await repository.list_action_pages(
            ctx.session, self.m.id, campaign_id=select.campaign_id if select else None
        )
        return [await page_view(ctx, p) for p in pages]

    @strawberry.field
    async def action_page(
        self, info: Ctx, id: int | None = None, name: str | None = None
    ) -> ActionPageRef:
        from proca_server.action_page.types import page_view
        from proca_server.graphql.access import load

        ctx = info.context
        page = await load(ctx.session, ActionPage, id=id, name=name)
        if page.org_id != self.m.id:
            raise NotFound("Entity not found")
        return await page_view(ctx, page)

    # the org's audit trail, newest first, for its owners and instance admins (an addition)
    @strawberry.field
    async def audit_log(
        self, info: Ctx, since: DateTime | None = None, limit: int | None = None
    ) -> list[AuditEntryType]:
        return await audit_log(info.context, self.m.id, since, limit)


async def org_view(ctx: Context, org: Org, *, private: bool = False) -> OrgInterface:
    """The private view for the org's staff, users with manage_orgs, or when asked."""
    if private:
        return PrivateOrg(m=org)
    auth = await auth_for(ctx, org.id)
    if auth is not None and (auth.staffer is not None or auth.can(Permission.MANAGE_ORGS)):
        return PrivateOrg(m=org)
    return PublicOrg(m=org)


async def org_of(ctx: Context, org_id: int | None) -> Org:
    org = await ctx.session.get(Org, org_id) if org_id is not None else None
    if org is None:
        raise NotFound("Entity not found")
    return org


__all__: list[Any] = ["Campaign", "OrgInterface", "PrivateOrg", "PublicOrg", "org_view"]
