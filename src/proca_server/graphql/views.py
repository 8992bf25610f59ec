"""Public and private views of orgs, campaigns and action pages.

Each of them is a GraphQL interface (`Org`, `Campaign`, `ActionPage`) with a public and a
private implementation. The interface, and the rule of who sees which view, live in the
slice's `interface.py` (`org_view`, `campaign_view`, `page_view`); the implementations in its
`types.py`. A view is an instance of the interface class carrying the choice (`private`), and
the interface's `resolve_type` names the implementation: so a field of one slice can answer
another slice's view without importing its implementations, and the type modules import one
another in one direction only (org ← campaign ← action page; types ← interfaces)."""

from __future__ import annotations

from typing import Any

from strawberry.types import get_object_definition


def implementation(obj: Any, public: str, private: str) -> str:
    """The GraphQL type of `obj` answered where an interface is expected: an
    implementation's own instance is its type, a view the one it was chosen for."""
    definition = get_object_definition(obj, strict=True)
    if not definition.is_interface:
        return definition.name
    return private if obj.private else public
