"""GraphQL: org queries and mutations — settings, processing, members, keys, services,
templates."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from proca_server.audit.api import audit_change
from proca_server.auth.permissions import Permission
from proca_server.contact.keyrings import keyring_for
from proca_server.email.directory import check_template_name
from proca_server.errors import BadArgument, NotFound
from proca_server.graphql.access import (
    Auth,
    allow,
    allow_staffer,
    auth_for,
    require_user,
)
from proca_server.graphql.context import Context
from proca_server.graphql.enums import ContactSchemaEnum, ServiceNameEnum, StatusEnum
from proca_server.graphql.scalars import Json, NaiveDateTime
from proca_server.key import service as keys
from proca_server.kit import base64url
from proca_server.models import Org
from proca_server.org import service, templates
from proca_server.org.interface import OrgInterface
from proca_server.org.repository import get_org_by_name, latest_service
from proca_server.org.types import KeyType, KeyWithPrivateType, PrivateOrg, ServiceType
from proca_server.processing import events
from proca_server.processing.handoff import org_changed_after_commit
from proca_server.service import budget
from proca_server.service.service import upsert_service
from proca_server.user import repository as users

Ctx = Info[Context, None]
UNSET: Any = strawberry.UNSET


@strawberry.input(name="OrgInput")
class OrgInput:
    name: str | None = None
    title: str | None = None
    contact_schema: ContactSchemaEnum | None = None
    supporter_confirm: bool | None = None
    supporter_confirm_template: str | None = UNSET
    doi_thank_you: bool | None = None
    reply_enabled: bool | None = None
    sender_rewrite: bool | None = None
    config: Json | None = None

    def attrs(self) -> dict[str, Any]:
        out = {
            k: v
            for k, v in vars(self).items()
            if v is not strawberry.UNSET and not (v is None and k != "supporter_confirm_template")
        }
        if isinstance(self.contact_schema, ContactSchemaEnum):
            out["contact_schema"] = self.contact_schema.model()
        return out


@strawberry.input(name="OrgUserInput")
class OrgUserInput:
    email: str
    role: str


@strawberry.input(name="GenKeyInput")
class GenKeyInput:
    name: str


@strawberry.input(name="AddKeyInput")
class AddKeyInput:
    name: str
    public: str


@strawberry.input(name="ServiceInput")
class ServiceInput:
    name: ServiceNameEnum
    host: str | None = None
    user: str | None = None
    password: str | None = None
    path: str | None = None
    sending_from: str | None = None
    transactional_email_budget: int | None = None


@strawberry.input(name="EmailTemplateInput")
class EmailTemplateInput:
    name: str
    locale: str | None = None
    external_id: str | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None


@strawberry.type(name="JoinOrgResult")
class JoinOrgResult:
    status: StatusEnum
    org: OrgInterface


@strawberry.type(name="ChangeUserStatus")
class ChangeUserStatus:
    status: StatusEnum


@strawberry.type(name="DeleteUserResult")
class DeleteUserResult:
    status: StatusEnum


@strawberry.type(name="ActivateKeyResult")
class ActivateKeyResult:
    status: StatusEnum


async def org_access(ctx: Context, name: str, *perms: Permission) -> tuple[Org, Auth]:
    """Load the org by name, then allow the caller by any of `perms`."""
    org = await service.access_org(ctx.session, name)
    return org, allow(await auth_for(ctx, org.id), *perms)


@strawberry.type
class OrgQuery:
    @strawberry.field
    async def org(self, info: Ctx, name: str) -> PrivateOrg:
        ctx = info.context
        org = await service.access_org(ctx.session, name)
        allow_staffer(await auth_for(ctx, org.id))
        return PrivateOrg(org=org)


ORG_BACKENDS = {
    "email_backend": "email_backend_id",
    "transactional_email_backend": "transactional_email_backend_id",
    "event_backend": "event_backend_id",
    "storage_backend": "storage_backend_id",
    "detail_backend": "detail_backend_id",
    "push_backend": "push_backend_id",
}
SYSTEM_ALLOWED = ("email_backend", "transactional_email_backend")
# who may manage an org's encryption keys
KEY_PERMISSIONS = (Permission.CHANGE_ORG_SETTINGS, Permission.EXPORT_CONTACTS)


async def _resolve_backend(
    ctx: Context, org: Org, arg: str, value: ServiceNameEnum | None
) -> int | None:
    if value is None:
        return None
    field = "".join(p if i == 0 else p.title() for i, p in enumerate(arg.split("_")))
    if value is ServiceNameEnum.SYSTEM:
        if arg not in SYSTEM_ALLOWED:
            raise BadArgument("SYSTEM can only lend an email backend", field=field)
        instance = await get_org_by_name(ctx.session, ctx.settings.org_name)
        borrowed = getattr(instance, ORG_BACKENDS[arg], None) if instance else None
        if borrowed is None and instance is not None:
            borrowed = instance.email_backend_id
        if borrowed is None:
            raise BadArgument("the instance has no email backend to lend", field=field)
        return int(borrowed)
    found = await latest_service(ctx.session, org.id, value.value)
    if found is None:
        raise BadArgument(f"the org has no {value.name} service", field=field)
    return found.id


@strawberry.type
class OrgMutation:
    @strawberry.mutation
    async def add_org(self, info: Ctx, input: OrgInput) -> OrgInterface:
        ctx = info.context
        user = require_user(ctx)
        org = await service.add_org(ctx.session, user, input.attrs(), ctx.settings.org_name)
        org_changed_after_commit(ctx.pipeline, ctx.after_commit, org.id)
        events.publish_after_commit(
            ctx.pipeline,
            ctx.after_commit,
            await events.new_org(ctx.session, ctx.settings, user, org),
        )
        ctx.staffers.pop((user.id, org.id), None)
        return PrivateOrg(org=org)

    @strawberry.mutation
    async def update_org(self, info: Ctx, name: str, input: OrgInput) -> PrivateOrg:
        ctx = info.context
        org, _ = await org_access(ctx, name, Permission.CHANGE_ORG_SETTINGS)
        return PrivateOrg(org=await service.update_org(ctx.session, org, input.attrs()))

    @strawberry.mutation
    async def update_org_processing(
        self,
        info: Ctx,
        name: str,
        email_backend: ServiceNameEnum | None = UNSET,
        transactional_email_backend: ServiceNameEnum | None = UNSET,
        email_from: str | None = UNSET,
        supporter_confirm: bool | None = UNSET,
        supporter_confirm_template: str | None = UNSET,
        doi_thank_you: bool | None = UNSET,
        custom_supporter_confirm: bool | None = UNSET,
        custom_action_confirm: bool | None = UNSET,
        custom_action_deliver: bool | None = UNSET,
        custom_event_deliver: bool | None = UNSET,
        event_backend: ServiceNameEnum | None = UNSET,
        storage_backend: ServiceNameEnum | None = UNSET,
        detail_backend: ServiceNameEnum | None = UNSET,
        push_backend: ServiceNameEnum | None = UNSET,
    ) -> PrivateOrg:
        ctx = info.context
        org, _ = await org_access(ctx, name, Permission.CHANGE_ORG_SETTINGS)
        given = {k: v for k, v in locals().items() if v is not strawberry.UNSET}
        for arg, column in ORG_BACKENDS.items():
            if arg in given:
                setattr(org, column, await _resolve_backend(ctx, org, arg, given[arg]))
        if "email_from" in given:
            org.email_from = service.validate_email_from(email_from)
        if "supporter_confirm_template" in given:
            # after the backends: one given in the same call is where the name is looked up
            await check_template_name(
                ctx.session, org, supporter_confirm_template, "supporterConfirmTemplate"
            )
            org.supporter_confirm_template = supporter_confirm_template
        for flag in (
            "supporter_confirm",
            "doi_thank_you",
            "custom_supporter_confirm",
            "custom_action_confirm",
            "custom_action_deliver",
            "custom_event_deliver",
        ):
            if given.get(flag) is not None:
                setattr(org, flag, bool(given[flag]))
        # the emails these settings ask for must be able to go out (email/readiness.py)
        await service.check_email_settings(
            ctx.session,
            org,
            given,
            sending_changed=any(
                k in given
                for k in ("email_backend", "supporter_confirm_template", "custom_supporter_confirm")
            ),
        )
        org_changed_after_commit(ctx.pipeline, ctx.after_commit, org.id)
        return PrivateOrg(org=org)

    @strawberry.mutation
    async def delete_org(self, info: Ctx, name: str) -> StatusEnum:
        ctx = info.context
        org, _ = await org_access(ctx, name, Permission.ORG_OWNER)
        await service.delete_org(ctx.session, org)
        return StatusEnum.SUCCESS

    @strawberry.mutation
    async def join_org(self, info: Ctx, name: str) -> JoinOrgResult:
        ctx = info.context
        org, auth = await org_access(ctx, name, Permission.JOIN_ORGS)
        await service.set_member(
            ctx.session, org, auth.user, service.check_role("owner"), create=True, update=True
        )
        ctx.staffers.pop((auth.user.id, org.id), None)
        return JoinOrgResult(status=StatusEnum.SUCCESS, org=PrivateOrg(org=org))

    @strawberry.mutation
    async def add_org_user(self, info: Ctx, org_name: str, input: OrgUserInput) -> ChangeUserStatus:
        ctx = info.context
        org, auth = await org_access(ctx, org_name, Permission.CHANGE_ORG_SETTINGS)
        user = await users.get_user_by_email(ctx.session, input.email)
        if user is None:
            raise NotFound(service.NO_SUCH_USER)
        if await service.get_staffer(ctx.session, org.id, user.id) is not None:
            # a member already: nothing changes, whatever role was asked for
            return ChangeUserStatus(status=StatusEnum.NOOP)
        bits = _assignable(auth, input.role)
        status = await service.set_member(ctx.session, org, user, bits, create=True, update=False)
        return ChangeUserStatus(status=StatusEnum(status))

    @strawberry.mutation
    async def update_org_user(
        self, info: Ctx, org_name: str, input: OrgUserInput
    ) -> ChangeUserStatus:
        ctx = info.context
        org, auth = await org_access(ctx, org_name, Permission.CHANGE_ORG_SETTINGS)
        user = await users.get_user_by_email(ctx.session, input.email)
        if user is None:
            raise NotFound(service.NO_SUCH_USER)
        if await service.get_staffer(ctx.session, org.id, user.id) is None:
            raise NotFound(service.NOT_A_MEMBER)
        bits = _assignable(auth, input.role)
        status = await service.change_member_role(
            ctx.session, org, user, bits, caller_perms=auth.perms, staffer=auth.staffer
        )
        return ChangeUserStatus(status=StatusEnum(status))

    @strawberry.mutation
    async def delete_org_user(
        self, info: Ctx, org_name: str, email: str
    ) -> DeleteUserResult | None:
        ctx = info.context
        org = await service.access_org(ctx.session, org_name)
        auth = await auth_for(ctx, org.id)
        user = await users.get_user_by_email(ctx.session, email)
        leaving = auth is not None and user is not None and user.id == auth.user.id
        if not leaving:
            # any member may leave (unless they are the last owner); removing others needs
            # change_org_settings
            allow(auth, Permission.CHANGE_ORG_SETTINGS)
        if auth is None or user is None:
            raise NotFound(service.NO_SUCH_USER)
        await service.remove_member(
            ctx.session, org, user, caller_perms=auth.perms, staffer=auth.staffer
        )
        ctx.staffers.pop((user.id, org.id), None)
        return DeleteUserResult(status=StatusEnum.SUCCESS)

    @strawberry.mutation
    async def generate_key(
        self, info: Ctx, org_name: str, input: GenKeyInput
    ) -> KeyWithPrivateType:
        ctx = info.context
        org, _ = await org_access(ctx, org_name, *KEY_PERMISSIONS)
        key, private = await keys.generate_key(
            ctx.session,
            org,
            input.name,
            keep_private=keys.keeps_private_part(org, ctx.settings.org_name),
        )
        ctx.answer_has_secret = True  # never kept for an idempotent replay
        audit_change(ctx, "generateKey", org.id, resource_id=key.id)
        return KeyWithPrivateType(
            id=key.id,
            name=key.name,
            public=base64url.encode(key.public),
            private=base64url.encode(private),
            active=key.active,
            expired=key.expired,
            expired_at=NaiveDateTime(key.updated_at) if key.expired else None,
        )

    @strawberry.mutation
    async def add_key(self, info: Ctx, org_name: str, input: AddKeyInput) -> KeyType:
        ctx = info.context
        org, _ = await org_access(ctx, org_name, *KEY_PERMISSIONS)
        added = await keys.add_key(ctx.session, org, input.name, input.public)
        audit_change(ctx, "addKey", org.id, resource_id=added.id)
        return KeyType.of(added)

    @strawberry.mutation
    async def activate_key(self, info: Ctx, org_name: str, id: int) -> ActivateKeyResult:
        ctx = info.context
        org, _ = await org_access(ctx, org_name, *KEY_PERMISSIONS)
        await keys.activate_key(ctx.session, org, id)
        audit_change(ctx, "activateKey", org.id, resource_id=id)
        _forget_keys_after_commit(ctx, org.id)
        return ActivateKeyResult(status=StatusEnum.SUCCESS)

    @strawberry.mutation
    async def deactivate_all_keys(self, info: Ctx, org_name: str) -> ActivateKeyResult:
        ctx = info.context
        org, _ = await org_access(ctx, org_name, *KEY_PERMISSIONS)
        await keys.deactivate_all_keys(ctx.session, org)
        audit_change(ctx, "deactivateAllKeys", org.id)
        _forget_keys_after_commit(ctx, org.id)
        return ActivateKeyResult(status=StatusEnum.SUCCESS)

    @strawberry.mutation
    async def upsert_service(
        self, info: Ctx, org_name: str, input: ServiceInput, id: int | None = None
    ) -> ServiceType:
        ctx = info.context
        org, _ = await org_access(ctx, org_name, Permission.CHANGE_ORG_SERVICES)
        attrs = {k: v for k, v in vars(input).items() if k != "name"}
        found = await upsert_service(ctx.session, org, id, input.name.value, attrs)
        org_changed_after_commit(ctx.pipeline, ctx.after_commit, org.id)
        return ServiceType.of(found)

    @strawberry.mutation
    async def reset_transactional_email_budget(self, info: Ctx, org_name: str) -> StatusEnum:
        ctx = info.context
        org, _ = await org_access(ctx, org_name, Permission.CHANGE_ORG_SERVICES)
        await budget.reset(ctx.session, org.id)
        return StatusEnum.SUCCESS

    @strawberry.mutation
    async def upsert_template(
        self, info: Ctx, org_name: str, input: EmailTemplateInput
    ) -> StatusEnum | None:
        ctx = info.context
        org, _ = await org_access(ctx, org_name, Permission.CHANGE_CAMPAIGN_SETTINGS)
        await templates.upsert_template(ctx.session, org, dict(vars(input)))
        return StatusEnum.SUCCESS


def _forget_keys_after_commit(ctx: Context, org_id: int) -> None:
    # after the commit: before it, a concurrent request could cache the old key again
    async def forget() -> None:
        keyring_for(ctx.settings.org_name).invalidate(org_id)

    ctx.after_commit.append(forget)


def _assignable(auth: Auth, role: str) -> Permission:
    return service.assignable_role(auth.perms, auth.staffer, role)
