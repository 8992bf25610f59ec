"""JSON text that can always be sent as UTF-8."""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII characters as they are, except when the value holds a string
    that UTF-8 cannot carry (an unpaired surrogate a client sent, echoed in an error): then
    everything is escaped. NaN and infinities are refused (they are not JSON)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text
