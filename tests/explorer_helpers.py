"""A GraphiQL files directory laid out for tests (placeholder assets, no npm install)."""

from __future__ import annotations

from pathlib import Path

from proca_server.web.explorer import ASSETS


def lay_out(directory: Path) -> Path:
    for name, asset in ASSETS.items():
        path = directory / asset.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"/* {name} */\n")
    (directory / "package.json").write_text("{}")
    return directory
