"""The public schema of the ECI build: what a signature page asks and nothing else.

It is built from the full schema's own types and resolvers (graphql/schema.py), leaving out
every root field but `actionPage` and `addActionContact`, the subscriptions and the private
views (the public /api of the ECI build reads no credentials, so the private views could
never be chosen). Introspection (`__schema`, `__type`) is refused as unauthorized: what the
server accepts is not for anonymous callers to list."""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule
from strawberry.extensions import AddValidationRules
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from proca_server.errors import Unauthorized
from proca_server.graphql.schema import PUBLIC_IMPLEMENTATIONS, ProcaSchema, build_schema

# root type -> the fields a signature page uses (docs/eci.md)
PUBLIC_ROOT_FIELDS: dict[str, frozenset[str]] = {
    "RootQueryType": frozenset({"actionPage"}),
    "RootMutationType": frozenset({"addActionContact"}),
}
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
REFUSED = "Unauthorized"


class NoIntrospection(ValidationRule):
    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value in INTROSPECTION_FIELDS:
            self.report_error(GraphQLError(REFUSED, node, original_error=Unauthorized(REFUSED)))


class RefuseIntrospection(AddValidationRules):
    def __init__(self) -> None:
        super().__init__([NoIntrospection])


class SignaturePageSchema(ProcaSchema):
    def get_fields(self, type_definition: StrawberryObjectDefinition) -> list[StrawberryField]:
        fields = super().get_fields(type_definition)
        kept = PUBLIC_ROOT_FIELDS.get(type_definition.name)
        if kept is None:
            return fields
        name_of = self.config.name_converter.get_graphql_name
        return [f for f in fields if name_of(f) in kept]


def signature_page_schema() -> ProcaSchema:
    """Built once per app, by `create_app` in the ECI build."""
    return build_schema(
        SignaturePageSchema,
        subscription=None,
        types=PUBLIC_IMPLEMENTATIONS,
        extensions=[RefuseIntrospection],
    )
