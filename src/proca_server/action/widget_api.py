"""GraphQL: the public mutations widgets call — addActionContact, addAction, linkActions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLResolveInfo, GraphQLSchema
from strawberry.types import Info

from proca_server.action import captcha, service
from proca_server.action.fields import merge_fields
from proca_server.action.tracking import source_key
from proca_server.action.types import DonationFrequencyUnitEnum, DonationSchemaEnum
from proca_server.contact.crypto import KeyRing
from proca_server.contact.keyrings import keyring_for
from proca_server.contact.schemas import validate_contact
from proca_server.errors import BadArgument, NotFound
from proca_server.graphql.context import Context
from proca_server.graphql.scalars import Date, Json
from proca_server.kit import base64url
from proca_server.kit.time import utcnow
from proca_server.metrics import ACTIONS_RECEIVED
from proca_server.models import AuditLog
from proca_server.models import enums as m

Ctx = Info[Context, None]


def keyring(ctx: Context) -> KeyRing:
    return keyring_for(ctx.settings.org_name, require_encryption=ctx.settings.require_encryption)


@strawberry.input(name="CustomFieldInput")
class CustomFieldInput:
    key: str
    value: str
    transient: bool | None = None


@strawberry.input(name="DonationActionInput")
class DonationActionInput:
    payload: Json
    schema: DonationSchemaEnum | None = None
    amount: int | None = None
    currency: str | None = None
    frequency_unit: DonationFrequencyUnitEnum | None = None


@strawberry.input(name="MttActionInput")
class MttActionInput:
    targets: list[str]
    subject: str | None = None
    body: str | None = None
    files: list[str] | None = None


@strawberry.input(name="ActionInput")
class ActionInput:
    action_type: str
    custom_fields: Json | None = None
    fields: list[CustomFieldInput] | None = strawberry.field(
        default=None, deprecation_reason="use customFields"
    )
    donation: DonationActionInput | None = None
    mtt: MttActionInput | None = None
    testing: bool | None = None

    def data(self) -> service.ActionData:
        legacy = [(f.key, f.value) for f in self.fields or []]
        donation = None
        if self.donation is not None:
            d = self.donation
            donation = service.DonationInput(
                payload=dict(d.payload),  # type: ignore[call-overload]
                schema=m.DonationSchema.STRIPE_PAYMENT_INTENT if d.schema else None,
                amount=d.amount,
                currency=d.currency,
                frequency_unit=(
                    m.DonationFrequencyUnit[d.frequency_unit.name] if d.frequency_unit else None
                ),
            )
        mtt = None
        if self.mtt is not None:
            mtt = service.MttInput(
                targets=self.mtt.targets,
                subject=self.mtt.subject,
                body=self.mtt.body,
                files=self.mtt.files,
            )
        return service.ActionData(
            action_type=self.action_type,
            fields=merge_fields(self.custom_fields, legacy),  # type: ignore[arg-type]
            testing=bool(self.testing),
            donation=donation,
            mtt=mtt,
        )


@strawberry.input(name="AddressInput")
class AddressInput:
    country: str | None = None
    postcode: str | None = None
    locality: str | None = None
    region: str | None = None
    street: str | None = None
    street_number: str | None = None


@strawberry.input(name="NationalityInput")
class NationalityInput:
    country: str
    document_type: str | None = None
    document_number: str | None = None


@strawberry.input(name="ContactInput")
class ContactInput:
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    birth_date: Date | None = None
    address: AddressInput | None = None
    nationality: NationalityInput | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: v for k, v in vars(self).items() if k not in ("address", "nationality")
        }
        out["address"] = vars(self.address) if self.address else None
        out["nationality"] = vars(self.nationality) if self.nationality else None
        return out


@strawberry.input(name="ConsentInput")
class ConsentInput:
    opt_in: bool | None = None
    lead_opt_in: bool | None = None


@strawberry.input(name="TrackingInput")
class TrackingInput:
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    content: str | None = None
    location: str | None = None


@strawberry.type(name="ContactReference")
class ContactReference:
    contact_ref: str
    first_name: str | None


def _tracking(tracking: TrackingInput | None) -> dict[str, str | None] | None:
    return dict(vars(tracking)) if tracking is not None else None


@strawberry.type
class WidgetMutation:
    @strawberry.mutation
    async def add_action_contact(
        self,
        info: Ctx,
        action_page_id: int,
        action: ActionInput,
        contact: ContactInput,
        privacy: ConsentInput,
        tracking: TrackingInput | None = None,
        contact_ref: strawberry.ID | None = None,
    ) -> ContactReference:
        return await sign(
            info.context,
            action_page_id,
            action.data(),
            contact.as_dict(),
            opt_in=privacy.opt_in,
            lead_opt_in=privacy.lead_opt_in,
            tracking=_tracking(tracking),
            contact_ref=contact_ref,
        )

    @strawberry.mutation
    async def add_action(
        self,
        info: Ctx,
        action_page_id: int,
        action: ActionInput,
        contact_ref: strawberry.ID,
        tracking: TrackingInput | None = None,
    ) -> ContactReference:
        return await share(
            info.context, action_page_id, action.data(), contact_ref, _tracking(tracking)
        )

    @strawberry.mutation
    async def link_actions(
        self,
        info: Ctx,
        action_page_id: int,
        contact_ref: strawberry.ID,
        link_refs: list[str] | None = None,
    ) -> ContactReference:
        ctx = info.context
        try:
            page = await ctx.page_cache.load_page(ctx.session, action_page_id)
            ref = service.decode_ref(contact_ref)
        except (NotFound, BadArgument) as exc:
            raise NotFound(service.LINK_NOT_FOUND) from exc
        refs = [service.decode_ref(r, "linkRefs") for r in link_refs or []]
        supporter, linked = await service.link_actions(ctx.session, page, ref, refs)
        _hand_off(ctx, linked)
        return ContactReference(contact_ref=str(contact_ref), first_name=supporter.first_name)


async def sign(
    ctx: Context,
    action_page_id: int,
    action: service.ActionData,
    contact: dict[str, Any],
    *,
    opt_in: bool | None,
    lead_opt_in: bool | None,
    tracking: dict[str, str | None] | None,
    contact_ref: str | None,
) -> ContactReference:
    """addActionContact, from plain values (both resolvers below come here)."""
    session = ctx.session
    page = await ctx.page_cache.load_page(session, action_page_id)
    link_ref = service.decode_ref(contact_ref) if contact_ref else None
    captcha_meta = await captcha.verify(ctx.settings, ctx.extensions)
    validated = validate_contact(
        page.campaign.contact_schema,
        contact,
        seed=ctx.settings.fingerprint_seed,
        today=utcnow().date(),
    )
    ctx.velocity.admit(ctx.client_address, validated.email)
    created = await service.add_action_contact(
        session,
        keyring(ctx),
        ctx.page_cache,
        page,
        validated,
        action,
        opt_in=opt_in,
        lead_opt_in=lead_opt_in,
        source=source_key(tracking, ctx.referer),
        link_ref=link_ref,
    )
    assert created.fingerprint is not None
    if captcha_meta:
        session.add(
            AuditLog(
                actor_id=str(created.supporter_id),
                resource="captcha_actions",
                resource_id=str(created.action_id),
                changeset=captcha_meta,
            )
        )
    _hand_off(ctx, [created.action_id, *created.linked_action_ids], "addActionContact")
    return ContactReference(
        contact_ref=base64url.encode(created.fingerprint), first_name=created.first_name
    )


async def share(
    ctx: Context,
    action_page_id: int,
    action: service.ActionData,
    contact_ref: str,
    tracking: dict[str, str | None] | None,
) -> ContactReference:
    """addAction, from plain values."""
    page = await ctx.page_cache.load_page(ctx.session, action_page_id)
    ref = service.decode_ref(contact_ref)
    ctx.velocity.admit(ctx.client_address, None)
    created = await service.add_action(
        ctx.session, ctx.page_cache, page, action, ref, source_key(tracking, ctx.referer)
    )
    _hand_off(ctx, [created.action_id], "addAction")
    return ContactReference(contact_ref=str(contact_ref), first_name=None)


def _hand_off(ctx: Context, action_ids: list[int], received: str | None = None) -> None:
    """Once the mutation commits, its actions go to processing (the sweeper redoes it if this
    process dies first); `received` counts the new action by the mutation's name."""
    if not action_ids:
        return
    pipeline = ctx.pipeline

    async def hand_off() -> None:
        if received is not None:
            ACTIONS_RECEIVED.labels(kind=received).inc()
        await pipeline.after_commit([], action_ids)

    ctx.after_commit.append(hand_off)


