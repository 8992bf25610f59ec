"""`/link/s/...` and `/link/d/...` through the app."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.models import Action, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import EmailStatus
from proca_server.models.enums import SupporterProcessingStatus as S
from tests.processing.conftest import RecordingPipeline
from tests.processing.helpers import action_ids, body, make_site, process, share, sign


async def supporter_state(session: AsyncSession) -> tuple[S, EmailStatus]:
    await session.rollback()
    session.expunge_all()
    s = (await session.execute(select(Supporter).order_by(Supporter.id))).scalars().first()
    assert s is not None
    return s.processing_status, s.email_status


async def confirming(client: httpx.AsyncClient, session: AsyncSession) -> tuple[int, str, int]:
    """A supporter waiting for their confirm click: (action id, contactRef, org id)."""
    site = await make_site(session, org_fields={"supporter_confirm": True})
    ref = await sign(client, site.page_id)
    [action_id] = await action_ids(session)
    await process(session, [action_id])
    return action_id, ref, site.org_id


async def test_accept_with_doi_redirects_and_hands_over(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    action_id, ref, org_id = await confirming(client, session)
    response = await client.get(
        f"/link/s/{action_id}/accept/{ref}",
        params={"doi": "1", "redir": "https://example.org/thanks?a=1&b=two words"},
    )
    assert response.status_code == 302
    target = urlsplit(response.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "example.org", "/thanks")
    assert parse_qsl(target.query) == [
        ("proca_confirm", "accept"),
        ("proca_doi", "1"),
        ("a", "1"),
        ("b", "two words"),
    ]
    assert await supporter_state(session) == (S.ACCEPTED, EmailStatus.DOUBLE_OPT_IN)
    [(publications, ids)] = pipeline.calls
    assert ids == [action_id]
    [event] = publications
    assert (event.exchange, event.routing_key) == (f"org.{org_id}.event", "supporter.email_status")
    assert body(event.body)["supporter"]["privacy"]["emailStatus"] == "double_opt_in"
    # a second click: nothing changes, still a success
    again = await client.post(f"/link/s/{action_id}/accept/{ref}")
    assert (again.status_code, again.text) == (200, "SUCCESS")
    assert len(pipeline.calls) == 1


async def test_reject_link_rejects_supporter_and_action(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    action_id, ref, _ = await confirming(client, session)
    response = await client.get(f"/link/s/{action_id}/reject/{ref}", params={"redir": "nope"})
    assert (response.status_code, response.text) == (
        200,
        "SUCCESS; Could not redirect to a bad URL",
    )
    assert await supporter_state(session) == (S.REJECTED, EmailStatus.NONE)
    action = await session.get(Action, action_id)
    assert action is not None and action.processing_status is A.REJECTED
    assert pipeline.calls == []  # no email status change, nothing to process
    refused = await client.get(f"/link/s/{action_id}/accept/{ref}")
    assert refused.status_code == 400
    assert refused.json() == {"errors": [{"message": "supporter data already rejected"}]}


async def test_accept_of_an_unprocessed_supporter_is_refused_and_rolled_back(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    site = await make_site(session)
    ref = await sign(client, site.page_id)
    [action_id] = await action_ids(session)
    response = await client.get(f"/link/s/{action_id}/accept/{ref}", params={"doi": "yes"})
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "not allowed"}]}
    assert await supporter_state(session) == (S.NEW, EmailStatus.NONE)
    assert pipeline.calls == []


async def test_malformed_and_unknown_links(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    action_id, ref, _ = await confirming(client, session)
    malformed = [
        f"/link/s/{action_id}/maybe/{ref}",
        f"/link/s/x{action_id}/accept/{ref}",
        f"/link/s/{action_id}/accept/not*base64",
        f"/link/s/{action_id}/accept/{ref}?doi=perhaps",
        f"/link/d/abc/{ref}",
    ]
    for url in malformed:
        response = await client.get(url)
        assert response.status_code == 400, url
        assert response.json() == {"errors": [{"message": "malformed link"}]}
    other_ref = "QUJDREVGRw"
    for url in (f"/link/s/{action_id}/accept/{other_ref}", f"/link/d/{action_id + 1}/{ref}"):
        response = await client.get(url)
        assert response.status_code == 404, url
        assert response.json() == {"errors": [{"message": "malformed link"}]}
    assert await supporter_state(session) == (S.CONFIRMING, EmailStatus.NONE)
    assert pipeline.calls == []


async def test_double_opt_in_link_redirects_to_redir_location_or_root(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    site = await make_site(session)
    ref = await sign(client, site.page_id)  # location https://campaign.example.org/sign
    [action_id] = await action_ids(session)
    await process(session, [action_id])

    to_redir = await client.get(
        f"/link/d/{action_id}/{ref}", params={"redir": "https://example.org/ok?x=1"}
    )
    assert to_redir.status_code == 302
    assert to_redir.headers["location"] == "https://example.org/ok?proca_doi=1&x=1"
    assert (await supporter_state(session))[1] is EmailStatus.DOUBLE_OPT_IN
    [(publications, ids)] = pipeline.calls
    assert ids == [] and len(publications) == 1

    to_page = await client.get(f"/link/d/{action_id}/{ref}", params={"reminder": "1"})
    assert to_page.status_code == 302
    assert to_page.headers["location"] == "https://campaign.example.org/sign?proca_doi=1"
    assert len(pipeline.calls) == 1  # already opted in: no second event

    bare = await make_site(session)
    bare_ref = await sign_without_location(client, bare.page_id)
    bare_action = (await action_ids(session))[-1]
    to_root = await client.get(f"/link/d/{bare_action}/{bare_ref}")
    assert (to_root.status_code, to_root.headers["location"]) == (302, "/")


async def sign_without_location(client: httpx.AsyncClient, page_id: int) -> str:
    """A signature whose widget sent no location (and no Referer)."""
    tracking = {"source": "a", "medium": "b", "campaign": "c", "content": "", "location": ""}
    return await sign(client, page_id, "loc@example.org", referer=None, tracking=tracking)


async def test_share_then_accept_processes_both(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    action_id, ref, _ = await confirming(client, session)
    site_page = await session.get(Action, action_id)
    assert site_page is not None
    await share(client, site_page.action_page_id, ref)
    share_id = (await action_ids(session))[1]
    response = await client.get(f"/link/s/{action_id}/accept/{ref}")
    assert (response.status_code, response.text) == (200, "SUCCESS")
    [(publications, ids)] = pipeline.calls
    assert publications == [] and ids == [action_id, share_id]


async def test_links_work_without_a_pipeline(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    action_id, ref, _ = await confirming(client, session)
    response = await client.get(f"/link/s/{action_id}/accept/{ref}", params={"doi": "true"})
    assert (response.status_code, response.text) == (200, "SUCCESS")
    assert await supporter_state(session) == (S.ACCEPTED, EmailStatus.DOUBLE_OPT_IN)


class FailingPipeline:
    async def after_commit(self, publications: object, action_ids: object) -> None:
        raise ConnectionError("broker down")


async def test_a_failing_hand_off_does_not_undo_the_click(
    client: httpx.AsyncClient, session: AsyncSession, app: FastAPI
) -> None:
    action_id, ref, _ = await confirming(client, session)
    previous = state_of(app).pipeline
    state_of(app).pipeline = FailingPipeline()
    try:
        response = await client.get(f"/link/s/{action_id}/accept/{ref}", params={"doi": "1"})
    finally:
        state_of(app).pipeline = previous
    assert (response.status_code, response.text) == (200, "SUCCESS")
    assert await supporter_state(session) == (S.ACCEPTED, EmailStatus.DOUBLE_OPT_IN)
