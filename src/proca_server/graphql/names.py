"""snake_case and camelCase names are interchangeable (clients send both; see
docs/clients/recorded-operations.md).

The original matches field, argument and input-object key names after converting them to
snake_case, so `external_id` and `externalId` are the same. Here the document is rewritten
before execution: an unknown name whose camelCase form exists is renamed, and a renamed field
gets the name it was asked by as alias, so the response keys follow the query's spelling.
Variable values are converted along their declared input types. Documents are cached by text:
clients send the same few documents again and again."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    NameNode,
    ObjectFieldNode,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    print_ast,
    type_from_ast,
    visit,
)
from graphql.error import GraphQLSyntaxError

from proca_server.errors import QueryTooComplex
from proca_server.graphql.limits import CACHED_TEXT, check_document, default_limits


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _Renamer(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.changed = False

    def enter_field(self, node: FieldNode, *_: Any) -> FieldNode | None:
        parent = self.type_info.get_parent_type()
        fields = getattr(parent, "fields", None)
        name = node.name.value
        if fields is None or name in fields or "_" not in name.strip("_"):
            return None
        new = camel(name)
        if new not in fields:
            return None
        self.changed = True
        return FieldNode(
            alias=node.alias or NameNode(value=name),
            name=NameNode(value=new),
            arguments=node.arguments,
            directives=node.directives,
            selection_set=node.selection_set,
        )

    def enter_argument(self, node: ArgumentNode, *_: Any) -> ArgumentNode | None:
        definition = self.type_info.get_field_def() or self.type_info.get_directive()
        args = getattr(definition, "args", None)
        name = node.name.value
        if args is None or name in args or "_" not in name:
            return None
        new = camel(name)
        if new not in args:
            return None
        self.changed = True
        return ArgumentNode(name=NameNode(value=new), value=node.value)

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> ObjectFieldNode | None:
        parent = self.type_info.get_parent_input_type()
        while isinstance(parent, (GraphQLNonNull, GraphQLList)):
            parent = parent.of_type
        name = node.name.value
        if not isinstance(parent, GraphQLInputObjectType) or name in parent.fields:
            return None
        new = camel(name)
        if new not in parent.fields:
            return None
        self.changed = True
        return ObjectFieldNode(name=NameNode(value=new), value=node.value)


@dataclass(frozen=True)
class Prepared:
    query: str
    # operation name -> (operation type, variable name -> declared input type)
    operations: dict[str | None, tuple[OperationType, dict[str, GraphQLInputType]]]

    def operation(
        self, name: str | None
    ) -> tuple[OperationType, dict[str, GraphQLInputType]] | None:
        if name is not None:
            return self.operations.get(name)
        if len(self.operations) == 1:
            return next(iter(self.operations.values()))
        return None


def _operations(
    schema: GraphQLSchema, document: DocumentNode
) -> dict[str | None, tuple[OperationType, dict[str, GraphQLInputType]]]:
    out: dict[str | None, tuple[OperationType, dict[str, GraphQLInputType]]] = {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        variables: dict[str, GraphQLInputType] = {}
        for var in definition.variable_definitions or ():
            var_type = type_from_ast(schema, var.type)
            if var_type is not None:
                variables[var.variable.name.value] = cast(GraphQLInputType, var_type)
        name = definition.name.value if definition.name else None
        out[name] = (definition.operation, variables)
    return out


def make_preparer(schema: GraphQLSchema, cache_size: int = 1024) -> Any:
    def prepare_text(query: str) -> Prepared | None:
        """The document with names normalised; None when it does not parse or is over the
        limits (graphql/limits.py: execution then refuses it, in its own words)."""
        try:
            document = check_document(schema, query, default_limits(), count=False)
        except (GraphQLSyntaxError, QueryTooComplex):
            return None
        type_info = TypeInfo(schema)
        renamer = _Renamer(type_info)
        rewritten = visit(document, TypeInfoVisitor(type_info, renamer))
        if renamer.changed:
            document = cast(DocumentNode, rewritten)
            query = print_ast(document)
        return Prepared(query, _operations(schema, document))

    cached = lru_cache(maxsize=cache_size)(prepare_text)

    def prepare(query: str) -> Prepared | None:
        return cached(query) if len(query) <= CACHED_TEXT else prepare_text(query)

    return prepare


def convert_variables(values: dict[str, Any], types: dict[str, GraphQLInputType]) -> dict[str, Any]:
    """Rename snake_case input-object keys in variable values to the declared camelCase."""
    return {name: _convert(value, types.get(name)) for name, value in values.items()}


def _convert(value: Any, type_: GraphQLInputType | None) -> Any:
    while isinstance(type_, GraphQLNonNull):
        type_ = cast(GraphQLInputType, type_.of_type)
    if isinstance(type_, GraphQLList):
        item = cast(GraphQLInputType, type_.of_type)
        return [_convert(v, item) for v in value] if isinstance(value, list) else value
    if isinstance(type_, GraphQLInputObjectType) and isinstance(value, dict):
        fields = type_.fields
        out = {}
        for key, item in value.items():
            name = key if key in fields else camel(key)
            if name not in fields:
                name = key
            field = fields.get(name)
            out[name] = _convert(item, field.type if field else None)
        return out
    return value
