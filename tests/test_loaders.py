"""The request's DataLoaders keep what they loaded for the rest of the request, but each root
mutation of a document starts afresh: its answer shows what the earlier ones changed."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_world
from tests.graphql_helpers import data, gql


def add_page(name: str) -> str:
    return (
        f'addActionPage(orgName: $o, campaignName: $c, input: {{name: "{name}", locale: "en"}}) '
        "{ campaign { ... on PrivateCampaign { actionPages { name } } } }"
    )


async def test_a_later_mutation_answers_with_what_an_earlier_one_added(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    first, second = f"{world.org.name}/first", f"{world.org.name}/second"
    document = (
        f"mutation($o: String!, $c: String!) {{ a: {add_page(first)} b: {add_page(second)} }}"
    )
    answer = data(
        await gql(
            client,
            document,
            {"o": world.org.name, "c": world.campaign.name},
            token=world.tokens["owner"],
        )
    )
    names = [world.page.name, first]
    assert answer["a"]["campaign"]["actionPages"] == [{"name": n} for n in names]
    assert answer["b"]["campaign"]["actionPages"] == [{"name": n} for n in [*names, second]]
