"""Files with a mail-to-target action (`mtt.files`, keys in the lead org's storage backend):
refused, naming the field, when they could not be attached to the letters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Action, Message
from tests.widget_helpers import (
    ADD_ACTION_CONTACT,
    NO_STORAGE,
    generic_resolvers,
    letter,
    mtt_world,
    widget_post,
)

__all__ = ["generic_resolvers"]

ADD_MTT_ACTION = """mutation addAction($contact: ID!, $actionPage: Int!, $mtt: MttActionInput) {
  addAction(actionPageId: $actionPage, contactRef: $contact,
    action: {actionType: "mail2target", mtt: $mtt}) { contactRef }
}"""


@pytest.fixture(params=["direct", "generic"])
def resolvers(request: pytest.FixtureRequest) -> str:
    """Both ways of resolving the widget's mutations (tests/test_widget_direct.py)."""
    if request.param == "generic":
        request.getfixturevalue("generic_resolvers")
    return str(request.param)


async def stored(session: AsyncSession) -> tuple[int, int]:
    await session.rollback()
    actions = await session.scalar(select(func.count()).select_from(Action))
    messages = await session.scalar(select(func.count()).select_from(Message))
    return int(actions or 0), int(messages or 0)


def only_error(body: dict[str, Any]) -> tuple[str, list[str], str]:
    (error,) = body["errors"]
    return error["message"], error["path"], error["extensions"]["code"]


async def test_files_without_a_storage_backend_are_refused_naming_the_field(
    client: httpx.AsyncClient, session: AsyncSession, resolvers: str
) -> None:
    world, targets = await mtt_world(session, bucket=None)
    page = world.page.id
    body = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        letter(page, targets, ["letters/photo.png"], "ann@example.org"),
    )
    assert only_error(body) == (NO_STORAGE, ["addActionContact", "files"], "bad_arg")
    assert await stored(session) == (0, 0)

    # the same letter without files is taken; then a second letter with files is refused
    taken = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, letter(page, targets, [], "b@example.org")
    )
    assert "errors" not in taken, taken
    ref = taken["data"]["addActionContact"]["contactRef"]
    mtt = {"subject": "Hi", "body": "Again", "targets": targets, "files": ["letters/a.pdf"]}
    body = await widget_post(
        client, "addAction", ADD_MTT_ACTION, {"contact": ref, "actionPage": page, "mtt": mtt}
    )
    assert only_error(body) == (NO_STORAGE, ["addAction", "files"], "bad_arg")
    assert await stored(session) == (1, 2)


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "letters/../../auth/v1/admin/users", "letters", "letters//a.png",
     "/letters/a.png", "letters/a b.png", "letters/./a.png", "letters/a.png/"],
)  # fmt: skip
async def test_a_key_that_is_not_bucket_and_path_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, key: str
) -> None:
    world, targets = await mtt_world(session)
    body = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        letter(world.page.id, targets, ["letters/fine.png", key], "ann@example.org"),
    )
    message, path, code = only_error(body)
    assert message.startswith("has invalid format")
    assert (path, code) == (["addActionContact", "files"], "bad_arg")
    assert await stored(session) == (0, 0)


async def test_a_storage_backend_bound_to_a_bucket_takes_only_its_files(
    client: httpx.AsyncClient, session: AsyncSession, resolvers: str
) -> None:
    world, targets = await mtt_world(session, bucket="letters")
    page = world.page.id
    body = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        letter(page, targets, ["letters/a.png", "private/keys.txt"], "ann@example.org"),
    )
    assert only_error(body) == (
        "must be files of the bucket 'letters'",
        ["addActionContact", "files"],
        "bad_arg",
    )
    body = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        letter(page, targets, ["letters/a.png", "letters/2024/b(1).pdf"], "ann@example.org"),
    )
    assert "errors" not in body, body
    await session.rollback()
    files = (await session.scalars(select(Message.files))).all()
    assert files == [["letters/a.png", "letters/2024/b(1).pdf"]] * 2
