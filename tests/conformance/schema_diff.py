"""Compare this server's GraphQL schema with the original's live introspection
(data/original-api-schema.json, a copy of the introspection result of the original server's
public API): type kinds, fields, arguments and type references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graphql import get_introspection_query, graphql_sync

SPEC = Path(__file__).resolve().parent / "data" / "original-api-schema.json"


def _ref(t: dict[str, Any]) -> str:
    if t["kind"] == "NON_NULL":
        return _ref(t["ofType"]) + "!"
    if t["kind"] == "LIST":
        return "[" + _ref(t["ofType"]) + "]"
    return str(t["name"])


def _flatten(schema: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in schema["types"]:
        name = t["name"]
        if name.startswith("__"):
            continue
        out[name] = t["kind"]
        for f in t.get("fields") or t.get("inputFields") or []:
            out[f"{name}.{f['name']}"] = _ref(f["type"])
            for a in f.get("args") or []:
                out[f"{name}.{f['name']}({a['name']})"] = _ref(a["type"])
        for e in t.get("enumValues") or []:
            out[f"{name}::{e['name']}"] = "value"
        for i in t.get("interfaces") or []:
            out[f"{name} implements {i['name']}"] = "interface"
    return out


def original() -> dict[str, str]:
    return _flatten(json.loads(SPEC.read_text())["__schema"])


def ours() -> dict[str, str]:
    from proca_server.graphql.schema import build_schemas

    result = graphql_sync(build_schemas().core, get_introspection_query())
    assert result.data is not None
    return _flatten(result.data["__schema"])


def differences() -> tuple[dict[str, str], dict[str, str], dict[str, tuple[str, str]]]:
    theirs, mine = original(), ours()
    missing = {k: v for k, v in theirs.items() if k not in mine}
    extra = {k: v for k, v in mine.items() if k not in theirs}
    changed = {k: (theirs[k], mine[k]) for k in theirs.keys() & mine.keys() if theirs[k] != mine[k]}
    return missing, extra, changed


if __name__ == "__main__":
    missing, extra, changed = differences()
    for k in sorted(missing):
        print("missing", k, missing[k])
    for k in sorted(extra):
        print("extra  ", k, extra[k])
    for k in sorted(changed):
        print("changed", k, changed[k])
