"""Limits on GraphQL documents, so that one anonymous request cannot take the server.

A document is refused, before it is validated or executed, when it has more lexical tokens
than GRAPHQL_MAX_TOKENS (graphql-core's parser stops counting there), fields nested deeper
than GRAPHQL_MAX_DEPTH, more aliased fields than GRAPHQL_MAX_ALIASES, more `__schema` and
`__type` fields than GRAPHQL_MAX_INTROSPECTION, or a cost over GRAPHQL_MAX_COST. Fragments
count wherever they are spread (each fragment is measured once, so a fragment spread twice
in a fragment spread twice... costs no time to measure). The cost of a field is 1 plus the
cost of its selection, times `LIST_FACTOR` for each list the field returns: a guess at the
size of a list, the same for every list, the schema's own lists (`__Schema.types`...) too.

What the real clients send is far from every limit (docs/configuration.md has the numbers).
A refusal is the error `query_too_complex`, shaped as a validation error, naming the limit.

`check_document` is the one entry point: the GraphQL transports reach it through the
`DocumentLimits` schema extension (graphql/schema.py, which also stands in for Strawberry's
ParserCache), the name normaliser (names.py) and the signature lane call it with the same
limits. Outcomes
are cached by document text, as parsing was.

A query that asks only the schema (`__schema`, `__type`, `__typename` at its root, as
GraphiQL and the CLIs' introspection do) runs on graphql-core alone in a worker thread, not
on the event loop, and its answer is kept for the next identical request."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    execute,
    parse,
)
from graphql.error import GraphQLSyntaxError
from graphql.language import FloatValueNode, IntValueNode, Visitor, visit

from proca_server.config import Settings, get_settings
from proca_server.errors import QueryTooComplex
from proca_server.metrics import REQUEST_LIMITS

LIST_FACTOR = 10
INTROSPECTION_FIELDS = frozenset(("__schema", "__type"))
# Document texts longer than this are checked every time rather than kept in the cache: the
# cache must not hold a thousand large texts (the clients' documents are under 3 KB).
CACHED_TEXT = 32_768
CACHE_SIZE = 1024
INTROSPECTION_CACHE_SIZE = 32
# counts stop growing here (a fragment spread in a loop of spreads multiplies them)
_CAP = 10**18
# how graphql-core words its refusal of a document over max_lexical_tokens or max_comments
_PARSER_LIMIT_TEXT = "Document contains more than"
# a number literal no client writes (an Int has at most 10 digits); longer ones would reach
# the interpreter's own conversion limit, whose message names its internals
MAX_NUMBER_LITERAL = 100
_LONG_DIGITS = re.compile(rf"\d{{{MAX_NUMBER_LITERAL + 1}}}")


class _LongNumber(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_int_value(self, node: IntValueNode, *_: Any) -> None:
        self.found = self.found or len(node.value) > MAX_NUMBER_LITERAL

    def enter_float_value(self, node: FloatValueNode, *_: Any) -> None:
        self.found = self.found or len(node.value) > MAX_NUMBER_LITERAL


def _has_long_number(document: DocumentNode) -> bool:
    finder = _LongNumber()
    visit(document, finder)
    return finder.found


_TOO_COMPLEX = "Query too complex: "


@dataclass(frozen=True)
class Limits:
    max_tokens: int = 5000
    max_depth: int = 20
    max_aliases: int = 100
    max_introspection: int = 2
    max_cost: int = 100_000
    max_repeats: int = 20

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            max_tokens=settings.graphql_max_tokens,
            max_depth=settings.graphql_max_depth,
            max_aliases=settings.graphql_max_aliases,
            max_introspection=settings.graphql_max_introspection,
            max_cost=settings.graphql_max_cost,
            max_repeats=settings.graphql_max_repeats,
        )


def default_limits() -> Limits:
    """The process's limits, for code that has no request settings at hand."""
    return Limits.of(get_settings())


