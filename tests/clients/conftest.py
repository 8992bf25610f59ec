"""Fixtures for driving a served proca-server with the real Proca CLIs.

The Node CLI (npm `proca` 2.5.1) is installed once per session into PROCA_CLIENTS_CACHE
(default `.cache/clients`); without npm or a reachable registry its tests are skipped with a
one-line reason, except under CI=true, where that is an error. The Python CLI (PyPI `proca`
0.3.9) needs Python 3.10; without one its tests are skipped, in CI too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.clients.harness import (
    IN_CI,
    ClientUnavailable,
    NoPython310,
    ServedProca,
    install_node_cli,
    install_python_cli,
    serve_proca,
)
from tests.conftest import create_pg_database, drop_pg_database, skip_without_pg


@pytest.fixture(scope="session")
def node_proca() -> Path:
    try:
        return install_node_cli()
    except ClientUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def python_proca() -> Path:
    try:
        return install_python_cli()
    except ClientUnavailable as exc:
        if IN_CI and not isinstance(exc, NoPython310):
            pytest.fail(f"CI=true but {exc}", pytrace=False)
        pytest.skip(str(exc))


@asynccontextmanager
async def _fresh_database(backend: str, workdir: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'proca.db'}"
        return
    skip_without_pg()
    name, url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


@pytest.fixture
async def fresh_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ServedProca]:
    """A server of its own on a fresh database: SQLite, or the backend named by an indirect
    parametrisation (`@pytest.mark.parametrize("fresh_server", [...], indirect=True)`)."""
    backend = getattr(request, "param", "sqlite")
    async with (
        _fresh_database(backend, tmp_path) as url,
        serve_proca(tmp_path, url) as served,
    ):
        yield served


@pytest.fixture(scope="module")
async def shared_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServedProca]:
    """One SQLite-backed server for a module's small tests (each test uses its own names)."""
    workdir = tmp_path_factory.mktemp("proca")
    async with _fresh_database("sqlite", workdir) as url, serve_proca(workdir, url) as served:
        yield served


@pytest.fixture
def node_home(tmp_path: Path) -> Path:
    home = tmp_path / "node-home"
    home.mkdir()
    return home


@pytest.fixture
def python_home(tmp_path: Path) -> Path:
    home = tmp_path / "python-home"
    home.mkdir()
    return home