# --- direct resolvers -------------------------------------------------------------------------
# The widget's two mutations are the hot path. Strawberry's generic argument conversion (input
# objects rebuilt field by field, with type introspection at every level) costs about as much
# as the rest of a signature, so these resolvers take graphql-core's coerced arguments (plain
# dicts, GraphQL field names) and build the service's values directly. Donations and MTT keep
# the generic path. tests/test_widget_direct.py checks that both paths answer and store the same.

DIRECT_RESOLVERS = True

_ADDRESS = (
    ("country", "country"),
    ("postcode", "postcode"),
    ("locality", "locality"),
    ("region", "region"),
    ("street", "street"),
    ("street_number", "streetNumber"),
)
_TRACKING = ("source", "medium", "campaign", "content", "location")

Resolver = Callable[..., Awaitable[Any]]


def contact_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """ContactInput.as_dict() from the coerced input."""
    address = raw.get("address")
    nationality = raw.get("nationality")
    return {
        "name": raw.get("name"),
        "first_name": raw.get("firstName"),
        "last_name": raw.get("lastName"),
        "email": raw.get("email"),
        "phone": raw.get("phone"),
        "birth_date": raw.get("birthDate"),
        "address": None
        if address is None
        else {ours: address.get(theirs) for ours, theirs in _ADDRESS},
        "nationality": None
        if nationality is None
        else {
            "country": nationality.get("country"),
            "document_type": nationality.get("documentType"),
            "document_number": nationality.get("documentNumber"),
        },
    }


