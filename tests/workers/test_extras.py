"""The AWS stack is an extra (`proca-server[aws]`): the server runs without it, and every
feature that needs it says which extra to install instead of failing obscurely."""

from __future__ import annotations

import io
import subprocess
import sys

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.email.backends import EmailConfigError, backend_for_service
from proca_server.kit import extras
from proca_server.kit.progress import Progress
from proca_server.models import Service
from proca_server.workers import WorkerDeps
from proca_server.workers.registry import batch_handler_for
from tests.factories import make_world
from tests.graphql_helpers import error, gql

INSTALL_HINT = "pip install 'proca-server[aws]'"


@pytest.fixture
def without_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    real = extras.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name in extras.EXTRAS["aws"] else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(extras.importlib.util, "find_spec", find_spec)


@pytest.mark.slow  # a fresh interpreter in a subprocess
def test_the_server_and_its_commands_import_without_the_aws_stack() -> None:
    code = (
        "import sys\n"
        "import proca_server.app, proca_server.cli, proca_server.workers, "
        "proca_server.email.backend, proca_server.email.worker\n"
        "aws = ('aiobotocore', 'botocore')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in aws)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_the_aws_extra_is_installed_here() -> None:
    assert extras.installed("aws")
    extras.require("aws", "anything")


@pytest.mark.usefixtures("without_aws")
async def test_an_ses_or_sqs_service_is_refused_naming_the_extra(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    upsert = (
        "mutation($o: String!, $i: ServiceInput!) { upsertService(orgName: $o, input: $i) { id } }"
    )
    for name in ("SES", "SQS"):
        answer = error(
            await gql(
                client,
                upsert,
                {"o": world.org.name, "i": {"name": name, "host": "eu-west-1", "user": "k"}},
                token=world.tokens["owner"],
            )
        )
        assert INSTALL_HINT in answer["message"]
        assert f"the {name.lower()} service" in answer["message"]
        assert answer["path"] == ["upsertService", "name"]


@pytest.mark.usefixtures("without_aws")
def test_an_existing_ses_backend_fails_naming_the_extra() -> None:
    service = Service(name="ses", org_id=1, host="eu-west-1", user="key", password="secret")
    with pytest.raises(EmailConfigError, match=r"ses email backend .*proca-server\[aws\]"):
        backend_for_service(service, None)  # type: ignore[arg-type]


@pytest.mark.usefixtures("without_aws")
async def test_the_sqs_worker_fails_each_message_naming_the_extra(
    deps: WorkerDeps, caplog: pytest.LogCaptureFixture
) -> None:
    handler = batch_handler_for("wrk.1.sqs", deps)
    assert handler is not None
    results = await handler([object(), object()])  # type: ignore[list-item]
    assert results is not None and len(results) == 2
    assert all(isinstance(r, extras.MissingExtra) for r in results)
    assert INSTALL_HINT in caplog.text


def test_progress_prints_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    with Progress("exporting", 3000, stream=out) as progress:
        for _ in range(3):
            progress.advance(1000)
    assert out.getvalue() == "exporting: 3,000 of 3,000\n"


def test_progress_draws_a_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    with Progress("exporting", 10, stream=out) as progress:
        progress.advance(10)
    assert progress.done == 10 and "exporting" in out.getvalue()
