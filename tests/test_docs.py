"""The docs say what the code does: docs/configuration.md lists every setting and metric and
nothing that is gone, no text points to a document outside the repository, ARCHITECTURE.md
names paths that exist and every top-level module, and docs/export.md's Python opens the
contacts of a real export."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.metrics import MetricWrapperBase
from sqlalchemy.ext.asyncio import AsyncSession

# the app and the CLI import every module that declares a metric
import proca_server.app
import proca_server.cli  # noqa: F401
from proca_server import metrics
from proca_server.config import Settings
from proca_server.models import Org
from proca_server.user.service import reset_api_token
from tests.factories import make_user
from tests.graphql_helpers import data, gql
from tests.processing.helpers import action_ids, make_site, process, sign

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "src" / "proca_server"
CONFIGURATION = REPO / "docs" / "configuration.md"
ARCHITECTURE = REPO / "ARCHITECTURE.md"
EXPORT = REPO / "docs" / "export.md"
TESTS_SECTION = "For the tests"

VARIABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|", re.MULTILINE)
METRIC_SPAN = re.compile(r"`(proca_[a-z0-9_]+)(?:\{[^`]*\})?`")
ENV_READ = re.compile(r"os\.(?:environ\.get|getenv)\(\s*\"([A-Z][A-Z0-9_]*)\"")


def sections(markdown: str) -> dict[str, str]:
    """Text by `## ` heading (the text before the first one under "")."""
    parts = re.split(r"^## ", markdown, flags=re.MULTILINE)
    found = {"": parts[0]}
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        found[title.strip()] = body
    return found


def documented_variables() -> tuple[set[str], set[str]]:
    """(server variables, test-suite variables) of docs/configuration.md's tables."""
    server: set[str] = set()
    tests: set[str] = set()
    for title, body in sections(CONFIGURATION.read_text()).items():
        (tests if title == TESTS_SECTION else server).update(VARIABLE_ROW.findall(body))
    return server, tests


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if "node_modules" not in path.parts:
            yield path


def test_every_setting_is_documented_and_every_documented_variable_exists() -> None:
    settings = {field.alias or name.upper() for name, field in Settings.model_fields.items()}
    metric_variables = {
        value
        for name, value in vars(metrics).items()
        if name.endswith("_ENV") and isinstance(value, str)
    }
    server, _ = documented_variables()
    expected = settings | metric_variables
    assert sorted(expected - server) == [], "settings missing from docs/configuration.md"
    assert sorted(server - expected) == [], "documented variables that no setting reads"


def test_the_test_suites_variables_are_documented_both_ways() -> None:
    read = {
        name
        for path in python_files(REPO / "tests")
        for name in ENV_READ.findall(path.read_text(encoding="utf-8"))
    }
    _, documented = documented_variables()
    assert sorted(read - documented) == [], "variables the tests read, missing from the doc"
    assert sorted(documented - read) == [], "documented test variables no test reads"


def test_variables_read_outside_the_settings_are_mentioned() -> None:
    text = CONFIGURATION.read_text()
    read = {
        name
        for path in python_files(PACKAGE)
        for name in ENV_READ.findall(path.read_text(encoding="utf-8"))
    }
    assert sorted(name for name in read if name not in text) == []


def exported_metrics() -> set[str]:
    """The names `/metrics` shows for every metric the package declares (counters with
    their `_total`)."""
    names: set[str] = set()
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith("proca_server"):
            continue
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    suffix = "_total" if family.type == "counter" else ""
                    names.add(family.name + suffix)
    return names


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    exported = exported_metrics()
    assert "proca_actions_received_total" in exported  # the collection works
    documented = set(METRIC_SPAN.findall(CONFIGURATION.read_text()))
    assert sorted(exported - documented) == [], "metrics missing from docs/configuration.md"
    assert sorted(documented - exported) == [], "documented metrics that are not exported"


def markdown_files() -> list[Path]:
    return [*sorted(REPO.glob("*.md")), *sorted((REPO / "docs").rglob("*.md"))]


def test_metrics_named_anywhere_in_the_docs_exist() -> None:
    exported = exported_metrics()
    series = exported | {
        name + suffix for name in exported for suffix in ("_bucket", "_sum", "_count")
    }
    wrong = {
        f"{path.relative_to(REPO)}: {name}"
        for path in markdown_files()
        for name in METRIC_SPAN.findall(path.read_text())
        if name not in series
    }
    assert sorted(wrong) == []


# Pointers to documents that are not in this repository (the specification the project was
# written from, its design notes, its issue tracker): a reader of the repository cannot follow
# them. State the rule, or point to a page of docs/ that says it.
OUTSIDE_REFERENCES = re.compile(
    r"spec §|clients spec|server spec|\.\./shared|/work/shared|DESIGN\.md"
    r"|proca-server-behaviour|proca-clients\.md|\bissue \d+|\(issue[ :]",
)