def action_values(raw: Mapping[str, Any]) -> service.ActionData:
    """ActionInput.data() from the coerced input (no donation, no MTT)."""
    legacy = [(f["key"], f["value"]) for f in raw.get("fields") or []]
    return service.ActionData(
        action_type=raw["actionType"],
        fields=merge_fields(raw.get("customFields"), legacy),
        testing=bool(raw.get("testing")),
    )


def tracking_values(raw: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    return None if raw is None else {k: raw.get(k) for k in _TRACKING}


def _generic(action: Mapping[str, Any]) -> bool:
    return (
        not DIRECT_RESOLVERS or action.get("donation") is not None or action.get("mtt") is not None
    )


async def _direct_add_action_contact(
    generic: Resolver, root: Any, info: GraphQLResolveInfo[Any], **args: Any
) -> Any:
    if _generic(args["action"]):
        return await generic(root, info, **args)
    ctx: Context = info.context
    privacy = args["privacy"]
    return await sign(
        ctx,
        args["actionPageId"],
        action_values(args["action"]),
        contact_values(args["contact"]),
        opt_in=privacy.get("optIn"),
        lead_opt_in=privacy.get("leadOptIn"),
        tracking=tracking_values(args.get("tracking")),
        contact_ref=args.get("contactRef"),
    )


async def _direct_add_action(
    generic: Resolver, root: Any, info: GraphQLResolveInfo[Any], **args: Any
) -> Any:
    if _generic(args["action"]):
        return await generic(root, info, **args)
    ctx: Context = info.context
    return await share(
        ctx,
        args["actionPageId"],
        action_values(args["action"]),
        args["contactRef"],
        tracking_values(args.get("tracking")),
    )


def install_direct_resolvers(graphql_schema: GraphQLSchema) -> None:
    mutation = graphql_schema.mutation_type
    assert mutation is not None
    for name, direct in (
        ("addActionContact", _direct_add_action_contact),
        ("addAction", _direct_add_action),
    ):
        field = mutation.fields.get(name)  # a reduced schema may not have both
        if field is not None and field.resolve is not None:
            field.resolve = partial(direct, field.resolve)
