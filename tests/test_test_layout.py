"""The test suite's own layout: a test module never imports from another test module. Helpers
shared between tests live in modules not named `test_*` (tests/factories, tests/*_helpers.py,
a directory's helpers or world module), so that importing a helper never imports, and never
re-runs or re-registers, another module's tests and fixtures."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _module_of(path: Path) -> list[str]:
    """The dotted name of a module under tests/, as its parts."""
    parts = list(path.relative_to(TESTS.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _is_test_module(parts: list[str]) -> bool:
    return len(parts) > 1 and parts[0] == "tests" and any(p.startswith("test_") for p in parts)


def imported_test_modules(source: str, package: list[str]) -> list[tuple[int, str]]:
    """(line, module) of every import in `source`, a module of `package`, that reaches a test
    module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[list[str]] = []
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            # `from tests.email import test_ses` imports a test module by name
            targets = [module] + [[*module, alias.name] for alias in node.names]
        for target in targets:
            if _is_test_module(target):
                first = next(i for i, p in enumerate(target) if p.startswith("test_"))
                found.append((node.lineno, ".".join(target[: first + 1])))
                break
    return sorted(found)


def _package_of(path: Path) -> list[str]:
    module = _module_of(path)
    return module if path.name == "__init__.py" else module[:-1]


def test_no_test_module_imports_from_another_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in imported_test_modules(path.read_text(), _package_of(path))
    ]
    assert not offenders, (
        "move the shared helpers to a module not named test_* (tests/factories, "
        "tests/*_helpers.py, the directory's helpers module) and import them from there:\n"
        + "\n".join(offenders)
    )


def test_the_scan_finds_each_form_of_import() -> None:
    source = (
        "from tests.test_cli import env\n"
        "import tests.pipeline.test_fault\n"
        "from tests.email import test_ses as ses_world\n"
        "from .test_reminders import REMINDER\n"
        "from . import providers\n"
        "from tests.email.worker_world import signed\n"
        "from tests.factories import make_world\n"
        "def f() -> None:\n"
        "    from ..test_widget_api import signature\n"
        "    from .. import test_accounts\n"
    )
    assert imported_test_modules(source, ["tests", "email"]) == [
        (1, "tests.test_cli"),
        (2, "tests.pipeline.test_fault"),
        (3, "tests.email.test_ses"),
        (4, "tests.email.test_reminders"),
        (9, "tests.test_widget_api"),
        (10, "tests.test_accounts"),
    ]
    assert _package_of(TESTS / "email" / "test_cc.py") == ["tests", "email"]
    assert _package_of(TESTS / "email" / "__init__.py") == ["tests", "email"]
