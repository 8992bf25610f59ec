"""The execution context's shortcuts (graphql/executor.py) answer exactly as graphql-core's
general way: the same documents run with and without them."""

from __future__ import annotations

import enum
from typing import Any

import httpx
import pytest
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from proca_server.graphql.executor import ProcaExecutionContext, SharedInAnswer
from tests.export_answers_helpers import EXPORT, owner_token, signed
from tests.graphql_helpers import data, gql
from tests.processing.helpers import make_site


@pytest.fixture
def general_way(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Turns the shortcuts off (graphql-core's own field execution and completion)."""

    def off() -> None:
        for name in ("execute_field", "complete_object_value"):
            monkeypatch.setattr(
                ProcaExecutionContext, name, getattr(StrawberryGraphQLCoreExecutionContext, name)
            )

    return off


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"


@strawberry.type
class Shared(SharedInAnswer):
    id: int
    label: str | None
    colour: Colour
    calls: strawberry.Private[list[int]]

    @strawberry.field
    def failing(self) -> int | None:
        self.calls.append(self.id)
        if self.id == 2:
            raise ValueError("refused")
        return self.id

    @strawberry.field
    async def later(self) -> int:
        return self.id * 10


@strawberry.type
class Item:
    n: int
    must: str  # None given below for one item: a non-null field without a value
    when: int | None
    shared: Shared
    other: Shared | None


def items() -> list[Item]:
    calls: list[int] = []
    one = Shared(id=1, label="one", colour=Colour.RED, calls=calls)
    two = Shared(id=2, label=None, colour=Colour.RED, calls=calls)
    return [
        Item(n=1, must="a", when=None, shared=one, other=two),
        Item(n=2, must="b", when=3, shared=one, other=one),
        Item(n=3, must=None, when=4, shared=two, other=None),  # type: ignore[arg-type]
        Item(n=4, must="d", when="x", shared=two, other=two),  # type: ignore[arg-type]
    ]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        return items()  # type: ignore[return-value]


DOCUMENTS = [
    "{ items { n must when shared { id label colour failing } other { id failing } } }",
    "{ items { __typename n a: must shared { ...S later } other { ...S } } }"
    " fragment S on Shared { id label b: id failing }",
    "{ items { shared { id } again: shared { label colour } other { later id } } }",
    "query($x: Boolean!) { items { n @include(if: $x) shared { id @skip(if: $x) label } } }",
]


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_small_schema_answers_the_same(document: str, general_way: Any) -> None:
    schema = strawberry.Schema(Query, execution_context_class=ProcaExecutionContext)
    variables = {"x": True}
    fast = await schema.execute(document, variable_values=variables)
    general_way()
    general = await schema.execute(document, variable_values=variables)
    assert fast.data == general.data
    assert [(e.message, e.path) for e in fast.errors or []] == [
        (e.message, e.path) for e in general.errors or []
    ]


async def test_a_shared_object_that_fails_is_completed_every_time() -> None:
    schema = strawberry.Schema(Query, execution_context_class=ProcaExecutionContext)
    answer = await schema.execute("{ items { shared { failing } } }")
    # items 3 and 4 share object two: its error is reported at both places
    assert sorted(e.path for e in answer.errors or []) == [
        ["items", 2, "shared", "failing"],
        ["items", 3, "shared", "failing"],
    ]


async def test_a_shared_object_is_completed_once_per_selection() -> None:
    schema = strawberry.Schema(Query, execution_context_class=ProcaExecutionContext)
    answer = await schema.execute("{ items { n } first: items { shared { id failing } } }")
    assert answer.data is not None
    shared = [item["shared"] for item in answer.data["first"]]
    assert shared[0] is shared[1]  # object one, answered once
    assert shared[2] is not shared[3]  # object two failed: completed at each place


async def test_an_export_answers_the_same_without_the_shortcuts(
    client: httpx.AsyncClient, session: AsyncSession, general_way: Any
) -> None:
    site = await make_site(session)
    token = await owner_token(session, site.org_id)
    await signed(client, session, site, 3)
    fast = await gql(client, EXPORT, {"o": site.org_name}, token=token)
    general_way()
    general = await gql(client, EXPORT, {"o": site.org_name}, token=token)
    assert len(data(fast)["exportActions"]) == 3
    assert fast == general
