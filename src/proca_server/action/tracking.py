"""UTM tracking and the page location taken from the Referer."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from proca_server.errors import BadArgument
from proca_server.kit.storable import text_problem

MAX_LEN = 255


@dataclass(frozen=True)
class SourceKey:
    source: str
    medium: str
    campaign: str
    content: str
    location: str


def _well_formed(url: str | None) -> bool:
    if not url or text_problem(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https", "ws", "wss") and bool(parts.netloc) and bool(parts.path)
    )


def _strip(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _clip(value: str | None, default: str) -> str:
    return (value or default).strip()[:MAX_LEN] or default


def source_key(tracking: dict[str, str | None] | None, referer: str | None) -> SourceKey | None:
    """The tracking tuple to store, or None when there is neither tracking nor a referer."""
    for name, value in (tracking or {}).items():
        problem = text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise BadArgument(problem, field=["tracking", name])
    location = _location((tracking or {}).get("location"), referer)
    if tracking is None:
        if location is None:
            return None
        return SourceKey("unknown", "unknown", "unknown", "", location[:MAX_LEN])
    return SourceKey(
        source=_clip(tracking.get("source"), "unknown"),
        medium=_clip(tracking.get("medium"), "unknown"),
        campaign=_clip(tracking.get("campaign"), "unknown"),
        content=(tracking.get("content") or "").strip()[:MAX_LEN],
        location=(location or "")[:MAX_LEN],
    )


def _location(given: str | None, referer: str | None) -> str | None:
    # The referer vouches for the location: without a well-formed one there is none.
    if referer is None or not _well_formed(referer):
        return None
    stripped_referer = _strip(referer)
    if given:
        if _well_formed(given) and _strip(given).startswith(stripped_referer):
            return _strip(given)
        return stripped_referer
    return referer
