"""The staff clients' heavy queries run a number of SQL statements that does not grow with
the number of campaigns, pages, partners and targets they return: the GraphQL fan-out goes
through the request's DataLoaders. Each query is counted on a world of 2 and one of 10."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.models import (
    Action,
    Confirm,
    EmailTemplate,
    Mtt,
    Service,
    Source,
    Target,
    TargetEmail,
)
from proca_server.models.enums import ConfirmOperation
from proca_server.user.service import reset_api_token
from tests.factories import make_campaign, make_org, make_page, make_user, unique
from tests.graphql_helpers import data, gql

SIZES = (2, 10)


@dataclass
class Counter:
    statements: list[str] = field(default_factory=list)


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[Counter]:
    counter = Counter()

    def count(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        counter.statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


@dataclass
class Staff:
    """An org whose owner asks, `n` of everything around it."""

    n: int
    org_name: str
    campaign_name: str
    title: str
    token: str
    admin_token: str


async def build(session: AsyncSession, n: int) -> Staff:
    """The org leads `n` campaigns (one page of its own in each, `n` targets with an email in
    the first) and has a page in `n` campaigns of `n` other orgs; `n` partner orgs have a page
    in its first campaign, each asked for with a launch request by a user of its own."""
    title = unique("Heavy")
    backend = Service(name="preview")
    org = await make_org(session)
    backend.org_id = org.id
    session.add(backend)
    await session.flush()
    org.email_backend_id = backend.id
    org.event_backend_id = backend.id
    owner = await make_user(session, org=org, role="owner")
    session.add(EmailTemplate(org_id=org.id, name="thanks", locale="en", subject="S", html="h"))
    source = Source(source=title, medium="m", campaign="c", location="https://example.org/sign")
    session.add(source)
    await session.flush()
    lead = []
    for _ in range(n):
        campaign = await make_campaign(session, org)
        campaign.title = f"{title} {campaign.name}"
        page = await make_page(session, campaign, org)
        page.thank_you_template = "thanks"
        session.add(
            Action(
                action_type="petition",
                campaign_id=campaign.id,
                action_page_id=page.id,
                source_id=source.id,
            )
        )
        session.add(
            Mtt(
                campaign_id=campaign.id,
                start_at=datetime(2026, 3, 1, tzinfo=UTC),
                end_at=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=9),
            )
        )
        lead.append(campaign)
    first = lead[0]
    for i in range(n):
        target = Target(name=f"t{i}", external_id=unique("target"), campaign_id=first.id)
        session.add(target)
        await session.flush()
        session.add(TargetEmail(target_id=target.id, email=f"t{i}@example.org"))
        other = await make_org(session)
        await make_page(session, await make_campaign(session, other), org)
        partner = await make_org(session)
        page = await make_page(session, first, partner)
        creator = await make_user(session, org=partner, role="owner")
        session.add(
            Confirm(
                operation=ConfirmOperation.LAUNCH_PAGE,
                subject_id=first.id,
                object_id=page.id,
                code=unique("code"),
                creator_id=creator.id,
            )
        )
    token = await reset_api_token(session, owner)
    admin_token = await reset_api_token(session, await make_user(session, admin=True))
    await session.commit()
    return Staff(n, org.name, first.name, title, token, admin_token)


CAMPAIGN_DATA = (
    "__typename id name title externalId config contactSchema status start end org { name title }"
)
PAGE_DATA = (
    "__typename id name locale config thankYouTemplate thankYouTemplateRef org { name title } "
    "... on PrivateActionPage { status location extraSupporters supporterConfirmTemplate }"
)


@dataclass(frozen=True)
class Heavy:
    """A query of the staff clients, and how many of its items a world of `n` holds."""

    name: str
    query: str
    items: Any  # answer -> the list that holds n items (or more)
    # an instance admin sees the targets' emails
    admin: bool = False

    def variables(self, staff: Staff) -> dict[str, str]:
        return {
            "org": staff.org_name,
            "campaign": staff.campaign_name,
            "title": f"{staff.title} %",
        }


HEAVY = [
    Heavy(
        "org get",
        "query($org: String!) { org(name: $org) { __typename id name title config "
        "... on PrivateOrg { keys { id name expired expiredAt public } "
        "campaigns { id name title org { name } } "
        "personalData { contactSchema doiThankYou supporterConfirm } "
        "processing { emailFrom emailBackend eventBackend storageBackend detailBackend "
        "pushBackend transactionalEmailBackend } services { host id name path user } "
        "users { email role } } } }",
        lambda answer: answer["org"]["campaigns"],
    ),
    Heavy(
        "org campaigns with their pages",
        "query($org: String!) { org(name: $org) { ... on PrivateOrg { campaigns { "
        f"{CAMPAIGN_DATA} targets {{ id name }} "
        "... on PrivateCampaign { mtt { startAt endAt testEmail messageTemplate } "
        f"actionPages {{ {PAGE_DATA} campaign {{ name }} }} }} }} }} }} }}",
        lambda answer: answer["org"]["campaigns"],
    ),
    Heavy(
        "org action pages",
        "query($org: String!) { org(name: $org) { __typename name title ... on PrivateOrg { "
        f"actionPages {{ {PAGE_DATA} campaign {{ {CAMPAIGN_DATA} }} }} }} }} }}",
        lambda answer: answer["org"]["actionPages"],
    ),
    Heavy(
        "campaigns with org and partnerships",
        "query($title: String!) { campaigns(title: $title) { "
        f"{CAMPAIGN_DATA} ... on PrivateCampaign {{ partnerships {{ org {{ name }} "
        "actionPages { name } launchRequests { code email objectId } "
        "launchRequesters { email } } } } }",
        lambda answer: answer["campaigns"],
    ),
    Heavy(
        "campaign with targets and partnerships",
        "query($campaign: String!) { campaign(name: $campaign) { "
        f"{CAMPAIGN_DATA} targets {{ id name externalId area locale fields "
        "... on PrivateTarget { emails { email emailStatus error } } } "
        "... on PrivateCampaign { actionPages { name status location } partnerships { "
        f"org {{ name title }} actionPages {{ {PAGE_DATA} }} "
        "launchRequests { code email objectId creator { email } } "
        "launchRequesters { email } } } } }",
        lambda answer: answer["campaign"]["partnerships"],
        admin=True,
    ),
]


async def ask(
    client: httpx.AsyncClient, engine: AsyncEngine, heavy: Heavy, staff: Staff
) -> tuple[int, dict[str, Any]]:
    with counting(engine) as counter:
        token = staff.admin_token if heavy.admin else staff.token
        answer = data(await gql(client, heavy.query, heavy.variables(staff), token=token))
    return len(counter.statements), answer


@pytest.mark.parametrize("heavy", HEAVY, ids=[h.name for h in HEAVY])
async def test_statements_do_not_grow_with_the_number_of_items(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine, heavy: Heavy
) -> None:
    small, large = [await build(session, n) for n in SIZES]
    # a first request pays for what a process does once
    await ask(client, engine, heavy, small)
    counts = {}
    for staff in (small, large):
        counts[staff.n], answer = await ask(client, engine, heavy, staff)
        assert len(heavy.items(answer)) >= staff.n, answer
    assert counts[SIZES[0]] == counts[SIZES[1]], counts


async def test_partnerships_answer_each_partner_with_its_own_pages_and_requests(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    staff = await build(session, 3)
    heavy = HEAVY[-1]
    _, answer = await ask(client, engine, heavy, staff)
    partnerships = answer["campaign"]["partnerships"]
    assert len(partnerships) == 3
    for partnership in partnerships:
        (page,) = partnership["actionPages"]
        assert page["name"].startswith(partnership["org"]["name"] + "/")
        assert page["org"]["name"] == partnership["org"]["name"]
        (request,) = partnership["launchRequests"]
        assert request["objectId"] == page["id"]
        (requester,) = partnership["launchRequesters"]
        assert request["creator"] == requester
    targets = answer["campaign"]["targets"]
    assert [t["name"] for t in targets] == ["t0", "t1", "t2"]
    assert [t["emails"][0]["email"] for t in targets] == [f"t{i}@example.org" for i in range(3)]
