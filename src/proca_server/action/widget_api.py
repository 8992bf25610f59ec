"""GraphQL: the public mutations widgets call — addActionContact, addAction, linkActions.

A signature's steps are in signature.py; this module maps the GraphQL input to them, once:
`contact_values`, `action_values` and `tracking_values` read graphql-core's coerced arguments,
for the direct resolvers below and the signature lane; Strawberry's generic resolvers (which
serve donations and mail-to-target letters) read their typed input back into that shape
(`_arguments`) and go through the same functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from functools import cache, partial
from typing import Any

import strawberry
from graphql import GraphQLResolveInfo, GraphQLSchema
from strawberry.schema.name_converter import NameConverter
from strawberry.types import Info
from strawberry.types.base import get_object_definition, has_object_definition

from proca_server.action import service
from proca_server.action.fields import merge_fields
from proca_server.action.signature import (
    Sender,
    SignatureInput,
    hand_off_after_commit,
    record_signature,
)
from proca_server.action.tracking import source_key
from proca_server.action.types import DonationFrequencyUnitEnum, DonationSchemaEnum
from proca_server.errors import BadArgument, NotFound
from proca_server.graphql.context import Context
from proca_server.graphql.scalars import Date, Json
from proca_server.kit import base64url
from proca_server.models import enums as m

Ctx = Info[Context, None]


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
        """The action as the service takes it: its common part through `action_values`, a
        donation and a letter from their typed input."""
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
        return replace(action_values(_arguments(self)), donation=donation, mtt=mtt)


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
        """The contact as the service takes it (`contact_values`)."""
        return contact_values(_arguments(self))


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
    return tracking_values(None if tracking is None else _arguments(tracking))


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
        signature = SignatureInput(
            page_id=action_page_id,
            action=action.data(),
            contact=contact.as_dict(),
            opt_in=privacy.opt_in,
            lead_opt_in=privacy.lead_opt_in,
            tracking=_tracking(tracking),
            contact_ref=contact_ref,
        )
        return await _add_action_contact(info.context, signature)

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
        hand_off_after_commit(ctx.after_commit, ctx.pipeline, linked, None)
        return ContactReference(contact_ref=str(contact_ref), first_name=supporter.first_name)


async def _add_action_contact(ctx: Context, signature: SignatureInput) -> ContactReference:
    """addActionContact on the general path (signature.py `record_signature`)."""
    created = await record_signature(
        ctx.session,
        ctx.after_commit,
        ctx.pipeline,
        signature,
        Sender(ctx.client_address, ctx.referer, ctx.extensions),
        settings=ctx.settings,
        page_cache=ctx.page_cache,
        velocity=ctx.velocity,
    )
    assert created.fingerprint is not None
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
    hand_off_after_commit(ctx.after_commit, ctx.pipeline, [created.action_id], "addAction")
    return ContactReference(contact_ref=str(contact_ref), first_name=None)


# --- the input, mapped once ---------------------------------------------------------------------
# graphql-core's coerced arguments (plain dicts under the GraphQL field names) as the service
# takes them. The direct resolvers and the signature lane read them so; Strawberry's generic
# resolvers turn their typed input back into that shape first (`_arguments`).

_ADDRESS = (
    ("country", "country"),
    ("postcode", "postcode"),
    ("locality", "locality"),
    ("region", "region"),
    ("street", "street"),
    ("street_number", "streetNumber"),
)
_TRACKING = ("source", "medium", "campaign", "content", "location")
# What the mapping reads of addActionContact's arguments and of an ActionInput. Anything else
# the schema has (a donation, a letter, or a field added later) is read from the typed input
# of the generic resolver when it is given, and keeps a signature off the signature lane.
ARGUMENTS_READ = frozenset(
    ("actionPageId", "action", "contact", "privacy", "tracking", "contactRef")
)
ACTION_FIELDS_READ = frozenset(("actionType", "customFields", "fields", "testing"))


def contact_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A ContactInput as contact/schemas.py `validate_contact` reads it."""
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
    """An ActionInput's common part (all but a donation and a letter) as the service takes it:
    customFields and the deprecated key/value list merged."""
    legacy = [(f["key"], f["value"]) for f in raw.get("fields") or []]
    return service.ActionData(
        action_type=raw["actionType"],
        fields=merge_fields(raw.get("customFields"), legacy),
        testing=bool(raw.get("testing")),
    )


