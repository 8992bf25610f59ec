"""Merge tags of the supporter emails and the links they carry (`/link/s/…` and `/link/d/…`,
processing/links.py).

Variables are nested (`campaign.title`, `privacy.optIn`) for local mustache templates;
`templates.flatten_variables` makes them one level for provider templates."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.kit import base64url
from proca_server.processing.loader import LoadedAction
from proca_server.processing.messages import contact_data, iso8601, privacy_data
from proca_server.stats.counts import campaign_stats
from proca_server.web.urls import public_url

_NOT_WORD = re.compile(r"[^A-Za-z0-9_]")


def confirm_links(
    settings: Settings, action_id: int, ref: str, *, reminder: bool = False
) -> dict[str, str]:
    """Links of a confirm email: accept (also the double opt-in link) and reject."""
    suffix = "?reminder=1" if reminder else ""
    accept = public_url(settings, f"/link/s/{action_id}/accept/{ref}") + suffix
    reject = public_url(settings, f"/link/s/{action_id}/reject/{ref}") + suffix
    return {"confirmLink": accept, "doiLink": accept, "rejectLink": reject}


def doi_links(settings: Settings, action_id: int, ref: str) -> dict[str, str]:
    """Links of a thank-you or duplicate email: the newsletter double opt-in."""
    link = public_url(settings, f"/link/d/{action_id}/{ref}")
    return {"doiLink": link, "confirmLink": link}


def variant_tokens(content: str | None) -> dict[str, bool]:
    """`variant.<token>` for each whitespace-separated token of utm_content."""
    tokens: dict[str, bool] = {}
    for token in (content or "").split():
        name = _NOT_WORD.sub("", token.replace("-", "_"))
        if name:
            tokens[name] = True
    return tokens


async def merge_variables(
    session: AsyncSession,
    loaded: LoadedAction,
    org_id: int,
    *,
    contact: Mapping[str, Any] | None = None,
    links: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The merge tags of the action's supporter email for the org `org_id`; `contact` (the
    queue message's, which still carries the fields the database may have dropped since)
    wins over the stored supporter."""
    action, campaign, page = loaded.action, loaded.campaign, loaded.page
    supporter = loaded.supporter
    copy = loaded.contact_for(org_id)
    person: dict[str, Any] = contact_data(supporter, copy) if supporter is not None else {}
    if supporter is not None and supporter.last_name and "lastName" not in person:
        person["lastName"] = supporter.last_name
    for key, value in (contact or {}).items():
        if value is not None:
            person[key] = value
    counts = await campaign_stats(session, campaign.id)
    area = person.get("area")
    source = loaded.source
    tracking: dict[str, Any] | None = None
    if source is not None:
        tracking = {
            "source": source.source,
            "medium": source.medium,
            "campaign": source.campaign,
            "content": source.content,
            "location": source.location,
            "encodedLocation": quote(source.location or "", safe=""),
            "encodedContent": quote(source.content or "", safe=""),
        }
    dupe_rank = person.get("dupeRank")
    variables: dict[str, Any] = {
        # custom fields first: the named tags below win over a field of the same name
        **dict(action.fields or {}),
        "firstName": person.get("firstName"),
        "lastName": person.get("lastName"),
        "email": person.get("email"),
        "ref": person.get("contactRef")
        or (base64url.encode(supporter.fingerprint) if supporter else None),
        "actionId": action.id,
        "actionType": action.action_type,
        "isActionType": {action.action_type: True},
        "createdAt": iso8601(action.inserted_at),
        "org": {"name": loaded.org.name, "title": loaded.org.title},
        "campaign": {
            "name": campaign.name,
            "title": campaign.title,
            "stats": {
                "supporterCount": counts.supporters,
                "supporterCountByOrg": counts.by_org.get(page.org_id, 0),
                "supporterCountByArea": counts.by_area.get(area, 0) if area else 0,
                "actionCount": dict(counts.by_action_type),
            },
        },
        "actionPage": {"name": page.name, "locale": page.locale},
        "tracking": tracking,
        "variant": variant_tokens(source.content if source else None),
        "test": action.testing,
        "privacy": (
            privacy_data(supporter, copy, action.with_consent) if supporter is not None else {}
        ),
        "isDupe": isinstance(dupe_rank, int) and dupe_rank > 0,
        **dict(links or {}),
    }
    if action.testing:
        variables["debug"] = json.dumps(variables, indent=2, ensure_ascii=False, default=str)
    return variables
