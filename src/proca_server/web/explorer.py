"""The API explorer at /graphiql: our own page around GraphiQL, whose files are served by this
server (no CDN), so it works without internet.

GraphiQL and React come from npm, pinned in `graphiql/package.json` and its lock file beside
this module; `scripts/install` runs `npm ci` there. Only the files named in `ASSETS` are
served. Without them, /graphiql says what is missing and how to install it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from proca_server.app_state import state_of
from proca_server.web.html import Html, e, html_response, layout

GRAPHIQL_DIR = Path(__file__).resolve().parent / "graphiql"
ASSETS_PATH = "/graphiql/assets"


@dataclass(frozen=True)
class Asset:
    path: str  # relative to the GraphiQL directory
    media_type: str
    from_npm: bool = True


ASSETS = {
    "react.production.min.js": Asset(
        "node_modules/react/umd/react.production.min.js", "text/javascript"
    ),
    "react-dom.production.min.js": Asset(
        "node_modules/react-dom/umd/react-dom.production.min.js", "text/javascript"
    ),
    "graphiql.min.js": Asset("node_modules/graphiql/graphiql.min.js", "text/javascript"),
    "graphiql.min.css": Asset("node_modules/graphiql/graphiql.min.css", "text/css"),
    "explorer.js": Asset("explorer.js", "text/javascript", from_npm=False),
}
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "explorer.js",
)

# Asset URLs carry a digest of the file (`?v=`), so browsers may keep them for long: other
# files (an `npm ci` of other versions, a new explorer.js) get other URLs.
ASSET_CACHE = "public, max-age=31536000, immutable"
# Scripts only from this server (no inline script); GraphiQL adds inline styles and fonts
# as data: URLs; the socket is same-origin (`'self'` covers ws: and wss:).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PAGE_STYLE = "html, body, #graphiql { height: 100%; margin: 0; }"

router = APIRouter()


class ExplorerFiles:
    """The GraphiQL directory, and each served file's digest, kept while its size and time
    stay the same (they are read again when the files are installed or changed)."""

    def __init__(self, directory: Path = GRAPHIQL_DIR) -> None:
        self.directory = directory
        self._digests: dict[str, tuple[tuple[int, int, int], str]] = {}

    def path(self, name: str) -> Path:
        return self.directory / ASSETS[name].path

    def missing(self) -> list[str]:
        return [
            a.path
            for a in ASSETS.values()
            if a.from_npm and not (self.directory / a.path).is_file()
        ]

    def url(self, name: str) -> str:
        path = self.path(name)
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        kept = self._digests.get(name)
        if kept is None or kept[0] != key:
            kept = key, hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            self._digests[name] = kept
        return f"{ASSETS_PATH}/{name}?v={kept[1]}"


def explorer_page(files: ExplorerFiles) -> HTMLResponse:
    missing = files.missing()
    if missing:
        return _not_installed(files.directory, missing)
    scripts = "".join(f'<script src="{e(files.url(name))}"></script>' for name in SCRIPTS)
    css = e(files.url("graphiql.min.css"))
    content = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>GraphiQL · Proca</title>"
        # no favicon request
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{css}">'
        f"<style>{PAGE_STYLE}</style></head>"
        '<body><div id="graphiql">Loading the explorer…'
        "<noscript> GraphiQL needs JavaScript.</noscript></div>"
        f"{scripts}</body></html>"
    )
    return HTMLResponse(content, headers=dict(PAGE_HEADERS))


def _shown(directory: Path) -> str:
    # the directory as it reads in the source tree, not where this server is installed
    # (an anonymous visitor learns nothing of the host's file system)
    parts = directory.parts
    return "/".join(parts[parts.index("proca_server") :]) if "proca_server" in parts else "."


def _not_installed(directory: Path, missing: list[str]) -> HTMLResponse:
    files = "".join(f"<li><code>{e(path)}</code></li>" for path in missing)
    directory_shown = _shown(directory)
    body = Html(
        "<p>This server has not got GraphiQL's files (from npm), so the explorer cannot "
        f"start. Missing, under <code>{e(directory_shown)}</code>:</p><ul>{files}</ul>"
        "<p>Install them with <code>scripts/install</code> from the source tree, or with "
        f"<code>npm ci --prefix {e(directory_shown)}</code> (npm is needed once, not to run the "
        "server), then reload this page.</p>"
        '<p>The API itself works without them: send GraphQL to <a href="/api">/api</a>.</p>'
    )
    return html_response(layout("GraphiQL is not installed", body), status_code=503)


def explorer_files(request: Request) -> ExplorerFiles:
    """The app's GraphiQL files; a dependency of the routes, so that a test serves its own."""
    return state_of(request).explorer_files


Files = Annotated[ExplorerFiles, Depends(explorer_files)]


def explorer_response(request: Request) -> HTMLResponse:
    return explorer_page(explorer_files(request))


# Plain functions: FastAPI runs them in its thread pool, away from the event loop, as they
# read the disk.
@router.get("/graphiql")
def graphiql(files: Files) -> HTMLResponse:
    return explorer_page(files)


@router.get(ASSETS_PATH + "/{name}")
def graphiql_asset(name: str, files: Files) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise HTTPException(404)
    path = files.path(name)
    if not path.is_file():
        raise HTTPException(404)
    return FileResponse(
        path,
        media_type=asset.media_type,
        headers={"Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"},
    )