@dataclass(frozen=True)
class Measure:
    cost: int = 0
    depth: int = 0
    aliases: int = 0
    introspection: int = 0
    # the most fields of one response name in one selection set, once fragments and fields
    # of one name are merged (a bound: the counts are multiplied down the levels)
    repeats: int = 0

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            min(self.cost + other.cost, _CAP),
            max(self.depth, other.depth),
            min(self.aliases + other.aliases, _CAP),
            min(self.introspection + other.introspection, _CAP),
            max(self.repeats, other.repeats),
        )


_ZERO = Measure()
# response name -> (fields of that name, the most repeats below one of them)
_Names = dict[str, tuple[int, int]]


def measure(schema: GraphQLSchema, document: DocumentNode) -> Measure:
    """The document's measures, all operations together. Raises RecursionError for fragments
    spread in a chain too long to follow."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    done: dict[str, tuple[Measure, _Names]] = {}
    visiting: set[str] = set()

    def fragment(name: str) -> tuple[Measure, _Names]:
        if name in done:
            return done[name]
        definition = fragments.get(name)
        if definition is None or name in visiting:
            return _ZERO, {}  # unknown or cyclic: validation refuses the document
        visiting.add(name)
        result = level(
            definition.selection_set, schema.get_type(definition.type_condition.name.value)
        )
        visiting.discard(name)
        done[name] = result
        return result

    def level(node: SelectionSetNode, parent: Any) -> tuple[Measure, _Names]:
        """A selection set's measure and its response names, fragments' included. Fields of
        one name are compared pairwise by validation (OverlappingFieldsCanBeMergedRule), their
        selections merged and compared in turn: the work grows with the square of `repeats`."""
        total = _ZERO
        keys: _Names = {}
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                found = field(selection, parent)
                total += found
                names: _Names = {(selection.alias or selection.name).value: (1, found.repeats)}
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = schema.get_type(condition.name.value) if condition else parent
                found, names = level(selection.selection_set, inner)
                total += found
            elif isinstance(selection, FragmentSpreadNode):
                found, names = fragment(selection.name.value)
                total += found
            else:
                continue
            for key, (count, below) in names.items():
                had, had_below = keys.get(key, (0, 0))
                keys[key] = (min(had + count, _CAP), max(had_below, below))
        repeats = max((min(n * max(below, 1), _CAP) for n, below in keys.values()), default=0)
        return total + Measure(repeats=repeats), keys

    def selections(node: SelectionSetNode, parent: Any) -> Measure:
        return level(node, parent)[0]

    def field(node: FieldNode, parent: Any) -> Measure:
        name = node.name.value
        definition = _field_definition(name, parent)
        type_: GraphQLType | None = definition.type if definition is not None else None
        factor = 1
        while isinstance(type_, (GraphQLList, GraphQLNonNull)):
            if isinstance(type_, GraphQLList):
                factor *= LIST_FACTOR
            type_ = type_.of_type
        inner = selections(node.selection_set, type_) if node.selection_set else _ZERO
        return Measure(
            min(1 + factor * inner.cost, _CAP),
            1 + inner.depth,
            inner.aliases + (1 if node.alias else 0),
            inner.introspection + (1 if name in INTROSPECTION_FIELDS else 0),
            inner.repeats,
        )

    total = _ZERO
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            root = schema.get_root_type(definition.operation)
            total += selections(definition.selection_set, root)
    return total


def _field_definition(name: str, parent: Any) -> Any:
    if name == "__schema":
        return SchemaMetaFieldDef
    if name == "__type":
        return TypeMetaFieldDef
    if name == "__typename":
        return TypeNameMetaFieldDef
    fields = getattr(parent, "fields", None)
    return fields.get(name) if fields else None


def refusal(found: Measure, limits: Limits) -> str | None:
    """Why a document is refused, naming the limit; None when it is within them all."""
    if found.depth > limits.max_depth:
        return (
            f"{_TOO_COMPLEX}fields nested {found.depth} deep, over the limit of {limits.max_depth}"
        )
    if found.aliases > limits.max_aliases:
        return f"{_TOO_COMPLEX}{found.aliases} aliases, over the limit of {limits.max_aliases}"
    if found.introspection > limits.max_introspection:
        return (
            f"{_TOO_COMPLEX}{found.introspection} __schema and __type fields, "
            f"over the limit of {limits.max_introspection}"
        )
    if found.repeats > limits.max_repeats:
        return (
            f"{_TOO_COMPLEX}{found.repeats} fields of one name in one selection, "
            f"over the limit of {limits.max_repeats}"
        )
    if found.cost > limits.max_cost:
        return f"{_TOO_COMPLEX}cost {found.cost}, over the limit of {limits.max_cost}"
    return None


def _check(schema: GraphQLSchema, query: str, limits: Limits) -> DocumentNode | str:
    """The parsed document or why it is refused; raises GraphQLSyntaxError."""
    try:
        document = parse(
            query, max_lexical_tokens=limits.max_tokens, max_comments=limits.max_tokens
        )
    except GraphQLSyntaxError as exc:
        if _PARSER_LIMIT_TEXT not in exc.message:
            raise
        return f"{_TOO_COMPLEX}over the limit of {limits.max_tokens} tokens"
    # the text is searched first: the walk is for the rare document with a long digit run
    if _LONG_DIGITS.search(query) and _has_long_number(document):
        return f"{_TOO_COMPLEX}a number literal over {MAX_NUMBER_LITERAL} characters"
    try:
        found = measure(schema, document)
    except RecursionError:
        return f"{_TOO_COMPLEX}fields nested over the limit of {limits.max_depth} deep"
    return refusal(found, limits) or document


_cached_check = lru_cache(maxsize=CACHE_SIZE)(_check)


def check_document(
    schema: GraphQLSchema, query: str, limits: Limits, *, count: bool = True
) -> DocumentNode:
    """The parsed document, within the limits; raises QueryTooComplex when it is not and
    GraphQLSyntaxError when it does not parse. `count=False` for a look that is not the
    refusal itself (the request goes on to be refused, and counted, elsewhere)."""
    outcome = (
        _cached_check(schema, query, limits)
        if len(query) <= CACHED_TEXT
        else _check(schema, query, limits)
    )
    if isinstance(outcome, str):
        if count:
            REQUEST_LIMITS.labels(limit="graphql_document").inc()
        raise QueryTooComplex(outcome)
    return outcome


def limits_of(context: Any) -> Limits:
    """The limits for an execution's context: its settings', else the process's."""
    settings = getattr(context, "settings", None)
    return Limits.of(settings) if isinstance(settings, Settings) else default_limits()


