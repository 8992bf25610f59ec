"""The pieces that let the real Proca CLIs drive a real proca-server.

- `serve_proca`: a fresh database, `proca-server setup`, an admin and its API token, and
  `proca-server serve` on a free port, as a user would run them.
- `RecordingProxy`: a small HTTP server in a thread that forwards every request to the server
  and keeps the exchange (method, path, headers of interest, JSON bodies both ways). The CLIs
  are pointed at it, so every failure can show what the client sent and what it got back.
- `NodeCli` / `PythonCli`: one configured installation each, in an isolated HOME.
- `install_node_cli` / `install_python_cli`: the installs, cached in PROCA_CLIENTS_CACHE.

Set PROCA_CLIENTS_RECORD=/some/file.jsonl to append every CLI run with its exchanges to that file
(`python -m tests.clients.render_recording` turns it into docs/clients/recorded-operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import fcntl
import glob
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from tests.served import free_port, start_serve, stop

from proca_server import db
from proca_server.config import Settings

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NODE_CLI_VERSION = "2.5.1"
PYTHON_CLI_VERSION = "0.3.9"
ADMIN_EMAIL = "admin@example.org"
INSTANCE_ORG = "instance"
COMMAND_TIMEOUT = 120


class ClientUnavailable(Exception):
    """A CLI cannot be installed here; the message is the one-line reason."""


class NoPython310(ClientUnavailable):
    """No Python 3.10 for the Python CLI: a skip even in CI (the machine may have none)."""


def cache_dir() -> Path:
    return Path(os.environ.get("PROCA_CLIENTS_CACHE") or REPO / ".cache" / "clients")


# ---------------------------------------------------------------------------------------------
# Recording proxy

_HEADERS_OF_INTEREST = ("authorization", "content-type", "accept")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "accept-encoding",
    "te",
    "upgrade",
    "proxy-connection",
}


def _decode(body: bytes) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    response: Any

    @property
    def is_graphql(self) -> bool:
        return isinstance(self.body, dict) and "query" in self.body

    @property
    def errors(self) -> list[Any]:
        if isinstance(self.response, dict):
            return list(self.response.get("errors") or [])
        return []

    def describe(self) -> str:
        lines = [f"{self.method} {self.path} -> {self.status}"]
        for name, value in self.headers.items():
            lines.append(f"  {name}: {value}")
        if isinstance(self.body, dict):
            if "operationName" in self.body:
                lines.append(f"  operationName: {self.body['operationName']!r}")
            if "query" in self.body:
                lines.append("  query:")
                lines.extend(f"    {line}" for line in str(self.body["query"]).splitlines())
            if "variables" in self.body:
                lines.append(f"  variables: {json.dumps(self.body['variables'])}")
            extra = set(self.body) - {"query", "variables", "operationName"}
            for key in sorted(extra):
                lines.append(f"  {key}: {json.dumps(self.body[key])}")
        elif self.body is not None:
            lines.append(f"  body: {self.body!r}")
        response = json.dumps(self.response) if not isinstance(self.response, str) else ""
        if not response:
            response = repr(self.response)
        if len(response) > 3000:
            response = response[:3000] + "…"
        lines.append(f"  response: {response}")
        return "\n".join(lines)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the exchanges are the log

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        body = self._read_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            upstream = self.server.client.request(
                self.command, self.path, content=body or None, headers=headers
            )
            status, content = upstream.status_code, upstream.content
            content_type = upstream.headers.get("content-type", "application/octet-stream")
        except httpx.HTTPError as exc:
            status, content = 502, f"proxy: upstream failed: {exc!r}".encode()
            content_type = "text/plain"
        self.server.record(
            Exchange(
                method=self.command,
                path=self.path,
                headers={
                    name: self.headers[name]
                    for name in _HEADERS_OF_INTEREST
                    if self.headers.get(name) is not None
                },
                body=_decode(body),
                status=status,
                response=_decode(content),
            )
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_HEAD = _forward


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.client = httpx.Client(base_url=upstream, timeout=60)
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)


class RecordingProxy:
    """Forwards to `upstream` and remembers every exchange, in order."""

    def __init__(self, upstream: str) -> None:
        self._server = _ProxyServer(upstream)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def exchanges(self) -> list[Exchange]:
        with self._server._lock:
            return list(self._server.exchanges)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.client.close()
        self._thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# The server


@dataclass
class ServedProca:
    """A running proca-server, reached directly or through the recording proxy."""

    direct_url: str
    proxy: RecordingProxy
    token: str
    admin_email: str
    database_url: str
    log_file: Path

    @property
    def api_url(self) -> str:
        """What the CLIs are given: the proxy's /api."""
        return f"{self.proxy.url}/api"

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """A direct call as the admin (for what no CLI command can do), checked for errors."""
        async with httpx.AsyncClient(base_url=self.direct_url, timeout=30) as client:
            response = await client.post(
                "/api",
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        body = response.json()
        assert response.status_code == 200 and not body.get("errors"), (
            f"direct GraphQL call failed ({response.status_code}):\n{query}\n"
            f"variables: {json.dumps(variables)}\nresponse: {json.dumps(body)}\n"
            f"server log:\n{self.log_tail()}"
        )
        return body["data"]


async def _proca_server(*args: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proca_server",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=COMMAND_TIMEOUT)
    if proc.returncode != 0:
        raise AssertionError(
            f"proca-server {' '.join(args)} exited {proc.returncode}:\n{out.decode()}{err.decode()}"
        )
    return out.decode()


@contextlib.asynccontextmanager
async def serve_proca(workdir: Path, database_url: str) -> AsyncIterator[ServedProca]:
    """Set up a database, an admin and its token, and serve; the way the README says."""
    data_dir = workdir / "data"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PROCA_DATA_DIR": str(data_dir),
        "ORG_NAME": INSTANCE_ORG,
        "ADMIN_EMAIL": "",
        "LOG_LEVEL": "INFO",
    }
    await _proca_server("setup", env=env)
    await _proca_server("user", "create", ADMIN_EMAIL, "--admin", env=env)
    token = (await _proca_server("user", "token", ADMIN_EMAIL, env=env)).strip().splitlines()[-1]
    assert token.startswith("API-"), token

    port = free_port()
    log_file = workdir / "server.log"
    proc = await start_serve(env, port, log_file)
    direct_url = f"http://127.0.0.1:{port}"
    proxy = None
    try:
        proxy = RecordingProxy(direct_url)
        yield ServedProca(direct_url, proxy, token, ADMIN_EMAIL, database_url, log_file)
    finally:
        if proxy is not None:
            proxy.close()
        await stop(proc)


@contextlib.asynccontextmanager
async def arranged(server: ServedProca) -> AsyncIterator[AsyncSession]:
    """A session on the served database for arranging what a test needs; committed on exit."""
    engine = db.create_engine(Settings(DATABASE_URL=server.database_url))
    try:
        async with db.transaction(db.create_sessionmaker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


@dataclass
class OrgRef:
    id: int
    name: str
    title: str


@dataclass
class CampaignRef:
    id: int
    name: str
    title: str


async def arrange_org(server: ServedProca) -> OrgRef:
    """An org the admin owns (an instance admin without membership is refused)."""
    from tests.factories import make_org, unique

    from proca_server.auth.permissions import ROLES
    from proca_server.models import Staffer, User

    async with arranged(server) as session:
        org = await make_org(session, unique("ngo"), title="An NGO")
        admin = (
            await session.execute(select(User).where(User.email == server.admin_email))
        ).scalar_one()
        session.add(Staffer(org_id=org.id, user_id=admin.id, perms=int(ROLES["owner"])))
        await session.flush()
        return OrgRef(org.id, org.name, org.title)


async def arrange_campaign(server: ServedProca, org: OrgRef) -> CampaignRef:
    from tests.factories import unique

    from proca_server.models import Campaign

    async with arranged(server) as session:
        name = unique("bees")
        campaign = Campaign(name=name, title=f"Campaign {name}", org_id=org.id)
        session.add(campaign)
        await session.flush()
        return CampaignRef(campaign.id, campaign.name, campaign.title)


# ---------------------------------------------------------------------------------------------
# Running the CLIs

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def last_json_value(text: str) -> Any:
    """The JSON document that ends the output (the Node CLI prints debug lines before it)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line[:1] in ("{", "[") or line.strip() in ("null", "true", "false"):
            try:
                return json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON document at the end of the output")


@dataclass
class CliRun:
    client: str
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    exchanges: list[Exchange]
    server: ServedProca = field(repr=False)

    def explain(self, problem: str) -> str:
        parts = [
            f"{problem}",
            f"command: {self.client} {' '.join(self.argv)}",
            f"exit code: {self.returncode}",
            f"stdout:\n{self.stdout.rstrip()}",
            f"stderr:\n{self.stderr.rstrip()}",
            f"{len(self.exchanges)} HTTP exchange(s):",
        ]
        parts.extend(e.describe() for e in self.exchanges)
        parts.append(f"server log (tail):\n{self.server.log_tail()}")
        return "\n".join(parts)

    @property
    def graphql_errors(self) -> list[Any]:
        return [error for e in self.exchanges for error in e.errors]

    def ok(self) -> CliRun:
        """Exit code 0, and every request answered 2xx without GraphQL errors."""
        if self.returncode != 0:
            raise AssertionError(self.explain("the command failed"))
        failed = [e for e in self.exchanges if e.status >= 400 or e.errors]
        if failed:
            raise AssertionError(self.explain("the server answered with an error"))
        return self

    def json(self) -> Any:
        self.ok()
        try:
            return last_json_value(self.stdout)
        except ValueError:
            raise AssertionError(self.explain("no JSON output")) from None

    def rows(self) -> list[dict[str, str]]:
        """The records of a `--csv` output."""
        self.ok()
        return list(csv.DictReader(line for line in self.stdout.splitlines() if line.strip()))

    @property
    def text(self) -> str:
        """stdout without colours and with runs of blanks made one space (human output)."""
        return "\n".join(
            " ".join(line.split()) for line in strip_ansi(self.stdout).splitlines()
        ).strip()

    def operations(self) -> list[dict[str, Any]]:
        return [e.body for e in self.exchanges if e.is_graphql]

    def to_record(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "argv": self.argv,
            "returncode": self.returncode,
            "exchanges": [asdict(e) for e in self.exchanges],
        }


def _record(run: CliRun) -> None:
    target = os.environ.get("PROCA_CLIENTS_RECORD")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(run.to_record()) + "\n")


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment minus anything that would leak its own Proca configuration."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PROCA_", "REACT_APP_", "XDG_", "npm_", "NODE_", "PYTHON"))
        and k not in ("VIRTUAL_ENV", "API_URL", "AUTH_USER", "AUTH_PASSWORD")
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        NO_COLOR="1",
        ANSI_COLORS_DISABLED="1",
        TERM="dumb",
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        **extra,
    )
    return env


async def _run(
    client: str,
    executable: Path,
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    server: ServedProca,
    stdin: str = "",
) -> CliRun:
    before = len(server.proxy.exchanges)
    proc = await asyncio.create_subprocess_exec(
        str(executable),
        *argv,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=COMMAND_TIMEOUT)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        err += b"\n[killed after timeout]"
    run = CliRun(
        client=client,
        argv=list(argv),
        returncode=proc.returncode if proc.returncode is not None else -1,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        exchanges=server.proxy.exchanges[before:],
        server=server,
    )
    _record(run)
    return run


class NodeCli:
    """npm `proca` 2.5.1, configured as `--env=local` in its own HOME."""

    def __init__(self, executable: Path, home: Path, server: ServedProca) -> None:
        self.executable = executable
        self.home = home
        self.server = server
        self.env = isolated_env(home, NODE_NO_WARNINGS="1")
        self.add_env("local", server.token)

    def add_env(self, name: str, token: str) -> None:
        folder = self.home / ".config" / "proca"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.env").write_text(
            f"REACT_APP_API_URL='{self.server.api_url}'\nPROCA_TOKEN='{token}'\n"
        )

    async def __call__(self, *args: str, env_name: str = "local", output: str = "json") -> CliRun:
        """Run `proca ARGS --env=local --json` (or `--csv`: some commands print nothing with
        --json because their run() does not return the data)."""
        argv = [*args, f"--env={env_name}", f"--{output}"]
        return await _run(
            "proca", self.executable, argv, env=self.env, cwd=self.home, server=self.server
        )


class PythonCli:
    """PyPI `proca` 0.3.9 with a server named `local` in its own HOME."""

    def __init__(self, executable: Path, home: Path, server: ServedProca) -> None:
        self.executable = executable
        self.home = home
        self.server = server
        self.env = isolated_env(home, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")

    async def add_server(self) -> CliRun:
        argv = ["server:add", "-h", self.server.api_url, "-t", self.server.token, "local"]
        return await _run(
            "proca", self.executable, argv, env=self.env, cwd=self.home, server=self.server
        )

    async def __call__(self, *args: str, stdin: str = "") -> CliRun:
        argv = ["-@", "local", *args]
        return await _run(
            "proca",
            self.executable,
            argv,
            env=self.env,
            cwd=self.home,
            server=self.server,
            stdin=stdin,
        )


# ---------------------------------------------------------------------------------------------
# Installs (each at most once per session: the fixtures are session-scoped and a failure is
# cached by pytest; a file lock keeps concurrent sessions from installing into the same place)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _first_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "ERR" in line or "error" in line.lower():
            return line
    return lines[-1] if lines else "no output"


def install_node_cli() -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise ClientUnavailable("npm (and node) are needed for the Node `proca` CLI tests")
    prefix = cache_dir() / f"node-proca-{NODE_CLI_VERSION}"
    executable = prefix / "node_modules" / ".bin" / "proca"
    package = prefix / "node_modules" / "proca" / "package.json"
    with _locked(cache_dir()):
        installed = package.exists() and (
            json.loads(package.read_text()).get("version") == NODE_CLI_VERSION
        )
        if not installed:
            env = {
                **os.environ,
                "npm_config_fetch_retries": "1",
                "npm_config_update_notifier": "false",
            }
            try:
                result = subprocess.run(
                    [
                        npm,
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--prefix",
                        str(prefix),
                        f"proca@{NODE_CLI_VERSION}",
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ClientUnavailable(
                    f"npm install proca@{NODE_CLI_VERSION} timed out (registry unreachable?)"
                ) from None
            if result.returncode != 0 or not executable.exists():
                reason = _first_error_line(result.stderr + result.stdout)
                raise ClientUnavailable(
                    f"npm install proca@{NODE_CLI_VERSION} failed (registry unreachable?): {reason}"
                )
    return executable


def _python_version(executable: str) -> tuple[int, int] | None:
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    major, minor = result.stdout.split()
    return int(major), int(minor)


def find_python310() -> str | None:
    """A Python 3.10 that really runs: PROCA_PYTHON310, `python3.10` on PATH, or an installed
    pyenv 3.10 (the pyenv shim alone fails when 3.10 is not the selected version)."""
    candidates = [os.environ.get("PROCA_PYTHON310"), shutil.which("python3.10")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.10*/bin/python3.10"), reverse=True)
    for candidate in candidates:
        if candidate and _python_version(candidate) == (3, 10):
            return candidate
    return None


def install_python_cli() -> Path:
    python = find_python310()
    if python is None:
        raise NoPython310(
            f"no working Python 3.10 for the PyPI `proca` {PYTHON_CLI_VERSION} CLI "
            "(its aiohttp 3.8.1 pin does not build on 3.11+)"
        )
    venv = cache_dir() / f"python-proca-{PYTHON_CLI_VERSION}"
    executable = venv / "bin" / "proca"
    marker = venv / ".installed"
    with _locked(cache_dir()):
        if not marker.exists() or not executable.exists():
            shutil.rmtree(venv, ignore_errors=True)
            steps = [
                [python, "-m", "venv", str(venv)],
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    f"proca=={PYTHON_CLI_VERSION}",
                ],
            ]
            for step in steps:
                try:
                    result = subprocess.run(
                        step, capture_output=True, text=True, timeout=600, check=False
                    )
                except subprocess.TimeoutExpired:
                    raise ClientUnavailable(
                        f"installing proca=={PYTHON_CLI_VERSION} timed out (PyPI unreachable?)"
                    ) from None
                if result.returncode != 0:
                    reason = _first_error_line(result.stderr + result.stdout)
                    raise ClientUnavailable(
                        f"installing proca=={PYTHON_CLI_VERSION} failed "
                        f"(PyPI unreachable?): {reason}"
                    )
            marker.write_text(PYTHON_CLI_VERSION)
    return executable
