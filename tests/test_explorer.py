"""/graphiql and its files, over HTTP, on a directory the test lays out (the npm install and a
real browser are tests/clients/test_graphiql.py's)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from proca_server.web.explorer import ASSETS, ExplorerFiles, explorer_files, router
from tests.explorer_helpers import lay_out


def explorer_client(directory: Path) -> httpx.AsyncClient:
    app = FastAPI()
    files = ExplorerFiles(directory)
    app.dependency_overrides[explorer_files] = lambda: files
    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with explorer_client(lay_out(tmp_path / "graphiql")) as c:
        yield c


async def test_the_page_loads_only_this_servers_files(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphiql")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    # only scripts of this server's, none inline
    scripts = re.findall(r"<script([^>]*)>", page)
    assert [re.sub(r"\?v=\w+", "", s) for s in scripts] == [
        ' src="/graphiql/assets/react.production.min.js"',
        ' src="/graphiql/assets/react-dom.production.min.js"',
        ' src="/graphiql/assets/graphiql.min.js"',
        ' src="/graphiql/assets/explorer.js"',
    ]
    assert 'href="/graphiql/assets/graphiql.min.css?v=' in page
    assert "http://" not in page and "https://" not in page
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp
    assert response.headers["cache-control"] == "no-store"


async def test_each_file_is_served_with_its_type_and_a_long_cache(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/graphiql")).text
    urls = re.findall(r'(?:src|href)="(/graphiql/assets/[^"]+)"', page)
    assert len(urls) == len(ASSETS)
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        name = url.split("/")[-1].split("?")[0]
        assert response.text == f"/* {name} */\n"
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        assert response.headers["content-type"].startswith(kind), url
        assert "max-age=31536000" in response.headers["cache-control"]
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_changed_file_gets_another_url(client: httpx.AsyncClient, tmp_path: Path) -> None:
    before = (await client.get("/graphiql")).text
    (tmp_path / "graphiql" / "explorer.js").write_text("/* another explorer.js */\n")
    after = (await client.get("/graphiql")).text
    assert re.findall(r"explorer\.js\?v=\w+", before) != re.findall(r"explorer\.js\?v=\w+", after)
    assert re.findall(r"graphiql\.min\.js\?v=\w+", before) == re.findall(
        r"graphiql\.min\.js\?v=\w+", after
    )


@pytest.mark.parametrize(
    "path",
    [
        "/graphiql/assets/package.json",
        "/graphiql/assets/index.js",
        "/graphiql/assets/node_modules/graphiql/graphiql.min.js",
        "/graphiql/assets/..%2Fpackage.json",
        "/graphiql/assets/%2e%2e%2fpackage.json",
        "/graphiql/assets/..%5Cpackage.json",
        "/graphiql/assets/",
    ],
)
async def test_only_the_listed_files_are_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "{}" not in response.text


async def test_without_the_npm_files_the_page_says_how_to_install_them(tmp_path: Path) -> None:
    directory = tmp_path / "graphiql"
    directory.mkdir()
    (directory / "explorer.js").write_text("/* ours */")
    async with explorer_client(directory) as client:
        response = await client.get("/graphiql")
        assert response.status_code == 503
        page = response.text
        assert "GraphiQL is not installed" in page
        assert "node_modules/graphiql/graphiql.min.js" in page
        assert "scripts/install" in page
        assert "npm ci --prefix " in page
        # the host's file system is not told to an anonymous visitor
        assert str(tmp_path) not in page
        assert "<script" not in page
        missing = await client.get("/graphiql/assets/graphiql.min.js")
        assert missing.status_code == 404