def tracking_values(raw: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    return None if raw is None else {k: raw.get(k) for k in _TRACKING}


def _given(values: Mapping[str, Any], names: tuple[str, ...]) -> bool:
    """Whether `values` give something (not null) under one of `names`."""
    for name in names:  # noqa: SIM110 (a loop: no generator made on the hot path)
        if values.get(name) is not None:
            return True
    return False


def signature_input(args: Mapping[str, Any]) -> SignatureInput | None:
    """addActionContact's coerced arguments as the signature's steps take them; None when they
    give more than this mapping reads (a donation, a letter: the generic resolver's)."""
    action = args["action"]
    if _given(action, _ACTION_UNREAD) or _given(args, _ARGUMENTS_UNREAD):
        return None
    privacy = args["privacy"]
    return SignatureInput(
        page_id=args["actionPageId"],
        action=action_values(action),
        contact=contact_values(args["contact"]),
        opt_in=privacy.get("optIn"),
        lead_opt_in=privacy.get("leadOptIn"),
        tracking=tracking_values(args.get("tracking")),
        contact_ref=args.get("contactRef"),
    )


_NAMES = NameConverter()  # the schema's naming (graphql/schema.py sets no other)


@cache
def _field_names(cls: type) -> tuple[tuple[str, str], ...]:
    """(Python name, GraphQL name) of each field of a Strawberry input type."""
    definition = get_object_definition(cls, strict=True)
    return tuple((f.python_name, _NAMES.from_field(f)) for f in definition.fields)


def _unread(names: Iterable[str], read: frozenset[str]) -> tuple[str, ...]:
    known = tuple(names)
    if not read <= set(known):
        raise RuntimeError(f"the mapping reads names the schema lacks: {read - set(known)}")
    return tuple(name for name in known if name not in read)


# the schema's names the mapping does not read (a coerced input holds no others)
_ACTION_UNREAD = _unread((name for _, name in _field_names(ActionInput)), ACTION_FIELDS_READ)
_ARGUMENTS_UNREAD = _unread(
    (
        _NAMES.from_argument(argument)
        for argument in get_object_definition(WidgetMutation, strict=True)
        .get_field("add_action_contact")
        .arguments  # type: ignore[union-attr]
    ),
    ARGUMENTS_READ,
)


def _arguments(value: Any) -> Any:
    """A value of the generic resolvers' typed input as graphql-core coerced it: an input
    object as a dict under its GraphQL field names, a list item by item, a scalar as it is."""
    if isinstance(value, list):
        return [_arguments(item) for item in value]
    kind: type = type(value)
    if not has_object_definition(kind):
        return value
    return {name: _arguments(getattr(value, attr)) for attr, name in _field_names(kind)}


# --- direct resolvers -------------------------------------------------------------------------
# The widget's two mutations are the hot path. Strawberry's generic argument conversion (input
# objects rebuilt field by field, with type introspection at every level) costs about as much
# as the rest of a signature, so these resolvers take graphql-core's coerced arguments and map
# them above. Donations and MTT keep the generic path. tests/test_widget_direct.py checks that
# both paths answer and store the same.

DIRECT_RESOLVERS = True

Resolver = Callable[..., Awaitable[Any]]


async def _direct_add_action_contact(
    generic: Resolver, root: Any, info: GraphQLResolveInfo[Any], **args: Any
) -> Any:
    signature = signature_input(args) if DIRECT_RESOLVERS else None
    if signature is None:
        return await generic(root, info, **args)
    return await _add_action_contact(info.context, signature)


async def _direct_add_action(
    generic: Resolver, root: Any, info: GraphQLResolveInfo[Any], **args: Any
) -> Any:
    action = args["action"]
    if not DIRECT_RESOLVERS or _given(action, _ACTION_UNREAD):
        return await generic(root, info, **args)
    return await share(
        info.context,
        args["actionPageId"],
        action_values(action),
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