def test_no_pointer_to_a_document_outside_the_repository() -> None:
    roots = [REPO / "src", REPO / "tests", REPO / "docs", REPO / "bench", REPO / "scripts"]
    files = [*REPO.glob("*.md")]
    for root in roots:
        files += [
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix in {".py", ".md", ".html", ".lua", ".sh", ""}
            and "node_modules" not in p.parts
            and "__pycache__" not in p.parts
        ]
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE_REFERENCES.search(line)
    ]
    assert found == []


def architecture_module_map() -> set[str]:
    block = sections(ARCHITECTURE.read_text())["Module map"]
    code = block.split("```")[1]
    names: set[str] = set()
    for line in code.splitlines():
        entry = re.match(r"^  (\S.*?)(?: {2,}.*)?$", line)
        if entry:
            names.update(entry.group(1).split())
    return names


def test_architecture_describes_every_top_level_module_and_no_other() -> None:
    modules = {
        p.name + "/" if p.is_dir() else p.name
        for p in PACKAGE.iterdir()
        if (p.is_dir() and any(p.glob("*.py"))) or (p.suffix == ".py" and p.name != "__init__.py")
    }
    described = architecture_module_map()
    assert sorted(modules - described) == [], "modules missing from ARCHITECTURE.md's map"
    assert sorted(described - modules) == [], "ARCHITECTURE.md's map names what is gone"


def test_paths_named_in_architecture_exist() -> None:
    text = ARCHITECTURE.read_text()
    spans = set(re.findall(r"`([^`\s]+)`", text))
    spans |= set(re.findall(r"\b((?:[a-z_]+/)+[a-z_0-9]+\.py)\b", text))
    paths = {
        span
        for span in spans
        if ("/" in span or span.endswith(".py"))
        and not span.startswith("/")
        and not re.match(r"^(application|text|multipart)/", span)
    }
    assert paths, "no path found: the pattern is broken"
    missing = [
        path
        for path in sorted(paths)
        if not any((base / path).exists() for base in (REPO, PACKAGE))
    ]
    assert missing == []


# -- docs/export.md: its Python opens the contacts of a real export --------------------------


def documented_python(name: str) -> Callable[..., Any]:
    """The function `name` as docs/export.md defines it in a ```python block."""
    blocks = re.findall(r"```python\n(.*?)```", EXPORT.read_text(), flags=re.DOTALL)
    [source] = [b for b in blocks if f"def {name}(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(source, str(EXPORT), "exec"), namespace)  # noqa: S102 (our own doc)
    function: Callable[..., Any] = namespace[name]
    return function


GENERATE_KEY = (
    'mutation($o: String!) { generateKey(orgName: $o, input: {name: "export"})'
    " { id public private } }"
)
ACTIVATE_KEY = "mutation($o: String!, $id: Int!) { activateKey(orgName: $o, id: $id) { status } }"
EXPORT_ACTIONS = (
    "query($o: String!) { exportActions(orgName: $o, onlyOptIn: false) { actionId contact"
    " { contactRef payload nonce publicKey { id public } signKey { id public } } } }"
)


async def owner_token(session: AsyncSession, org_id: int) -> str:
    org = await session.get(Org, org_id)
    assert org is not None
    user = await make_user(session, org=org, role="owner")
    token = await reset_api_token(session, user)
    await session.commit()
    return token


async def test_the_export_page_opens_the_contacts_of_a_real_export(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    open_contact = documented_python("open_contact")
    sealed = await make_site(session, encrypted=False)
    clear = await make_site(session, encrypted=False)
    sealed_token = await owner_token(session, sealed.org_id)
    clear_token = await owner_token(session, clear.org_id)
    key = data(await gql(client, GENERATE_KEY, {"o": sealed.org_name}, token=sealed_token))[
        "generateKey"
    ]
    done = data(
        await gql(client, ACTIVATE_KEY, {"o": sealed.org_name, "id": key["id"]}, token=sealed_token)
    )
    assert done["activateKey"]["status"] == "SUCCESS"
    await sign(client, sealed.page_id, "Ann@Example.org")
    await sign(client, clear.page_id, "bob@example.org")
    await process(session, await action_ids(session))

    [row] = data(await gql(client, EXPORT_ACTIONS, {"o": sealed.org_name}, token=sealed_token))[
        "exportActions"
    ]
    contact = row["contact"]
    assert contact["nonce"] is not None and contact["publicKey"]["public"] == key["public"]
    assert "ann" not in contact["payload"].lower()  # sealed, not in clear
    opened = open_contact(contact, {key["public"]: key["private"]})
    assert opened["email"] == "ann@example.org"
    assert (opened["firstName"], opened["lastName"], opened["country"]) == ("Ann", "Lee", "FR")

    [row] = data(await gql(client, EXPORT_ACTIONS, {"o": clear.org_name}, token=clear_token))[
        "exportActions"
    ]
    assert row["contact"]["nonce"] is None
    assert open_contact(row["contact"], {})["email"] == "bob@example.org"
