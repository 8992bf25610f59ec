"""Schema assembly: the root types, the extensions every execution runs, and the schemas
`create_app` builds once (`build_schemas`). `core_schema` is the one place that reaches the
graphql-core schema behind a Strawberry one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

import strawberry
from graphql import GraphQLError, GraphQLSchema
from strawberry.extensions import SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from proca_server.action.api import ActionMutation, ActionQuery
from proca_server.action.widget_api import WidgetMutation, install_direct_resolvers
from proca_server.action_page.api import ActionPageMutation, ActionPageQuery
from proca_server.action_page.types import PrivateActionPage, PublicActionPage
from proca_server.campaign.api import CampaignMutation, CampaignQuery
from proca_server.campaign.types import PrivateCampaign, PublicCampaign
from proca_server.confirm.api import ConfirmMutation
from proca_server.donation.api import DonationMutation
from proca_server.graphql.errors import is_expected, log
from proca_server.graphql.executor import ProcaExecutionContext
from proca_server.graphql.limits import (
    check_document,
    introspect,
    introspection_only,
    limits_of,
)
from proca_server.graphql.scalars import SCALAR_MAP
from proca_server.graphql.subscriptions import Subscription
from proca_server.graphql.transactions import own_transactions
from proca_server.org.api import OrgMutation, OrgQuery
from proca_server.org.types import PrivateOrg, PublicOrg
from proca_server.processing.api import RequeueMutation
from proca_server.target.api import TargetMutation
from proca_server.target.types import PrivateTarget, PublicTarget
from proca_server.user.api import UserMutation, UserQuery


@strawberry.type(name="RootQueryType")
class Query(UserQuery, OrgQuery, CampaignQuery, ActionPageQuery, ActionQuery):
    pass


@strawberry.type(name="RootMutationType")
class Mutation(
    UserMutation,
    OrgMutation,
    CampaignMutation,
    ActionPageMutation,
    TargetMutation,
    ActionMutation,
    WidgetMutation,
    DonationMutation,
    ConfirmMutation,
    RequeueMutation,
):
    pass


def _validation_cache() -> ValidationCache:
    # the LRU behind it is module-wide, shared by every request
    return ValidationCache(maxsize=1024)


class ProcaSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not is_expected(error):
                log.error("resolver failed", exc_info=error.original_error)


# implementations reached only through their interface
PUBLIC_IMPLEMENTATIONS: tuple[type, ...] = (
    PublicOrg,
    PublicCampaign,
    PublicActionPage,
    PublicTarget,
)
PRIVATE_IMPLEMENTATIONS: tuple[type, ...] = (
    PrivateOrg,
    PrivateCampaign,
    PrivateActionPage,
    PrivateTarget,
)


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema behind a Strawberry schema (Strawberry has no public accessor:
    its attribute is read here and nowhere else)."""
    return schema._schema


class DocumentLimits(SchemaExtension):
    """Parses (with the parse cache) and refuses documents over the limits
    (graphql/limits.py); answers queries of the schema alone off the event loop."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = check_document(
                core_schema(context.schema), context.query, limits_of(context.context)
            )
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if (
            document is not None
            and context.result is None
            and context.query
            and introspection_only(document, context.operation_name)
        ):
            context.result = await introspect(
                core_schema(context.schema),
                document,
                context.query,
                context.operation_name,
                context.variables,
            )
        yield


def build_schema(
    kind: type[ProcaSchema] = ProcaSchema,
    *,
    subscription: type | None = Subscription,
    types: Iterable[type] = (*PRIVATE_IMPLEMENTATIONS, *PUBLIC_IMPLEMENTATIONS),
    extensions: Iterable[type[SchemaExtension] | Callable[[], SchemaExtension]] = (),
) -> ProcaSchema:
    """The full schema; a subclass (`kind`, which may leave fields out through Strawberry's
    `get_fields`) with fewer types and more extensions builds a reduced one from the same
    types and resolvers (eci/schema.py)."""
    built = kind(
        query=Query,
        mutation=Mutation,
        subscription=subscription,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        # widgets send the same few documents: parse (DocumentLimits, which also refuses a
        # document over the limits before anything else is done with it) and validate each
        # once
        extensions=[DocumentLimits, _validation_cache, *extensions],
        types=list(types),
        execution_context_class=ProcaExecutionContext,
    )
    # the widget's mutations skip the generic argument conversion (action/widget_api.py)
    install_direct_resolvers(core_schema(built))
    # after the direct resolvers, so that they too run in their mutation's own transaction
    own_transactions(core_schema(built))
    return built


@dataclass(frozen=True, eq=False)
class Schemas:
    """The full schema, built once per app: Strawberry's, and graphql-core's behind it (what
    the name normaliser and the signature lane read)."""

    full: ProcaSchema
    core: GraphQLSchema


def build_schemas() -> Schemas:
    full = build_schema()
    return Schemas(full, core_schema(full))


def sdl() -> str:
    return build_schema().as_str() + "\n"
