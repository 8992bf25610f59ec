"""GraphQL types of orgs: the public and private views, keys, services, staff. The interface
and who sees which view: org/interface.py."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from proca_server.action_page.interface import ActionPageInterface, page_view, page_views
from proca_server.audit.api import AuditEntryType, audit_log
from proca_server.auth.permissions import role_of
from proca_server.campaign.interface import CampaignInterface, campaign_view, campaign_views
from proca_server.email.directory import directory as template_directory
from proca_server.errors import BadArgument, NotFound
from proca_server.graphql.access import load
from proca_server.graphql.context import Context
from proca_server.graphql.enums import ContactSchemaEnum, ServiceNameEnum
from proca_server.graphql.executor import SharedInAnswer
from proca_server.graphql.scalars import DateTime, NaiveDateTime
from proca_server.kit import base64url
from proca_server.models import ActionPage, Org, PublicKey, Service
from proca_server.org import repository
from proca_server.org.interface import OrgInterface

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
class KeyIdsType(SharedInAnswer):
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


@strawberry.type(name="PublicOrg")
class PublicOrg(OrgInterface):
    pass


async def _backends(ctx: Context, org: Org) -> dict[int, ServiceNameEnum | None]:
    """service id -> the name of each backend service the org has set."""
    ids = {
        org.email_backend_id,
        org.transactional_email_backend_id,
        org.event_backend_id,
        org.push_backend_id,
        org.storage_backend_id,
        org.detail_backend_id,
    }
    found = await ctx.loaders.service.load_many([i for i in ids if i is not None])
    return {s.id: ServiceNameEnum.of_name(s.name) for s in found if s is not None}


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
        return self.org.id

    @strawberry.field
    def personal_data(self) -> PersonalDataType:
        org = self.org
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
        org = self.org
        names = await _backends(info.context, org)

        def backend(service_id: int | None) -> ServiceNameEnum | None:
            return None if service_id is None else names.get(service_id)

        return ProcessingType(
            org=org,
            email_from=org.email_from,
            email_backend=backend(org.email_backend_id),
            transactional_email_backend=backend(org.transactional_email_backend_id),
            supporter_confirm=org.supporter_confirm,
            supporter_confirm_template=org.supporter_confirm_template,
            doi_thank_you=org.doi_thank_you,
            custom_supporter_confirm=org.custom_supporter_confirm,
            custom_action_confirm=org.custom_action_confirm,
            custom_action_deliver=org.custom_action_deliver,
            custom_event_deliver=org.custom_event_deliver,
            event_backend=backend(org.event_backend_id),
            push_backend=backend(org.push_backend_id),
            storage_backend=backend(org.storage_backend_id),
            detail_backend=backend(org.detail_backend_id),
        )

    @strawberry.field
    async def keys(self, info: Ctx, select: SelectKey | None = None) -> list[KeyType]:
        return await _keys(info.context, self.org.id, select or SelectKey())

    @strawberry.field
    async def key(self, info: Ctx, select: SelectKey) -> KeyType:
        keys = await _keys(info.context, self.org.id, select)
        if not keys:
            raise NotFound("not_found")
        return keys[0]

    @strawberry.field
    async def services(
        self, info: Ctx, select: SelectService | None = None
    ) -> list[ServiceType | None]:
        name = select.name.value if select and select.name else None
        services = await repository.list_services(info.context.session, self.org.id, name)
        return [ServiceType.of(s) for s in services]

    @strawberry.field
    async def users(self, info: Ctx) -> list[OrgUserType | None]:
        staff = await repository.list_staff(info.context.session, self.org.id)
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
    async def campaigns(
        self, info: Ctx, select: SelectCampaign | None = None
    ) -> list[CampaignInterface]:
        ctx = info.context
        campaigns = await repository.list_campaigns(
            ctx.session,
            self.org.id,
            title_like=select.title_like if select else None,
            lead_org_name=select.org_name if select and select.org_name else None,
        )
        return await campaign_views(ctx, campaigns)

    @strawberry.field
    async def campaign(self, info: Ctx, id: int) -> CampaignInterface:
        ctx = info.context
        for campaign in await repository.list_campaigns(ctx.session, self.org.id, id=id):
            return await campaign_view(ctx, campaign)
        raise NotFound("Cannot find campaign")

    @strawberry.field
    async def action_pages(
        self, info: Ctx, select: SelectActionPage | None = None
    ) -> list[ActionPageInterface]:
        ctx = info.context
        pages = await repository.list_action_pages(
            ctx.session, self.org.id, campaign_id=select.campaign_id if select else None
        )
        return await page_views(ctx, pages)

    @strawberry.field
    async def action_page(
        self, info: Ctx, id: int | None = None, name: str | None = None
    ) -> ActionPageInterface:
        ctx = info.context
        page = await load(ctx.session, ActionPage, id=id, name=name)
        if page.org_id != self.org.id:
            raise NotFound("Entity not found")
        return await page_view(ctx, page)

    # the org's audit trail, newest first, for its owners and instance admins (an addition)
    @strawberry.field
    async def audit_log(
        self, info: Ctx, since: DateTime | None = None, limit: int | None = None
    ) -> list[AuditEntryType]:
        return await audit_log(info.context, self.org.id, since, limit)


__all__ = ["OrgInterface", "PrivateOrg", "PublicOrg"]