def introspection_only(document: DocumentNode, operation_name: str | None) -> bool:
    """Whether the operation to run is a query whose root fields are all meta fields."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        return False
    return all(
        isinstance(selection, FieldNode)
        and selection.name.value in (*INTROSPECTION_FIELDS, "__typename")
        for selection in operations[0].selection_set.selections
    )


_answers: LRUCache[tuple[GraphQLSchema, str, str | None, str], ExecutionResult] = LRUCache(
    INTROSPECTION_CACHE_SIZE
)


async def introspect(
    schema: GraphQLSchema,
    document: DocumentNode,
    query: str,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> ExecutionResult:
    """A query of the schema alone, answered by graphql-core in a worker thread; the answer
    (it depends only on the schema, the document and the variables) is kept for the next time."""
    try:
        key = (schema, query, operation_name, json.dumps(variables, sort_keys=True))
    except (TypeError, ValueError):
        key = None
    kept = _answers.get(key) if key is not None else None
    if kept is not None:
        return kept
    result = await asyncio.to_thread(
        execute, schema, document, variable_values=variables, operation_name=operation_name
    )
    assert isinstance(result, ExecutionResult)  # the schema's fields resolve synchronously
    if key is not None and len(query) <= CACHED_TEXT:
        _answers[key] = result
    return result
