"""npm `@proca/queue` 5.3.0 reads a delivered action from `cus.N.deliver` and npm
`@proca/crypto` 3.4.0 decrypts its contact with the org's private key.

The packages are installed (`npm ci`, from tests/pipeline/node's lock file) once into
`.cache/pipeline-node`. Without npm, a registry or RabbitMQ the test is skipped with a
one-line reason, except under CI=true, where that is a failure."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.rabbitmq import RabbitBroker
from proca_server.config import Settings
from proca_server.models import Action
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.org.service import ensure_instance_org
from tests.conftest import IN_CI
from tests.factories import make_campaign, make_key, make_org, make_page
from tests.pipeline.conftest import (
    AMQP_URL,
    FAST,
    delete_org_entities,
    eventually,
    fresh_org_id,
    running,
)
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post

PACKAGE = Path(__file__).parent / "node"
REPO = Path(__file__).resolve().parents[2]


class NodeUnavailable(Exception):
    pass


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def install_consumer() -> Path:
    """A directory with consume.cjs and its node_modules, installed from the lock file."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise NodeUnavailable("npm and node are needed for the @proca/queue consumer test")
    lock = (PACKAGE / "package-lock.json").read_bytes()
    root = Path(os.environ.get("PROCA_CLIENTS_CACHE") or REPO / ".cache")
    target = root / f"pipeline-node-{hashlib.sha256(lock).hexdigest()[:12]}"
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        for name in ("package.json", "package-lock.json", "consume.cjs"):
            shutil.copyfile(PACKAGE / name, target / name)
        if not (target / "node_modules" / "@proca" / "queue" / "package.json").exists():
            env = {
                **os.environ,
                "npm_config_fetch_retries": "1",
                "npm_config_update_notifier": "false",
            }
            try:
                result = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=target,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise NodeUnavailable("npm ci timed out (registry unreachable?)") from None
            if result.returncode != 0:
                lines = (result.stderr + result.stdout).strip().splitlines()
                raise NodeUnavailable(f"npm ci failed: {lines[-1] if lines else result.returncode}")
    return target


@pytest.fixture(scope="session")
def consumer_dir() -> Path:
    try:
        return install_consumer()
    except NodeUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture
async def encrypted_world(
    rabbit_settings: Settings, session: AsyncSession
) -> AsyncIterator[tuple[int, int, PrivateKey]]:
    await ensure_instance_org(session, rabbit_settings.org_name)
    org = await make_org(session, id=fresh_org_id(), custom_action_deliver=True)
    _key, private = await make_key(session, org)
    campaign = await make_campaign(session, org)
    page = await make_page(session, campaign, org)
    ids = (org.id, page.id)
    await session.commit()
    try:
        yield ids[0], ids[1], private
    finally:
        await delete_org_entities(ids[0])


async def test_proca_queue_consumer_decrypts_a_delivered_action(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    consumer_dir: Path,
    encrypted_world: tuple[int, int, PrivateKey],
) -> None:
    org_id, page_id, private = encrypted_world
    broker = await RabbitBroker.connect(AMQP_URL)
    try:
        async with running(app, broker, FAST):
            body = await widget_post(
                client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id)
            )
            assert "errors" not in body, body

            async def delivered() -> bool:
                await session.rollback()
                found = (await session.execute(select(Action.processing_status))).scalars()
                return list(found) == [A.DELIVERED]

            await eventually(delivered)
    finally:
        await broker.close()

    keystore = {_b64url(bytes(private.public_key)): {"private": _b64url(bytes(private))}}
    env = {
        **os.environ,
        "AMQP_URL": AMQP_URL,
        "QUEUE": f"cus.{org_id}.deliver",
        "KEYSTORE": json.dumps(keystore),
        "EXPECT": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        "node",
        "consume.cjs",
        cwd=consumer_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    [read] = lines
    assert read["schema"] == "proca:action:2"
    assert read["contact"]["email"] == "ann@example.org"
    assert read["contact"]["firstName"] == "Ann"
