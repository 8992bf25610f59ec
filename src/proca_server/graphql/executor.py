"""The execution context every document runs in: graphql-core's, with two shortcuts for
large answers (an `exportActions` page is a thousand actions of some thirty fields each).

- A plain leaf field (a scalar or enum held as a value, no resolver method, no arguments)
  is read and serialised directly, without the resolve info, path and dispatch graphql-core
  builds for every field. A value that is null, or that its scalar refuses, goes the general
  way, which gives the error (or the null) exactly as before.
- An object the answer holds many times over (`SharedInAnswer`: the campaign and page of
  each action, an org's key) is completed once per place in the document: the next
  occurrence under the same selection reuses the first one's result. Only a result
  completed at once and without error is reused; anything that awaits (a resolver method
  doing I/O) or fails is completed every time, as graphql-core does.

Answers stay exactly what graphql-core would give (tests/test_executor_shortcuts.py runs
documents both ways)."""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import AwaitableOrValue, Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class SharedInAnswer:
    """A mixin for answer objects that stand for the same record wherever they appear in
    one answer and whose fields do not depend on where: completed once per selection."""

    __slots__ = ()


# a plain leaf field: its resolver and its leaf type; None: not one
_Leaf = tuple[Any, GraphQLLeafType] | None


def plain_leaf(field: GraphQLField) -> _Leaf:
    """How to read `field` directly, if it is a plain leaf: a Strawberry field without a
    resolver method (Strawberry marks the resolver it builds for those `_is_default`, and
    that resolver reads the attribute without the resolve info) and without arguments, of
    a scalar or enum type."""
    resolve = field.resolve
    if resolve is None or not getattr(resolve, "_is_default", False) or field.args:
        return None
    type_ = field.type
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return (resolve, type_) if is_leaf_type(type_) else None


class ProcaExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # fields of the schema (which outlives the execution) by id -> plain_leaf
        self._leaves: dict[int, _Leaf] = {}
        manager = self.middleware_manager
        self._direct = manager is None or not manager.middlewares
        # (selection, object) -> (object, its completed value); the object is held so that
        # its id is not reused by another while the answer is built
        self._shared: dict[tuple[int, int], tuple[Any, Any]] = {}

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any] | Any:
        if self._direct:
            node = field_details_list[0].node
            field = self.schema.get_field(parent_type, node.name.value)
            if field is not None and not node.arguments:
                key = id(field)
                if key in self._leaves:
                    leaf = self._leaves[key]
                else:
                    leaf = self._leaves[key] = plain_leaf(field)
                if leaf is not None:
                    resolve, leaf_type = leaf
                    try:
                        value = resolve(source, None)
                        if value is not None:
                            coerced = leaf_type.coerce_output_value(value)
                            if coerced is not None and coerced is not Undefined:
                                return coerced
                    except Exception:  # noqa: S110 - the general way below reports it
                        pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        if not isinstance(result, SharedInAnswer):
            return super().complete_object_value(
                return_type, field_details_list, info, path, result, position_context
            )
        key = (id(field_details_list), id(result))
        known = self._shared.get(key)
        if known is not None and known[0] is result:
            return known[1]  # type: ignore[no-any-return]
        errors = len(self.collected_errors.errors)
        completed = super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )
        if not self.is_awaitable(completed) and len(self.collected_errors.errors) == errors:
            self._shared[key] = (result, completed)
        return completed
