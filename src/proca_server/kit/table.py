"""Plain-text tables for the commands' output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Columns padded to their widest cell, numbers to the right; never wrapped, so that a
    narrow terminal or a pipe sees the same lines."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(str(cell)))

    def line(cells: Sequence[Any]) -> str:
        parts = [
            str(c).rjust(w) if isinstance(c, int) else str(c).ljust(w)
            for c, w in zip(cells, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]
